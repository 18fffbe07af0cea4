#!/usr/bin/env bash
# The web UI's tests: vitest over the pure modules, then the end-to-end
# test in real headless Chromium (Debian's package, driven by
# playwright-core; never a downloaded browser) against a real gateway.
# Installs what it needs: chromium (apt-get) and the npm dependencies
# (npm ci, from web/ui/package-lock.json). Screenshots:
# $CARGO_TARGET_DIR/web-e2e/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
target=${CARGO_TARGET_DIR:-$root/target}

if ! command -v npm >/dev/null; then
  echo "npm is missing: install Node.js (>= 20.19) and npm" >&2
  exit 1
fi
chromium=${MERIDIAN_CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
  echo "installing Debian's chromium"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi

out="$target/web-e2e"
mkdir -p "$out"
# MERIDIAN_GATEWAY_BIN / MERIDIAN_AGENT_BIN: test those binaries instead
# of building them (the e2e runs an agent: RED metrics come from agents).
if [ -z "${MERIDIAN_GATEWAY_BIN:-}" ] || [ -z "${MERIDIAN_AGENT_BIN:-}" ]; then
  cargo build -p gateway -p edge-agent --locked
  MERIDIAN_GATEWAY_BIN="${MERIDIAN_GATEWAY_BIN:-$target/debug/meridian-gateway}"
  MERIDIAN_AGENT_BIN="${MERIDIAN_AGENT_BIN:-$target/debug/meridian-agent}"
fi
(cd web/ui && npm ci --no-audit --no-fund)

echo "--- vitest"
(cd web/ui && NO_COLOR=1 npx vitest run)

echo "--- end-to-end (headless chromium)"
export MERIDIAN_GATEWAY_BIN MERIDIAN_AGENT_BIN
export MERIDIAN_WEB_E2E_OUT="$out"
export MERIDIAN_CHROMIUM="$chromium"
(cd web/ui && node --test --test-reporter=spec e2e/)
echo "screenshots: $MERIDIAN_WEB_E2E_OUT"
