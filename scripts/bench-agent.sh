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
#   P1  OTLP gRPC in → OTLP gRPC out, memory buffer: Meridian vs Rotel,
#       both corpora (small ≈264 B, prod ≈2 KB per span: `--corpus`)
#   P2  Meridian WAL durability + forward over mTLS to a real gateway,
#       both corpora, with the agent → gateway wire bytes per span (P8);
#       at 20k spans/s also with the memory buffer, for the cost of
#       durability at equal load
#   P3  0, 100, 1k and 10k spans/s offered: CPU% and RSS, Meridian vs Rotel
#   P8  offline payload bytes per span (meridian-wirebytes): plain OTLP +
#       zstd vs the columnar encoding, both corpora
#   TM  tail-sampling memory per held span (cargo bench in edge-agent)
#
# Every loaded figure is the median of REPS (default 3) alternating runs
# (Meridian, Rotel, Meridian, Rotel, …), reported with min and max by the
# summary at the end, which prints markdown tables for BENCHMARKS.md.
#
# OpenTelemetry Collector (contrib): no registry reachable here ships a
# runnable build (checked: PyPI `otelcol-contrib`/`opentelemetry-collector`,
# npm `otelcol-contrib`, Debian `apt-cache search otelcol`/
# `opentelemetry-collector`; crates.io has none; building it needs the Go
# module proxy, which is not reachable), so it has no row. Set OTELCOL to
# an `otelcol-contrib` binary to add one (P1, small corpus).
#
# MERIDIAN_BENCH_PROFILE (default dist) / MERIDIAN_BENCH_PROFILE_DIR pick
# the cargo profile and its directory under CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

DUR="${1:-20}"
ONLY="${ONLY:-p1 p2 p3 p8 tm}"   # e.g. ONLY=p1 scripts/bench-agent.sh
REPS="${REPS:-3}"
CORPORA="${CORPORA:-small prod}"
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

echo "== building (${MERIDIAN_BENCH_PROFILE:-dist} profile)"
cargo build --profile "${MERIDIAN_BENCH_PROFILE:-dist}" --locked -p edge-agent -p gateway -p integration-tests \
    --bin meridian-agent --bin meridian-gateway --bin meridian-loadgen --bin meridian-wirebytes >/dev/null
B="${CARGO_TARGET_DIR:-target}/${MERIDIAN_BENCH_PROFILE_DIR:-dist}"

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
loadgen() { taskset -c 1 "$B/meridian-loadgen" --corpus "${CORPUS:-small}" "$@" | tee -a "$RESULTS"; }
metric() { # URL NAME: the sum of a Prometheus counter
    curl -s "$1" | awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $2 } END { printf "%d", s }'
}
acked_to() { # PORT: bytes_acked of the established connections to it
    ss -tinH state established "( dport = :$1 )" | grep -o 'bytes_acked:[0-9]*' |
        awk -F: '{ s += $2 } END { printf "%d", s }'
}
idle() { # NAME PID: CPU and RSS of an agent that is offered nothing
    local tck c0 c1
    tck=$(getconf CLK_TCK)
    c0=$(awk '{ print $14 + $15 }' "/proc/$2/stat"); sleep "$DUR"
    c1=$(awk '{ print $14 + $15 }' "/proc/$2/stat")
    awk -v n="$1" -v c0="$c0" -v c1="$c1" -v t="$tck" -v d="$DUR" \
        -v rss="$(awk '/VmRSS/ { print $2 }' "/proc/$2/status")" 'BEGIN {
        printf "{\"name\":\"%s\",\"offered_rate\":0,\"delivered_spans\":0,\"sut_cpu_seconds\":%.2f,\"cpu_percent\":%.2f,\"rss_max_mib\":%.1f}\n",
            n, (c1 - c0) / t, 100 * (c1 - c0) / t / d, rss / 1024 }' | tee -a "$RESULTS"
}
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
    if [ "$2" = idle ]; then idle "$1" "$pid"; else
    loadgen --name "$1" --target "http://127.0.0.1:$in" --sink "127.0.0.1:$sink" \
        --sut-pid "$pid" --rate "$2" --duration "$DUR"; fi
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
    if [ "$2" = idle ]; then idle "$1" "$pid"; else
    loadgen --name "$1" --target "http://127.0.0.1:$in" --sink "127.0.0.1:$sink" \
        --sut-pid "$pid" --rate "$2" --duration "$DUR"; fi
    stop "$pid"
}

otelcol_export() { # NAME RATE: otelcol-contrib, OTLP in → OTLP out
    local in sink pid
    in=$(port); sink=$(port)
    cat >"$TMP/otelcol.yaml" <<YAML
receivers: { otlp: { protocols: { grpc: { endpoint: "127.0.0.1:$in" } } } }
exporters: { otlp: { endpoint: "127.0.0.1:$sink", compression: gzip, tls: { insecure: true } } }
service: { pipelines: { traces: { receivers: [otlp], exporters: [otlp] } } }
YAML
    taskset -c 0 "$OTELCOL" --config "$TMP/otelcol.yaml" >"$TMP/otelcol-$1.log" 2>&1 &
    pid=$!; PIDS+=("$pid")
    wait_port "$in"
    loadgen --name "$1" --target "http://127.0.0.1:$in" --sink "127.0.0.1:$sink" \
        --sut-pid "$pid" --rate "$2" --duration "$DUR"
    stop "$pid"
}

