#!/usr/bin/env python3
"""Summary of scripts/bench-agent.sh: markdown tables for BENCHMARKS.md
from target/bench-agent/results.jsonl. Each loaded figure is the median of
the runs of the same name, with min and max."""
import json
import statistics
import sys

runs = {}
for line in open(sys.argv[1] if len(sys.argv) > 1 else "target/bench-agent/results.jsonl"):
    line = line.strip()
    if line.startswith("{"):
        d = json.loads(line)
        runs.setdefault(d["name"], []).append(d)


def med(name, key):
    vals = [r.get(key) for r in runs.get(name, []) if r.get(key) is not None]
    if not vals:
        return None
    return statistics.median(vals), min(vals), max(vals), len(vals)


def fmt(name, key, digits=0):
    m = med(name, key)
    if m is None:
        return "–"
    f = f"{{:,.{digits}f}}"
    if m[3] == 1:
        return f.format(m[0])
    return f"{f.format(m[0])} ({f.format(m[1])}–{f.format(m[2])})"


def ratio(a, b, key):
    x, y = med(a, key), med(b, key)
    return f"{x[0] / y[0]:.2f}×" if x and y and y[0] else "–"


print("\n| run | corpus | spans per CPU-second | CPU % | RSS max MiB |")
print("|---|---|---:|---:|---:|")
for corpus in ("small", "prod"):
    for n in ("p1-meridian", "p1-meridian-uncompressed", "p1-rotel", "p1-otelcol",
              "p2-meridian-wal-gateway", "p2-meridian-wal-gateway-20k",
              "p2-meridian-memory-gateway-20k"):
        name = f"{n}-{corpus}"
        if name in runs:
            print(f"| {n} | {corpus} | {fmt(name, 'spans_per_cpu_second')} | "
                  f"{fmt(name, 'cpu_percent', 1)} | {fmt(name, 'rss_max_mib', 1)} |")
for corpus in ("small", "prod"):
    print(f"\nP1 {corpus}: Meridian / Rotel = "
          f"{ratio(f'p1-meridian-{corpus}', f'p1-rotel-{corpus}', 'spans_per_cpu_second')} (target ≥ 2×); "
          f"P2 / Rotel memory = "
          f"{ratio(f'p2-meridian-wal-gateway-{corpus}', f'p1-rotel-{corpus}', 'spans_per_cpu_second')} (target ≥ 1×)")
    w, m = med(f"p2-meridian-wal-gateway-20k-{corpus}", "spans_per_cpu_second"), \
        med(f"p2-meridian-memory-gateway-20k-{corpus}", "spans_per_cpu_second")
    if w and m and w[0]:
        print(f"Durability at 20k spans/s, {corpus}: CPU per span WAL / memory = "
              f"{m[0] / w[0]:.2f}× (+{100 * (m[0] / w[0] - 1):.0f} %, target < +10 %)")

chart = []
if any(n.startswith("p3-") for n in runs):
    print("\n| P3 offered spans/s | Meridian CPU % | Rotel CPU % | ratio | Meridian RSS MiB | Rotel RSS MiB | Meridian WAL + gateway CPU % |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
for rate in ("idle", "100", "1000", "10000"):
    m, r, g = f"p3-meridian-{rate}", f"p3-rotel-{rate}", f"p3-meridian-wal-gateway-{rate}"
    if m not in runs and r not in runs:
        continue
    print(f"| {0 if rate == 'idle' else rate} | {fmt(m, 'cpu_percent', 2)} | {fmt(r, 'cpu_percent', 2)} | "
          f"{ratio(m, r, 'cpu_percent')} | {fmt(m, 'rss_max_mib', 1)} | {fmt(r, 'rss_max_mib', 1)} | "
          f"{fmt(g, 'cpu_percent', 2)} |")
    chart.append((rate, med(m, "cpu_percent"), med(r, "cpu_percent")))
if chart:
    top = max((x[0] for _, *v in chart for x in v if x), default=1) or 1
    print("\nP3 CPU % (median), one # per 2.5 % of the largest:")
    for rate, m, r in chart:
        for who, v in (("meridian", m), ("rotel", r)):
            if v:
                print(f"  {rate:>6} {who:<8} {'#' * max(1, round(40 * v[0] / top))} {v[0]:.2f}")

wire = [(n, v[-1]) for n, v in runs.items() if n.startswith("p2-") and "wire_bytes_per_span" in v[-1]]
if wire:
    print("\n| P8 on the wire (P2 runs) | TCP bytes/span | payload bytes/span | framing bytes/span | OTLP bytes/span |")
    print("|---|---:|---:|---:|---:|")
    for n, _ in sorted(wire):
        print(f"| {n} | {fmt(n, 'wire_bytes_per_span', 2)} | {fmt(n, 'payload_bytes_per_span', 2)} | "
              f"{fmt(n, 'framing_bytes_per_span', 2)} | {fmt(n, 'otlp_bytes_per_span', 1)} |")
p8 = [v[-1] for n, v in runs.items() if n.startswith("p8-")]
if p8:
    print("\n| P8 offline | corpus | bytes/span | vs OTLP + zstd, 512 alone | encode ns/span |")
    print("|---|---|---:|---:|---:|")
    for d in p8:
        print(f"| {d['encoding']} | {d['corpus']} | {d['bytes_per_span']:.2f} | "
              f"{d['ratio_to_otlp_zstd_512']:.3f} | {d['encode_ns_per_span'] or '–'} |")
tm = runs.get("tail-memory")
if tm:
    print(f"\nTM tail-sampling bytes per held span: {tm[-1].get('bytes_per_span')} (target ≤ 300)")
