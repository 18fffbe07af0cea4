#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, the architecture
# invariants, then every test (unit, conformance, integration with the real
# OpenTelemetry SDKs over real mTLS). Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
target=${CARGO_TARGET_DIR:-$root/target}

step() { printf '\n==> %s\n' "$*"; }

step "rustfmt"
cargo fmt --all -- --check

step "clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "invariant: edge-agent does not depend on store, gateway, sqlx or openraft"
scripts/check-invariants.sh

step "python OpenTelemetry SDK venv"
export MERIDIAN_PY_VENV="$target/py-venv"
scripts/py-venv.sh "$MERIDIAN_PY_VENV"

step "tests"
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$target/test-output.txt"
status=${PIPESTATUS[0]}

# One summary line over every test binary.
awk '/^test result:/ { p += $4; f += $6; i += $8 }
     END { printf "\nall test binaries: %d passed, %d failed, %d ignored\n", p, f, i }' \
  "$target/test-output.txt"
exit "$status"
