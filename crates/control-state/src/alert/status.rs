//! The per-alert state machine (pure): inactive → pending → firing →
//! resolved. A transition into firing or resolved is a numbered
//! notification (`transition`); the leader replicates the new status
//! through Raft *before* notifying, and records through Raft that the
//! notification was sent, so a new leader sends exactly the ones still
//! owed (at-least-once: a leader dying between sending and recording makes
//! its successor send that one again).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    #[default]
    Inactive,
    Pending,
    Firing,
    Resolved,
}

/// An alert's replicated status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertStatus {
    pub state: AlertState,
    /// When the current state began (ms).
    pub since_ms: i64,
    /// When the alert last started firing (ms), for `startsAt`.
    pub fired_at_ms: i64,
    /// The last evaluated value.
    pub value: Option<f64>,
    /// Counts notifying transitions (into firing or resolved).
    pub transition: u64,
    /// The last transition a notification was sent for.
    pub notified: u64,
    /// Example trace ids (hex) from the series when it last changed.
    #[serde(default)]
    pub exemplars: Vec<String>,
}

impl AlertStatus {
    /// Whether a notification is owed for the current state.
    pub fn owes_notification(&self) -> bool {
        self.transition > self.notified
            && matches!(self.state, AlertState::Firing | AlertState::Resolved)
    }
}

/// The next status given whether the condition holds at `now_ms`.
pub fn step(
    prev: &AlertStatus,
    holds: bool,
    value: Option<f64>,
    now_ms: i64,
    for_ms: i64,
) -> AlertStatus {
    let mut next = AlertStatus {
        value,
        ..prev.clone()
    };
    let mut to = |state: AlertState, notify: bool| {
        next.state = state;
        next.since_ms = now_ms;
        if notify {
            next.transition += 1;
        }
        if state == AlertState::Firing {
            next.fired_at_ms = now_ms;
        }
    };
    match (prev.state, holds) {
        (AlertState::Inactive | AlertState::Resolved, true) if for_ms <= 0 => {
            to(AlertState::Firing, true)
        }
        (AlertState::Inactive | AlertState::Resolved, true) => to(AlertState::Pending, false),
        (AlertState::Pending, true) if now_ms - prev.since_ms >= for_ms => {
            to(AlertState::Firing, true)
        }
        (AlertState::Pending, false) => to(AlertState::Inactive, false),
        (AlertState::Firing, false) => to(AlertState::Resolved, true),
        _ => {}
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_with_a_for_duration() {
        let s0 = AlertStatus::default();
        let s1 = step(&s0, true, Some(0.5), 1_000, 60_000);
        assert_eq!((s1.state, s1.transition), (AlertState::Pending, 0));
        let s2 = step(&s1, true, Some(0.5), 30_000, 60_000);
        assert_eq!(s2.state, AlertState::Pending, "not yet for 60 s");
        let s3 = step(&s2, true, Some(0.5), 61_000, 60_000);
        assert_eq!(
            (s3.state, s3.transition, s3.fired_at_ms),
            (AlertState::Firing, 1, 61_000)
        );
        assert!(s3.owes_notification());
        let s4 = step(&s3, true, Some(0.6), 70_000, 60_000);
        assert_eq!((s4.state, s4.transition), (AlertState::Firing, 1));
        let s5 = step(&s4, false, Some(0.0), 80_000, 60_000);
        assert_eq!((s5.state, s5.transition), (AlertState::Resolved, 2));
        // A blip shorter than `for` never fires.
        let p = step(&s5, true, None, 90_000, 60_000);
        let q = step(&p, false, None, 100_000, 60_000);
        assert_eq!((q.state, q.transition), (AlertState::Inactive, 2));
        // for = 0 fires at once.
        assert_eq!(step(&s0, true, None, 0, 0).state, AlertState::Firing);
    }
}
