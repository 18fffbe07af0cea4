#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, the architecture
# invariants, then every test (unit, conformance, integration with the real
# OpenTelemetry SDKs over real mTLS, the store conformance suite over
# SQLite and two real Postgres shards). Installs what it needs and starts
# a throwaway Postgres from the machine's binaries.
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

step "npm packages the tests drive (the Zipkin JS tracer)"
export MERIDIAN_JS_DEPS="$target/js-deps"
scripts/js-deps.sh "$MERIDIAN_JS_DEPS"

step "throwaway Postgres (removed on exit)"
pg_dir=$(mktemp -d /tmp/meridian-test-pg.XXXXXX)
chmod 755 "$pg_dir"
trap 'scripts/pg.sh stop "$pg_dir"' EXIT
MERIDIAN_TEST_POSTGRES=$(scripts/pg.sh start "$pg_dir")
export MERIDIAN_TEST_POSTGRES
# The Postgres tests fail instead of skipping when the server is missing.
export MERIDIAN_REQUIRE_POSTGRES=1
echo "$MERIDIAN_TEST_POSTGRES"

step "tests"
# Every gateway and agent process the tests start copies its log here, and
# the secrets it was given to secrets.txt (tests/src/process.rs).
export MERIDIAN_TEST_LOG_DIR="$target/test-logs"
rm -rf "$MERIDIAN_TEST_LOG_DIR"
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$target/test-output.txt"
status=${PIPESTATUS[0]}

step "no secret in any process log of the run"
secrets_status=0
scripts/check-log-secrets.sh "$MERIDIAN_TEST_LOG_DIR" || secrets_status=$?

step "fuzz (short run)"
# Every decoder of outside bytes, 5 s each (14 targets, about 70 s): the
# committed corpus first (seeds and regression cases), then mutations; no
# panic and no allocation above the target's bound (fuzz/,
# ARCHITECTURE.md "Limits", Decoders). A failing input is kept under
# $target/fuzz-crashes.
fuzz_status=0
cargo run -p fuzz --locked --quiet -- --target all --seconds 5 \
  --crashes "$target/fuzz-crashes" 2>&1 | tee "$target/fuzz-output.txt" || fuzz_status=${PIPESTATUS[0]}

step "deploy: chart, manifests, images (deploy/README.md)"
scripts/test-deploy.sh 2>&1 | tee "$target/deploy-test-output.txt"

step "web UI: vitest, then end-to-end in headless Chromium"
web_status=0
scripts/web-test.sh 2>&1 | tee "$target/web-test-output.txt" || web_status=${PIPESTATUS[0]}

# One summary line over every test binary, the deploy tests and the web
# UI's tests (vitest's "Tests N passed" line, node:test's "ℹ pass N").
awk '/^test result:/ { p += $4; f += $6; i += $8 }
     /^deploy tests: [0-9]+ passed, [0-9]+ failed$/ { p += $3; f += $5 }
     FILENAME ~ /web-test-output/ && /^ *Tests +[0-9]/ {
       for (k = 2; k < NF; k++) { if ($(k+1) ~ /^passed/) p += $k; if ($(k+1) ~ /^failed/) f += $k } }
     FILENAME ~ /web-test-output/ && /^ℹ (pass|fail|cancelled|skipped) [0-9]+$/ {
       if ($2 == "pass") p += $3; else if ($2 == "skipped") i += $3; else f += $3 }
     END { printf "\nall test binaries: %d passed, %d failed, %d ignored\n", p, f, i }' \
  "$target/test-output.txt" "$target/deploy-test-output.txt" "$target/web-test-output.txt"
[ "$status" -ne 0 ] && exit "$status"
[ "$fuzz_status" -ne 0 ] && exit "$fuzz_status"
[ "$secrets_status" -ne 0 ] && exit "$secrets_status"
exit "$web_status"
