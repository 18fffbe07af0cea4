#!/usr/bin/env bash
# Fails if any log of a test run holds a secret: an API token (mrd_ and 64
# hex digits) or one of the secrets the test harness passed on a command
# line (DIR/secrets.txt: --admin-token values, store URL passwords).
# The logs are DIR/*.log, written by tests/src/process.rs when
# MERIDIAN_TEST_LOG_DIR=DIR (scripts/test.sh sets it).
set -euo pipefail
dir=${1:?usage: check-log-secrets.sh DIR}
shopt -s nullglob
logs=("$dir"/*.log)
if [ ${#logs[@]} -eq 0 ]; then
  echo "check-log-secrets: no logs in $dir (did the process tests run?)" >&2
  exit 1
fi
found=0
if grep -l -E 'mrd_[0-9a-f]{64}' "${logs[@]}"; then
  echo "check-log-secrets: an API token secret is in the logs above" >&2
  found=1
fi
if [ -s "$dir/secrets.txt" ]; then
  # No empty pattern: it would match every line.
  grep -v '^[[:space:]]*$' "$dir/secrets.txt" | sort -u > "$dir/secrets.sorted" || true
  if [ -s "$dir/secrets.sorted" ] && grep -l -F -f "$dir/secrets.sorted" "${logs[@]}"; then
    echo "check-log-secrets: a command-line secret is in the logs above" >&2
    found=1
  fi
  secrets=$(wc -l < "$dir/secrets.sorted")
else
  secrets=0
fi
lines=$(cat "${logs[@]}" | wc -l)
if [ "$found" -ne 0 ]; then
  exit 1
fi
echo "check-log-secrets: ${#logs[@]} process logs, $lines lines, $secrets known secrets: none found"