meridian_gateway() { # NAME RATE [DURABILITY: wal (default) | memory]
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
        --tls-key "$TMP/certs/cluster-bench-key.pem" --durability "${3:-wal}" \
        --otlp-grpc "127.0.0.1:$in" --otlp-http 127.0.0.1:0 --zipkin 127.0.0.1:0 \
        --admin "127.0.0.1:$adm" --sampling 127.0.0.1:0 --sampling-grpc off --buffer-dir "$TMP/agent-$1" \
        2>"$TMP/agent-$1.log" &
    pid=$!; PIDS+=("$pid")
    wait_port "$in"
    if [ "$2" = idle ]; then idle "$1" "$pid"; stop "$pid"; stop "$gpid"; return; fi
    # P8 on the wire: TCP payload bytes the gateway acknowledged on the
    # agent's connections to the federation port (TLS records, HTTP/2 and
    # gRPC framing, the ForwardRequest and its compressed payload), and
    # the payload bytes alone (the agent's counter).
    local m="http://127.0.0.1:$adm/metrics" w0 p0 u0 a0 line
    w0=$(acked_to "$fed"); p0=$(metric "$m" meridian_agent_forward_payload_bytes_total)
    u0=$(metric "$m" meridian_agent_forward_uncompressed_bytes_total)
    a0=$(metric "$m" meridian_agent_spans_forwarded_total)
    line=$(taskset -c 1 "$B/meridian-loadgen" --corpus "${CORPUS:-small}" --name "$1" \
        --target "http://127.0.0.1:$in" \
        --count-metric "$m#meridian_agent_spans_acked_total" \
        --sut-pid "$pid" --rate "$2" --duration "$DUR")
    python3 -c 'import json,sys
d = json.loads(sys.argv[1]); w, p, u, n = (int(x) for x in sys.argv[2:6])
if n > 0:
    d.update(wire_bytes_per_span=round(w / n, 2), payload_bytes_per_span=round(p / n, 2),
             framing_bytes_per_span=round((w - p) / n, 2), otlp_bytes_per_span=round(u / n, 1))
print(json.dumps(d))' "$line" "$(( $(acked_to "$fed") - w0 ))" \
        "$(( $(metric "$m" meridian_agent_forward_payload_bytes_total) - p0 ))" \
        "$(( $(metric "$m" meridian_agent_forward_uncompressed_bytes_total) - u0 ))" \
        "$(( $(metric "$m" meridian_agent_spans_forwarded_total) - a0 ))" | tee -a "$RESULTS"
    stop "$pid"; stop "$gpid"
}

if want p1; then
    echo "== P1: OTLP in → OTLP out, memory, max rate ($REPS alternating runs)"
    for CORPUS in $CORPORA; do
        for _ in $(seq "$REPS"); do
            meridian_export "p1-meridian-$CORPUS" 0 gzip
            rotel_export "p1-rotel-$CORPUS" 0
            meridian_export "p1-meridian-uncompressed-$CORPUS" 0 none
        done
    done
    CORPUS=small
    if [ -n "${OTELCOL:-}" ]; then
        for _ in $(seq "$REPS"); do otelcol_export p1-otelcol-small 0; done
    fi
fi
if want p2; then
    echo "== P2: WAL + mTLS forward to a real gateway (+ P8 wire bytes)"
    for CORPUS in $CORPORA; do
        for _ in $(seq "$REPS"); do
            meridian_gateway "p2-meridian-wal-gateway-$CORPUS" 0
            meridian_gateway "p2-meridian-wal-gateway-20k-$CORPUS" 20000
            # The same load and destination with the memory buffer: what
            # durability costs at equal load.
            meridian_gateway "p2-meridian-memory-gateway-20k-$CORPUS" 20000 memory
        done
    done
    CORPUS=small
fi
if want p3; then
    echo "== P3: 0, 100, 1k and 10k spans/s offered"
    for rate in idle 100 1000 10000; do
        for _ in $(seq "$REPS"); do
            meridian_export "p3-meridian-$rate" "$rate" gzip
            rotel_export "p3-rotel-$rate" "$rate"
        done
        meridian_gateway "p3-meridian-wal-gateway-$rate" "$rate"
    done
fi
if want p8; then
    echo "== P8: payload bytes per span, offline (deterministic)"
    for c in $CORPORA; do "$B/meridian-wirebytes" --corpus "$c" | tee -a "$RESULTS"; done
fi
if want tm; then
    echo "== TM: tail-sampling memory per held span"
    cargo bench --locked -p edge-agent --bench tail_memory 2>/dev/null | tee -a "$RESULTS"
fi

echo "== summary (median of $REPS, min–max)"
python3 scripts/bench-agent-summary.py "$RESULTS"
