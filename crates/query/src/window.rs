//! Query limits and checked time windows, shared by every query endpoint
//! (Jaeger, the stitched views, the RED/SPM metrics API).
//!
//! Every time parameter comes from the client. Windows are built only with
//! checked arithmetic: a negative, zero (where meaningless), overflowing or
//! too long window is a [`WindowError`] naming the parameter, answered 400.
//! A stepped window is refused before any loop when its point count
//! (computed with checked arithmetic) is above the caller's maximum.

use std::time::Duration;

use model::RetentionPolicy;

/// Default longest window a query may cover when the retention does not
/// say otherwise.
pub const DEFAULT_MAX_WINDOW: Duration = Duration::from_secs(7 * 24 * 3_600);
/// Most `traceID` parameters one `/api/traces` request may carry.
pub const DEFAULT_MAX_TRACE_IDS: usize = 1_000;
/// Most spans of one trace a whole-trace load returns; the rest are left
/// out and the trace says "truncated" in its `warnings`.
pub const DEFAULT_MAX_TRACE_SPANS: usize = 50_000;
/// How long one store query may run before it is interrupted.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);

/// The bounds of one query request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// Longest time window (`start`..`end`, `lookback`) a query may cover;
    /// beyond it the request is refused with 400.
    pub max_window: Duration,
    /// Most trace ids per `/api/traces` request; beyond it, 400.
    pub max_trace_ids: usize,
    /// Most spans per loaded trace; beyond it the trace is truncated.
    pub max_trace_spans: usize,
    /// How long a store query may run (enforced by the store backend).
    pub deadline: Duration,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            max_window: DEFAULT_MAX_WINDOW,
            max_trace_ids: DEFAULT_MAX_TRACE_IDS,
            max_trace_spans: DEFAULT_MAX_TRACE_SPANS,
            deadline: DEFAULT_DEADLINE,
        }
    }
}

impl QueryLimits {
    /// The limits for a store kept under `policy`: the window may reach back
    /// as far as the longest retention, since nothing older is stored.
    /// A policy that keeps some spans forever keeps the default window.
    pub fn from_retention(policy: &RetentionPolicy) -> Self {
        let hours = policy
            .default_hours
            .map(|d| policy.clusters.values().copied().fold(d, u64::max));
        let max_window = hours
            .and_then(|h| h.checked_mul(3_600))
            .map_or(DEFAULT_MAX_WINDOW, Duration::from_secs);
        Self {
            max_window,
            ..Self::default()
        }
    }

    /// [`max_window`](Self::max_window) in milliseconds (saturating).
    pub fn max_window_ms(&self) -> i64 {
        i64::try_from(self.max_window.as_millis()).unwrap_or(i64::MAX)
    }

    /// [`max_window`](Self::max_window) in nanoseconds (saturating).
    pub fn max_window_nanos(&self) -> u64 {
        u64::try_from(self.max_window.as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A time parameter the query cannot serve. Every variant names the
/// parameter; `Display` is the message the client gets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("parameter '{param}' must be positive, got {value}")]
    NotPositive { param: &'static str, value: i64 },
    #[error("parameter '{param}' must not be negative, got {value}")]
    Negative { param: &'static str, value: i64 },
    #[error("parameter '{param}' is out of range")]
    OutOfRange { param: &'static str },
    #[error("parameter '{param}' must be before '{end}'")]
    Inverted {
        param: &'static str,
        end: &'static str,
    },
    #[error(
        "parameter '{param}': a window of {window_ms} ms is longer than the {max_ms} ms this gateway serves"
    )]
    TooLong {
        param: &'static str,
        window_ms: i64,
        max_ms: i64,
    },
    #[error("{points} points per series; at most {max} (use a larger '{param}')")]
    TooManyPoints {
        param: &'static str,
        points: i64,
        max: i64,
    },
}

/// A named millisecond time parameter.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub value: i64,
}

impl Param {
    pub fn new(name: &'static str, value: i64) -> Self {
        Self { name, value }
    }

    /// The value, refused when below zero (before the epoch).
    pub fn non_negative(self) -> Result<i64, WindowError> {
        if self.value < 0 {
            return Err(WindowError::Negative {
                param: self.name,
                value: self.value,
            });
        }
        Ok(self.value)
    }

    /// The value, refused when zero or below.
    pub fn positive(self) -> Result<i64, WindowError> {
        if self.value <= 0 {
            return Err(WindowError::NotPositive {
                param: self.name,
                value: self.value,
            });
        }
        Ok(self.value)
    }
}

/// A checked `[from, to]` window in milliseconds: `0 <= from < to`, at
/// most the limit's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsWindow {
    pub from: i64,
    pub to: i64,
}

impl MsWindow {
    /// `(end − lookback, end]`: `end` not negative, `lookback` positive and
    /// at most `max_ms`.
    pub fn lookback(end: Param, lookback: Param, max_ms: i64) -> Result<Self, WindowError> {
        let to = end.non_negative()?;
        let len = lookback.positive()?;
        check_len(lookback.name, len, max_ms)?;
        // Both are non-negative, so this cannot overflow; checked anyway.
        let from = to.checked_sub(len).ok_or(WindowError::OutOfRange {
            param: lookback.name,
        })?;
        Ok(Self { from, to })
    }

