//! Record keys of RED metrics (store `records`, kinds `Red10s`, `Red1m`,
//! `Red1h`):
//!
//! `cluster|service|operation|span_kind|status_code|start|writer`
//!
//! with each label escaped (`%` → `%25`, `|` → `%7C`), `start` the bucket
//! start in ms zero-padded to 13 digits, and `writer` the agent id and its
//! process epoch (`agent.epoch`) for 10 s windows, empty for rollups. The
//! writer in the key is what makes a replayed window replace itself instead
//! of adding: the same agent process and window give the same key. Values
//! are `metrics.proto` `RedSeries` encodings with the labels left empty.

use model::red::{Aggregate, SeriesKey};
use prost::Message;
use store::RecordKind;

/// A stored resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resolution {
    S10,
    M1,
    H1,
}

impl Resolution {
    pub const ALL: [Resolution; 3] = [Resolution::S10, Resolution::M1, Resolution::H1];

    pub fn width_ms(self) -> i64 {
        match self {
            Resolution::S10 => 10_000,
            Resolution::M1 => 60_000,
            Resolution::H1 => 3_600_000,
        }
    }

    pub fn kind(self) -> RecordKind {
        match self {
            Resolution::S10 => RecordKind::Red10s,
            Resolution::M1 => RecordKind::Red1m,
            Resolution::H1 => RecordKind::Red1h,
        }
    }
}

fn esc(s: &str) -> String {
    s.replace('%', "%25").replace('|', "%7C")
}

fn unesc(s: &str) -> String {
    s.replace("%7C", "|").replace("%25", "%")
}

/// The key of one series' bucket.
pub fn key(series: &SeriesKey, start_ms: i64, writer: &str) -> String {
    format!(
        "{}|{}|{}|{}|{}|{:013}|{}",
        esc(&series.cluster),
        esc(&series.service),
        esc(&series.operation),
        esc(&series.span_kind),
        esc(&series.status_code),
        start_ms.max(0),
        esc(writer)
    )
}

/// The longest key prefix the given labels fix (each one only when every
/// label before it is given too).
pub fn prefix(cluster: Option<&str>, service: Option<&str>, operation: Option<&str>) -> String {
    let mut p = String::new();
    for part in [cluster, service, operation] {
        match part {
            Some(v) => {
                p.push_str(&esc(v));
                p.push('|');
            }
            None => break,
        }
    }
    p
}

/// (series, bucket start, writer) of a key.
pub fn parse(key: &str) -> Option<(SeriesKey, i64, String)> {
    let mut it = key.split('|');
    let mut next = || it.next().map(unesc);
    let series = SeriesKey {
        cluster: next()?,
        service: next()?,
        operation: next()?,
        span_kind: next()?,
        status_code: next()?,
    };
    let start = next()?.parse().ok()?;
    let writer = next()?;
    Some((series, start, writer))
}

pub fn encode_value(agg: &Aggregate) -> Vec<u8> {
    proto::red::to_series("", "", "", "", agg).encode_to_vec()
}

pub fn decode_value(bytes: &[u8]) -> Option<Aggregate> {
    let s = proto::metrics::RedSeries::decode(bytes).ok()?;
    proto::red::from_series(&s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_with_separators_in_labels() {
        let s = SeriesKey {
            cluster: "eu".into(),
            service: "a|b%7C".into(),
            operation: "GET /x".into(),
            span_kind: "server".into(),
            status_code: "OK".into(),
        };
        let k = key(&s, 1_700_000_000_000, "agent.1");
        assert!(k.starts_with(&prefix(Some("eu"), Some("a|b%7C"), None)));
        assert_eq!(parse(&k), Some((s, 1_700_000_000_000, "agent.1".into())));
        assert_eq!(prefix(None, Some("x"), None), "");
    }
}
