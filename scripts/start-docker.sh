#!/usr/bin/env bash
# Starts dockerd in the background when no engine answers. Logs to /var/log/dockerd-stack.log.
set -euo pipefail
if docker info >/dev/null 2>&1; then exit 0; fi
if ! command -v dockerd >/dev/null; then
  echo "start-docker: dockerd is not installed (run scripts/setup.sh)" >&2
  exit 3
fi
echo "start-docker: starting dockerd" >&2
# No registry is reachable from this machine; images are built locally.
# setsid: its own session, so it outlives the job (or CI step) that started it.
setsid nohup dockerd >/var/log/dockerd-stack.log 2>&1 &
for _ in $(seq 1 100); do
  if docker info >/dev/null 2>&1; then exit 0; fi
  sleep 0.2
done
echo "start-docker: dockerd did not come up; see /var/log/dockerd-stack.log" >&2
tail -20 /var/log/dockerd-stack.log >&2 || true
exit 3
