#!/usr/bin/env bash
# Agent benchmarks against Rotel (issue 3), in one run on this machine.
#
#   scripts/bench-agent.sh [DURATION_SECONDS]     (default 20)
#
# The system under test is pinned to CPU 0, the load generator / sink (and
# the gateway in P2) to CPU 1. The load generator sends a pre-encoded corpus
# (512 spans per request, ≈264 B per span) over OTLP gRPC; CPU seconds and
# RSS of the SUT come from /proc. Both export with gzip (Rotel 0.0.1a15
# compresses even with --otlp-exporter-compression none; Meridian is also
# measured uncompressed). Results: target/bench-agent/results.jsonl.
#
#   P1  OTLP gRPC in → OTLP gRPC out, memory buffer: Meridian vs Rotel
#   P2  Meridian WAL durability + forward over mTLS to a real gateway
#   P3  10k spans/s offered: CPU% and RSS, Meridian vs Rotel
#   TM  tail-sampling memory per held span (cargo bench in edge-agent)
set -euo pipefail
cd "$(dirname "$0")/.."

DUR="${1:-20}"
ONLY="${ONLY:-p1 p2 p3 tm}"   # e.g. ONLY=p1 scripts/bench-agent.sh
want() { case " $ONLY " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
OUT=target/bench-agent
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: > "$RESULTS"
TMP="$(mktemp -d)"
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

echo "== building (dist profile)"
cargo build --profile dist --locked -p edge-agent -p gateway -p integration-tests \
    --bin meridian-agent --bin meridian-gateway --bin meridian-loadgen >/dev/null
B=target/dist

echo "== installing the peer (rotel from PyPI)"
VENV="${MERIDIAN_BENCH_VENV:-target/bench-venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --pre 'rotel==0.0.1a15'
ROTEL="$("$VENV/bin/python" -c 'import rotel, os; print(os.path.join(os.path.dirname(rotel.__file__), "rotel-agent"))')"
"$ROTEL" --version

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "port $1 never opened" >&2
    return 1
}
loadgen() { taskset -c 1 "$B/meridian-loadgen" "$@" | tee -a "$RESULTS"; }
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

meridian_export() { # NAME RATE COMPRESSION
    local in sink adm pid
    in=$(port); sink=$(port); adm=$(port)
    taskset -c 0 "$B/meridian-agent" --cluster bench --export-otlp "http://127.0.0.1:$sink" \
        --export-otlp-compression "${3:-gzip}" --durability memory --otlp-grpc "127.0.0.1:$in" --otlp-http 127.0.0.1:0 \
        --zipkin 127.0.0.1:0 --admin "127.0.0.1:$adm" --sampling 127.0.0.1:0 --sampling-grpc off \
        --buffer-dir "$TMP/agent-$1" 2>"$TMP/agent-$1.log" &
    pid=$!; PIDS+=("$pid")
    wait_port "$in"
    loadgen --name "$1" --target "http://127.0.0.1:$in" --sink "127.0.0.1:$sink" \
        --sut-pid "$pid" --rate "$2" --duration "$DUR"
    stop "$pid"
}

rotel_export() { # NAME RATE
    local in http sink pid
    in=$(port); http=$(port); sink=$(port)
    taskset -c 0 "$ROTEL" start --otlp-grpc-endpoint "127.0.0.1:$in" \
        --otlp-http-endpoint "127.0.0.1:$http" --exporter otlp \
        --otlp-exporter-endpoint "http://127.0.0.1:$sink" --otlp-exporter-protocol grpc \
        >"$TMP/rotel-$1.log" 2>&1 &
    pid=$!; PIDS+=("$pid")
    wait_port "$in"
    loadgen --name "$1" --target "http://127.0.0.1:$in" --sink "127.0.0.1:$sink" \
        --sut-pid "$pid" --rate "$2" --duration "$DUR"
    stop "$pid"
}

