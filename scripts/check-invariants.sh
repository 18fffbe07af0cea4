#!/usr/bin/env bash
# Architecture invariants that a build would not catch (ARCHITECTURE.md).
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0

# 1. The per-node agent stays small: no store, gateway, SQL or Raft crates.
deps=$(cargo tree -p edge-agent -e normal,build --prefix none --format '{p}' --locked | awk '{print $1}' | sort -u)
for forbidden in store gateway sqlx sqlx-core openraft; do
  if grep -qx "$forbidden" <<<"$deps"; then
    echo "invariant violated: edge-agent depends on $forbidden" >&2
    fail=1
  fi
done

# 2. model does no I/O: no tokio, tonic, sqlx, axum.
mdeps=$(cargo tree -p model -e normal --prefix none --format '{p}' --locked | awk '{print $1}' | sort -u)
for forbidden in tokio tonic sqlx axum hyper; do
  if grep -qx "$forbidden" <<<"$mdeps"; then
    echo "invariant violated: model depends on $forbidden" >&2
    fail=1
  fi
done

# 3. Only proto knows prost-generated wire types; only store knows SQL.
if grep -rlnE '(^|[^a-z_])sqlx::' --include='*.rs' crates edge-agent gateway web | grep -v '^store/' ; then
  echo "invariant violated: SQL outside the store crate" >&2
  fail=1
fi

# 4. The replicated control state's apply is pure: no clock, I/O or async
#    runtime in gateway/src/raft/state.rs (every node applying the same log
#    must reach the same state).
if grep -nE 'tokio|std::fs|std::net|std::time::(SystemTime|Instant)|SystemTime::now|Instant::now|rand::' gateway/src/raft/state.rs; then
  echo "invariant violated: the control state's apply must be pure (gateway/src/raft/state.rs)" >&2
  fail=1
fi

if [ "$fail" -eq 0 ]; then
  echo "invariants hold"
fi
exit "$fail"
