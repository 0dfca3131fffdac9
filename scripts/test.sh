#!/usr/bin/env bash
# The whole test suite, from a fresh clone: system packages, Docker engine, npm install, build, type check, lint, vitest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
else
  npm run build
fi
npx tsc -p tsconfig.json --noEmit
npm run --silent lint # typescript-eslint, type-aware: a lint error fails CI before any test runs
npm run --silent format:check # prettier: unformatted code fails CI too (npm run format fixes it)
npx vitest run "$@"
