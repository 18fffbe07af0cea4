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

# 4. The replicated control state's apply is pure: no clock, I/O, randomness
#    or async runtime anywhere in the control-state crate (every node
#    applying the same log must reach the same state).
if grep -rnE 'tokio|std::fs|std::net|std::time::(SystemTime|Instant)|SystemTime::now|Instant::now|rand::|telemetry::clock' crates/control-state/src; then
  echo "invariant violated: the control state's apply must be pure (crates/control-state)" >&2
  fail=1
fi
cstate=$(cargo tree -p control-state -e normal --prefix none --format '{p}' --locked | awk '{print $1}' | sort -u)
for forbidden in tokio openraft sqlx tonic axum; do
  if grep -qx "$forbidden" <<<"$cstate"; then
    echo "invariant violated: control-state depends on $forbidden" >&2
    fail=1
  fi
done

# 5. Arrows point down only: every dependency between workspace crates is
#    one scripts/crate-arrows.txt allows (cargo already refuses cycles
#    among normal dependencies; this keeps the layers).
if ! cargo metadata --format-version 1 --no-deps --locked | python3 -c '
import json, sys
allowed = {}
for line in open("scripts/crate-arrows.txt"):
    line = line.split("#", 1)[0].strip()
    if line:
        name, _, deps = line.partition(":")
        allowed[name.strip()] = set(deps.split())
meta = json.load(sys.stdin)
names = {p["name"] for p in meta["packages"]}
bad = 0
for p in meta["packages"]:
    me = p["name"]
    if me not in allowed:
        print("invariant violated: crate", me, "is not in scripts/crate-arrows.txt", file=sys.stderr)
        bad = 1
        continue
    for d in p["dependencies"]:
        dep = d["name"]
        if dep in names and d["kind"] in (None, "build") and dep != me and dep not in allowed[me]:
            print("invariant violated:", me, "->", dep, "is not an allowed arrow", file=sys.stderr)
            bad = 1
sys.exit(bad)
'; then
  fail=1
fi

# 6. Only the gateway's demo knows the agent: no gateway crate depends on
#    edge-agent, the gateway library has no edge without its `demo`
#    feature, and inside it only gateway/src/demo names the agent crate.
for c in control-state control-plane mtls ingest stitch query metrics-alerts; do
  if cargo tree -p "$c" -e normal --prefix none --format '{p}' --locked | awk '{print $1}' | grep -qx edge-agent; then
    echo "invariant violated: $c depends on edge-agent" >&2
    fail=1
  fi
done
if cargo tree -p gateway --no-default-features -e normal --prefix none --format '{p}' --locked | awk '{print $1}' | grep -qx edge-agent; then
  echo "invariant violated: gateway depends on edge-agent beyond its demo feature" >&2
  fail=1
fi
if grep -rln 'edge_agent' gateway/src crates | grep -v '^gateway/src/demo/'; then
  echo "invariant violated: edge_agent used outside gateway/src/demo" >&2
  fail=1
fi

# 7. One spawn: non-test code starts tasks only through telemetry's
#    Shutdown (tracked, tied to shutdown) or run_blocking (awaited). Test
#    code is skipped: test files and folders, the testsuite and testkit,
#    and a file's trailing `#[cfg(test)]` module.
if ! python3 - <<'PY'
import pathlib, re, sys
spawn = re.compile(r"tokio::spawn|tokio::task::spawn|(?<![.\w])spawn_blocking\(")
allowed = {"crates/telemetry/src/shutdown.rs", "crates/telemetry/src/blocking.rs"}
test_path = re.compile(r"/tests?(\.rs|/)|/testsuite/|/testkit|/network/memory\.rs|/benches/")
bad = 0
for root in ["crates", "edge-agent/src", "gateway/src", "store/src", "web/src"]:
    for f in pathlib.Path(root).rglob("*.rs"):
        p = str(f)
        if p in allowed or test_path.search(p):
            continue
        for n, line in enumerate(f.read_text().splitlines(), 1):
            if line.startswith("#[cfg(test)]"):
                break
            if spawn.search(line) and not line.lstrip().startswith("//"):
                print(f"{p}:{n}: {line.strip()}", file=sys.stderr)
                bad = 1
sys.exit(bad)
PY
then
  echo "invariant violated: a task spawned outside telemetry::Shutdown / run_blocking" >&2
  fail=1
fi

# 8. Small files: no non-test Rust file over 600 lines (generated code, kept
#    fresh by proto's generated_code test, is not written by hand).
long=$(find crates edge-agent gateway store web -name '*.rs' -not -path '*/tests/*' \
  -not -path 'crates/proto/src/generated/*' \
  -not -path '*/testsuite/*' -not -path '*/benches/*' -not -name 'tests.rs' -not -path '*/target/*' \
  -exec awk 'END { if (NR > 600) print FILENAME ": " NR " lines" }' {} \;)
if [ -n "$long" ]; then
  echo "$long" >&2
  echo "invariant violated: non-test files over 600 lines (split them by concept)" >&2
  fail=1
fi

# 9. One module style: mod.rs folders, never foo.rs beside foo/.
for f in $(find crates edge-agent/src gateway/src store/src web/src tests/src -name '*.rs' -not -name mod.rs -not -name lib.rs -not -name main.rs); do
  d="${f%.rs}"
  if [ -d "$d" ]; then
    echo "invariant violated: $f beside $d/ (use $d/mod.rs)" >&2
    fail=1
  fi
done

if [ "$fail" -eq 0 ]; then
  echo "invariants hold"
fi
exit "$fail"