    /// `[from, to]`: both not negative, `from < to`, at most `max_ms` long.
    pub fn between(from: Param, to: Param, max_ms: i64) -> Result<Self, WindowError> {
        let lo = from.non_negative()?;
        let hi = to.non_negative()?;
        if lo >= hi {
            return Err(WindowError::Inverted {
                param: from.name,
                end: to.name,
            });
        }
        let len = hi
            .checked_sub(lo)
            .ok_or(WindowError::OutOfRange { param: from.name })?;
        check_len(from.name, len, max_ms)?;
        Ok(Self { from: lo, to: hi })
    }

    pub fn len_ms(&self) -> i64 {
        self.to - self.from
    }
}

fn check_len(param: &'static str, len: i64, max_ms: i64) -> Result<(), WindowError> {
    if len > max_ms {
        return Err(WindowError::TooLong {
            param,
            window_ms: len,
            max_ms,
        });
    }
    Ok(())
}

/// Points of `step` in a window of `len` (`len / step`), refused when
/// `step` is not positive or the count is above `max`. Callers loop over
/// `1..=points`, never over time.
pub fn points(len: i64, step: Param, max: i64) -> Result<i64, WindowError> {
    let step_ms = step.positive()?;
    let n = len
        .checked_div(step_ms)
        .ok_or(WindowError::OutOfRange { param: step.name })?;
    if n > max {
        return Err(WindowError::TooManyPoints {
            param: step.name,
            points: n,
            max,
        });
    }
    Ok(n)
}

/// Microseconds since the epoch (Jaeger's `start`/`end`) in nanoseconds,
/// refused when the product overflows.
pub fn micros_to_nanos(param: &'static str, us: u64) -> Result<u64, WindowError> {
    us.checked_mul(1_000)
        .ok_or(WindowError::OutOfRange { param })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    #[test]
    fn lookback_windows_are_checked() {
        let w = |end, lb| {
            MsWindow::lookback(
                Param::new("endTs", end),
                Param::new("lookback", lb),
                7 * DAY,
            )
        };
        assert_eq!(
            w(5_000, 2_000),
            Ok(MsWindow {
                from: 3_000,
                to: 5_000
            })
        );
        assert_eq!(w(5_000, 7 * DAY).map(|w| w.len_ms()), Ok(7 * DAY));
        for (end, lb, param) in [
            (0, i64::MIN, "lookback"),
            (0, -1, "lookback"),
            (0, 0, "lookback"),
            (i64::MIN, 1, "endTs"),
            (-1, 1, "endTs"),
            (i64::MAX, i64::MAX, "lookback"),
            (0, 7 * DAY + 1, "lookback"),
        ] {
            let e = w(end, lb).expect_err("refused");
            assert!(e.to_string().contains(param), "{end} {lb}: {e}");
        }
    }

    #[test]
    fn between_windows_are_checked() {
        let w = |f, t| MsWindow::between(Param::new("from", f), Param::new("to", t), 7 * DAY);
        assert_eq!(w(1, 2), Ok(MsWindow { from: 1, to: 2 }));
        for (f, t) in [(i64::MIN, i64::MAX), (0, i64::MAX), (2, 1), (1, 1), (-5, 5)] {
            let e = w(f, t).expect_err("refused");
            assert!(
                e.to_string().contains("'from'") || e.to_string().contains("'to'"),
                "{e}"
            );
        }
    }

    #[test]
    fn points_are_counted_before_any_loop() {
        assert_eq!(points(60_000, Param::new("step", 10_000), 10), Ok(6));
        assert!(points(60_000, Param::new("step", 1), 10).is_err());
        assert!(points(60_000, Param::new("step", 0), 10).is_err());
        assert!(points(60_000, Param::new("step", i64::MIN), 10).is_err());
        assert!(micros_to_nanos("end", u64::MAX).is_err());
    }

    #[test]
    fn retention_sets_the_window() {
        let mut p = RetentionPolicy::default();
        assert_eq!(
            QueryLimits::from_retention(&p).max_window,
            DEFAULT_MAX_WINDOW
        );
        p.default_hours = Some(72);
        p.clusters.insert("eu".into(), 240);
        assert_eq!(
            QueryLimits::from_retention(&p).max_window,
            Duration::from_secs(240 * 3_600)
        );
        p.default_hours = Some(u64::MAX);
        assert_eq!(
            QueryLimits::from_retention(&p).max_window,
            DEFAULT_MAX_WINDOW
        );
    }
}
