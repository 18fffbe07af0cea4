//! The query APIs' parameter parsers: `/api/traces` (pairs, trace ids,
//! windows, durations, tags, span kind), Zipkin's `/api/v2/traces` and
//! `/api/v2/traceMany` (`zipkin::params`) and the RED/SPM window
//! arithmetic.

use query::{
    QueryLimits,
    duration::parse_go_duration,
    jaeger::params,
    window::{self, MsWindow, Param},
};

use super::{BASE, Target};

pub const PARAMS: Target = Target {
    name: "query-params",
    about: "query strings: jaeger::params (pairs, traces_request, span_kind), zipkin::params (search, trace_many, trace_id), parse_go_duration, window arithmetic",
    bound: "64 × input + 256 KiB (every `k=v` pair is two Strings: 48 bytes for a 2-byte pair; hyper bounds the URI)",
    dict: &[
        b"&",
        b"=",
        b"%",
        b"traceID=",
        b"lookback=",
        b"start=",
        b"end=",
        b"minDuration=",
        b"maxDuration=",
        b"tags=",
        b"spanKind=",
        b"limit=",
        b"-9223372036854775808",
        b"9223372036854775807",
        b"18446744073709551615",
        b"1h2m3.5s",
        b"\xc2\xb5s",
        b"custom",
        b"annotationQuery=",
        b" and ",
        b"traceIds=",
        b"endTs=",
    ],
    seeds,
    run,
};

fn seeds() -> Vec<Vec<u8>> {
    [
        "service=frontend&operation=GET%20%2F&lookback=1h&limit=20&minDuration=1ms&maxDuration=2s&tags=%7B%22http.status_code%22%3A%22500%22%7D&spanKind=server",
        "traceID=5b8efff798038103d269b633813fc60c&traceID=eee19b7ec3c1b174",
        "service=a&start=1700000000000000&end=1700000360000000&lookback=custom",
        "service=a&lookback=-9223372036854775808&endTs=9223372036854775807&step=60000",
        "serviceName=frontend&spanName=get&remoteServiceName=db&annotationQuery=http.method%3DGET%20and%20error&minDuration=100&maxDuration=200&endTs=1700000000000&lookback=900000&limit=10",
        "traceIds=463ac35c9f6413ad,5af7183fb1d4cf5f6b221d5bc9e6496c",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

fn run(input: &[u8]) -> usize {
    let text = String::from_utf8_lossy(input);
    let pairs = params::pairs(Some(text.as_ref()));
    let limits = QueryLimits::default();
    let _ = params::traces_request(&pairs, 1_700_000_000_000_000_000, &limits);
    let _ = params::span_kind(&pairs);
    let _ = query::zipkin::params::search(&pairs, 1_700_000_000_000, &limits);
    let _ = query::zipkin::params::trace_many(&pairs, &limits);
    let _ = query::zipkin::params::trace_id(&text);
    let max_ms = limits.max_window_ms();
    let mut numbers = Vec::new();
    for (_, v) in &pairs {
        let _ = parse_go_duration(v);
        if let Ok(n) = v.parse::<i64>() {
            numbers.push(n);
        }
    }
    // The RED/SPM windows: every pair of numbers as end/lookback, from/to
    // and a step.
    for w in numbers.windows(3).take(64) {
        let (a, b, c) = (
            Param::new("a", w[0]),
            Param::new("b", w[1]),
            Param::new("c", w[2]),
        );
        if let Ok(win) = MsWindow::lookback(a, b, max_ms) {
            let _ = window::points(win.len_ms(), c, 11_000);
        }
        if let Ok(win) = MsWindow::between(a, b, max_ms) {
            let _ = window::points(win.len_ms(), c, 11_000);
        }
        let _ = window::micros_to_nanos("c", w[2] as u64);
        let _ = a.positive();
        let _ = b.non_negative();
    }
    // `traces_request` compiles a `q=` TraceQL query: up to 64 regular
    // expressions within their compiled-size caps, as the `traceql` target.
    let traceql = if pairs.iter().any(|(k, _)| k == "q") {
        64 * (512 << 10)
    } else {
        0
    };
    64 * input.len() + traceql + BASE
}
