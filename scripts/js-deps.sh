#!/usr/bin/env bash
# Installs (once) the pinned npm packages the tests drive, from
# tests/js/package-lock.json (npm ci), into DIR/node_modules: the Zipkin JS
# tracer of tests/tests/zipkin_api.rs.
# Usage: scripts/js-deps.sh DIR
set -euo pipefail
dir=${1:?usage: scripts/js-deps.sh DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
lock="$root/tests/js/package-lock.json"
stamp="$dir/.package-lock.json"
if [ -d "$dir/node_modules" ] && [ -f "$stamp" ] && cmp -s "$lock" "$stamp"; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  echo "npm is missing: install Node.js (>= 18) and npm" >&2
  exit 1
fi
mkdir -p "$dir"
cp "$root/tests/js/package.json" "$lock" "$dir/"
(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
cp "$lock" "$stamp"
