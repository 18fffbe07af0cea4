//! Per-window RED aggregation (pure: the caller passes the time).
//!
//! Spans are windowed by the time the agent received them (its own clock),
//! in windows of [`WINDOW_MS`]; a window closes once the clock passed its
//! end, and [`Windows::take_closed`] hands it out exactly once. Memory is
//! bounded by the series limit of the tap: at most `max_series` (service,
//! operation) pairs × 6 kinds × 3 statuses per window, and only the
//! current window (plus one that a late request may still touch) is open.

use std::collections::{BTreeMap, HashMap};

use model::red::{Aggregate, WINDOW_MS, window_start};
use proto::metrics::{RedWindow, WindowBatch};

/// (service, operation, span kind, status code), already folded.
pub type WindowKey = (String, String, &'static str, &'static str);

/// One span as the window needs it.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    pub duration_ns: u64,
    pub trace_id: &'a [u8],
}

#[derive(Debug, Default)]
struct Window {
    series: HashMap<WindowKey, Aggregate>,
    folded: u64,
}

/// Open windows by start time.
#[derive(Debug, Default)]
pub struct Windows {
    open: BTreeMap<i64, Window>,
}

impl Windows {
    pub fn add(&mut self, now_ms: i64, key: WindowKey, spans: &[Observation<'_>], folded: u64) {
        let w = self
            .open
            .entry(window_start(now_ms, WINDOW_MS))
            .or_default();
        w.folded += folded;
        let error = model::red::is_error(key.3);
        let agg = w.series.entry(key).or_default();
        for s in spans {
            agg.observe(s.duration_ns, error, Some(s.trace_id));
        }
    }

    /// The windows whose end is at or before `now_ms` (all of them when
    /// `all`, at shutdown), oldest first, as the wire batch; `epoch` tells
    /// this agent process's windows apart from a restarted one's.
    pub fn take_closed(&mut self, now_ms: i64, all: bool, epoch: u64) -> Option<WindowBatch> {
        let mut windows = Vec::new();
        while let Some(entry) = self.open.first_entry() {
            if !all && *entry.key() + WINDOW_MS > now_ms {
                break;
            }
            let (start, w) = entry.remove_entry();
            let mut series: Vec<_> = w
                .series
                .iter()
                .map(|((service, operation, kind, status), agg)| {
                    proto::red::to_series(service, operation, kind, status, agg)
                })
                .collect();
            series.sort_by(|a, b| {
                (&a.service, &a.operation, &a.span_kind, &a.status_code).cmp(&(
                    &b.service,
                    &b.operation,
                    &b.span_kind,
                    &b.status_code,
                ))
            });
            windows.push(RedWindow {
                start_ms: start,
                duration_ms: WINDOW_MS as u32,
                series,
                folded_spans: w.folded,
                agent_epoch: epoch,
            });
        }
        (!windows.is_empty()).then_some(WindowBatch { windows })
    }

    /// Series held in open windows.
    pub fn series(&self) -> usize {
        self.open.values().map(|w| w.series.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(op: &str) -> WindowKey {
        ("svc".into(), op.into(), "server", "ERROR")
    }

    #[test]
    fn windows_close_once_their_end_passed() {
        let mut w = Windows::default();
        let obs = [Observation {
            duration_ns: 5_000_000,
            trace_id: &[1; 16],
        }];
        w.add(12_000, key("a"), &obs, 0);
        w.add(19_999, key("a"), &obs, 2);
        w.add(20_000, key("b"), &obs, 0);
        assert!(w.take_closed(19_999, false, 7).is_none());
        let b = w.take_closed(20_000, false, 7).expect("first window");
        assert_eq!(b.windows.len(), 1);
        let win = &b.windows[0];
        assert_eq!(
            (win.start_ms, win.folded_spans, win.agent_epoch),
            (10_000, 2, 7)
        );
        assert_eq!(win.series[0].count, 2);
        assert_eq!(win.series[0].errors, 2);
        assert!(w.take_closed(20_000, false, 7).is_none(), "handed out once");
        let rest = w.take_closed(21_000, true, 7).expect("shutdown flush");
        assert_eq!(rest.windows[0].start_ms, 20_000);
        assert_eq!(w.series(), 0);
    }
}
