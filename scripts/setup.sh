#!/usr/bin/env bash
# Installs what `stack` and its test suite need on a Debian machine (run as root),
# and starts the Docker engine when it is not running. Idempotent; quiet when nothing to do.
set -euo pipefail

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
# python3, make and g++ build native addons from source (better-sqlite3 for the dev-cluster PDS).
# postgresql: the full-node profile runs Debian's server itself (launchers/postgres.mjs).
# iproute2, util-linux (nsenter, unshare) and mount (umount): the test fixtures that stand in for
# several machines with network namespaces (test/fixtures/netns.ts, hosts.ts, swarm.ts).
for pkg in docker.io busybox-static etcd-server nats-server dnsmasq-base docker-compose iproute2 util-linux mount procps python3 make g++ postgresql chromium; do
  have_pkg "$pkg" || need+=("$pkg")
done

if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing Debian packages: ${need[*]} (run as root, or install them)" >&2
    exit 3
  fi
  echo "setup: installing ${need[*]}" >&2
  # Debian's postgresql creates and starts a cluster of its own on port 5432; full-node runs its
  # own cluster under .stack/, so tell postgresql-common (before it is installed) not to make one.
  if [[ " ${need[*]} " == *" postgresql "* ]] && ! have_pkg postgresql-common; then
    mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false  # atproto-stacks: full-node runs its own cluster" >/etc/postgresql-common/createcluster.d/atproto-stacks.conf
  fi
  # Debian starts etcd and nats-server as system services on install where it can; tests and
  # stacks run their own instances. Keep those two from starting at all, with a policy-rc.d that
  # denies their start during the install (invoke-rc.d and deb-systemd-invoke ask it), rather
  # than killing processes by name afterwards: that would kill the user's own etcd or NATS.
  # An existing policy-rc.d is the administrator's: left as it is.
  policy="${POLICY_RC_D:-/usr/sbin/policy-rc.d}"
  made_policy=
  if [ ! -e "$policy" ]; then
    cat >"$policy" <<'POLICY'
#!/bin/sh
# Written by atproto-stacks scripts/setup.sh for the length of its install.
case "$1" in etcd | nats-server) exit 101 ;; esac
exit 0
POLICY
    chmod 0755 "$policy"
    made_policy=1
    trap 'rm -f "$policy"' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  if [ -n "$made_policy" ]; then
    rm -f "$policy"
    trap - EXIT
  fi
  # Nor start them at boot: only the units of the packages installed just now, never by name.
  units=()
  [[ " ${need[*]} " == *" etcd-server "* ]] && units+=(etcd)
  [[ " ${need[*]} " == *" nats-server "* ]] && units+=(nats-server)
  if [ "${#units[@]}" -gt 0 ] && command -v systemctl >/dev/null; then
    systemctl disable "${units[@]}" >/dev/null 2>&1 || true
  fi
fi

bash "$(dirname "$0")/start-docker.sh"