meridian_gateway() { # NAME RATE
    local fed http gin ghttp in adm gpid pid
    fed=$(port); http=$(port); gin=$(port); ghttp=$(port); in=$(port); adm=$(port)
    if [ ! -f "$TMP/certs/ca.pem" ]; then
        "$B/meridian-gateway" certs init --out "$TMP/certs" >/dev/null 2>&1
        "$B/meridian-gateway" certs issue --node gw --out "$TMP/certs" >/dev/null 2>&1
        "$B/meridian-gateway" certs issue --cluster bench --out "$TMP/certs" >/dev/null 2>&1
    fi
    taskset -c 1 "$B/meridian-gateway" --data-dir "$TMP/gw-$1" --federation "127.0.0.1:$fed" \
        --http "127.0.0.1:$http" --otlp-grpc "127.0.0.1:$gin" --otlp-http "127.0.0.1:$ghttp" \
        --tempo-http off --zipkin-http off \
        --tls-ca "$TMP/certs/ca.pem" --tls-cert "$TMP/certs/node-gw.pem" \
        --tls-key "$TMP/certs/node-gw-key.pem" 2>"$TMP/gw-$1.log" &
    gpid=$!; PIDS+=("$gpid")
    wait_port "$fed"
    taskset -c 0 "$B/meridian-agent" --cluster bench --gateway "https://127.0.0.1:$fed" \
        --tls-ca "$TMP/certs/ca.pem" --tls-cert "$TMP/certs/cluster-bench.pem" \
        --tls-key "$TMP/certs/cluster-bench-key.pem" --durability wal \
        --otlp-grpc "127.0.0.1:$in" --otlp-http 127.0.0.1:0 --zipkin 127.0.0.1:0 \
        --admin "127.0.0.1:$adm" --sampling 127.0.0.1:0 --sampling-grpc off --buffer-dir "$TMP/agent-$1" \
        2>"$TMP/agent-$1.log" &
    pid=$!; PIDS+=("$pid")
    wait_port "$in"
    loadgen --name "$1" --target "http://127.0.0.1:$in" \
        --count-metric "http://127.0.0.1:$adm/metrics#meridian_agent_spans_acked_total" \
        --sut-pid "$pid" --rate "$2" --duration "$DUR"
    stop "$pid"; stop "$gpid"
}

if want p1; then
    echo "== P1: OTLP in → OTLP out, memory, max rate"
    meridian_export p1-meridian 0 gzip
    meridian_export p1-meridian-uncompressed 0 none
    rotel_export p1-rotel 0
fi
if want p2; then
    echo "== P2: WAL + mTLS forward to a real gateway"
    meridian_gateway p2-meridian-wal-gateway 0
    meridian_gateway p2-meridian-wal-gateway-20k 20000
fi
if want p3; then
    echo "== P3: 10k spans/s offered"
    meridian_export p3-meridian-10k 10000 gzip
    meridian_export p3-meridian-10k-uncompressed 10000 none
    rotel_export p3-rotel-10k 10000
    meridian_gateway p3-meridian-wal-gateway-10k 10000
fi
if want tm; then
    echo "== TM: tail-sampling memory per held span"
    cargo bench --locked -p edge-agent --bench tail_memory 2>/dev/null | tee -a "$RESULTS"
fi

echo "== ratios"
python3 - "$RESULTS" <<'EOF'
import json, sys
r = {}
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("{"):
        d = json.loads(line); r[d["name"]] = d
def get(n, k): return r.get(n, {}).get(k, 0) or 0
m, ro = get("p1-meridian", "spans_per_cpu_second"), get("p1-rotel", "spans_per_cpu_second")
p2 = get("p2-meridian-wal-gateway", "spans_per_cpu_second")
mu = get("p1-meridian-uncompressed", "spans_per_cpu_second")
print(f"P1 spans/CPU-s: meridian {m:.0f}, rotel {ro:.0f}, ratio {m/ro if ro else 0:.2f}x (target >= 2x); meridian uncompressed {mu:.0f} ({mu/ro if ro else 0:.2f}x)")
print(f"P2 spans/CPU-s: meridian WAL+gateway {p2:.0f}, vs rotel memory {p2/ro if ro else 0:.2f}x (target >= 1.0x)")
mc, rc = get("p3-meridian-10k", "cpu_percent"), get("p3-rotel-10k", "cpu_percent")
print(f"P3 CPU% at 10k/s: meridian {mc}, rotel {rc}, ratio {mc/rc if rc else 0:.2f} (target <= 0.5); "
      f"RSS max meridian {get('p3-meridian-10k','rss_max_mib')} MiB, rotel {get('p3-rotel-10k','rss_max_mib')} MiB (target <= 20)")
wc = get("p3-meridian-wal-gateway-10k", "cpu_percent")
print(f"P3 with WAL+gateway: CPU% {wc}, RSS max {get('p3-meridian-wal-gateway-10k','rss_max_mib')} MiB")
tm = get("tail-memory", "bytes_per_span")
print(f"TM tail-sampling bytes per held span: {tm} (target <= 300)")
EOF
