//! The evaluator: on the Raft leader only, every `interval`.
//!
//! For each rule: read the RED series it selects over its window, ending
//! [`EVAL_LAG_MS`] before now (agents send a window about 11 s after it
//! opens; without the lag the newest, still incomplete window would fake a
//! drop in rate), compute the value, step the state machine, and replicate
//! a changed status through Raft. Only after that write committed is a
//! notification offered, and every notification still owed in the
//! replicated state is offered again at each pass (so a new leader sends
//! what its predecessor could not, and nothing twice once recorded).

use std::sync::Arc;

use model::red::Aggregate;
use store::SpanStore;
use tokio_util::sync::CancellationToken;

use control_plane::Proposer;
use control_state::{
    Command,
    alert::{
        rule::{self, Condition, Op},
        status::{self as eval, AlertStatus},
    },
};

use super::{
    AlertsConfig, anomaly,
    notify::{Job, Notifier},
};
use crate::red::{
    RedConfig,
    keys::Resolution,
    query::{self, QueryError},
};

/// How far behind now the evaluated window ends.
pub const EVAL_LAG_MS: i64 = 20_000;

/// (condition holds, value, exemplar trace ids) at `now_ms`.
pub async fn evaluate(
    store: &Arc<dyn SpanStore>,
    c: &Condition,
    now_ms: i64,
) -> Result<(bool, Option<f64>, Vec<String>), QueryError> {
    let end = now_ms - EVAL_LAG_MS;
    let history = if c.anomaly {
        anomaly::BASELINE_POINTS as i64
    } else {
        0
    };
    let from = end - c.window_ms * (history + 1);
    // 10 s records are kept a day; older baselines read the minutes.
    let res = if now_ms - from <= 23 * 3_600_000 {
        Resolution::S10
    } else {
        Resolution::M1
    };
    let rows = query::load(store, res, &c.selector(), from, end).await?;
    let buckets = query::bucket(rows, from, c.window_ms, |_| ());
    let per_window = buckets.into_values().next().unwrap_or_default();
    let last_start = end - c.window_ms;
    let current = per_window.get(&last_start).cloned().unwrap_or_default();
    let value = c.metric.value(&current, c.window_ms);
    let exemplars = current
        .exemplars
        .iter()
        .map(|e| e.trace_id.clone())
        .collect();
    let holds = if c.anomaly {
        let past: Vec<f64> = (0..history)
            .filter_map(|i| {
                let t = from + i * c.window_ms;
                let agg = per_window
                    .get(&t)
                    .cloned()
                    .unwrap_or_else(Aggregate::default);
                c.metric.value(&agg, c.window_ms)
            })
            .collect();
        value
            .and_then(|v| anomaly::judge(&past, v, c.threshold))
            .is_some_and(|j| j.anomalous)
    } else {
        value.is_some_and(|v| match c.op {
            Op::Above => v > c.threshold,
            Op::Below => v < c.threshold,
        })
    };
    Ok((holds, value, exemplars))
}

/// One pass (the caller checked leadership).
pub async fn pass(
    plane: &dyn Proposer,
    store: &Arc<dyn SpanStore>,
    notifier: &Notifier,
    now_ms: i64,
) {
    let state = plane.state();
    for (name, r) in &state.alert_rules {
        let c = match rule::parse(&r.expr) {
            Ok(c) => c,
            Err(error) => {
                tracing::warn!(rule = %name, %error, "skipping an alert rule that does not parse");
                continue;
            }
        };
        let prev = state.alert_states.get(name).cloned().unwrap_or_default();
        let (holds, value, exemplars) = match evaluate(store, &c, now_ms).await {
            Ok(x) => x,
            Err(error) => {
                tracing::warn!(rule = %name, %error, "alert evaluation failed; next pass retries");
                continue;
            }
        };
        let for_ms = i64::try_from(r.for_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let mut next = eval::step(&prev, holds, value, now_ms, for_ms);
        let status: AlertStatus = if next.state != prev.state || next.transition != prev.transition
        {
            next.exemplars = exemplars;
            if !plane.is_leader() {
                return;
            }
            match plane
                .write(Command::SetAlertStatus {
                    name: name.clone(),
                    status: next.clone(),
                })
                .await
            {
                Ok(_) => {
                    tracing::info!(rule = %name, from = ?prev.state, to = ?next.state, "alert state changed");
                    next
                }
                Err(error) => {
                    tracing::warn!(rule = %name, %error, "replicating an alert state failed");
                    continue;
                }
            }
        } else {
            prev
        };
        if status.owes_notification() {
            notifier.offer(Job {
                rule: name.clone(),
                expr: r.expr.clone(),
                condition: c,
                status,
                explain: None,
            });
        }
    }
}

/// Evaluates on the leader until `token` is cancelled.
#[inline(never)]
pub fn run(
    plane: Arc<dyn Proposer>,
    store: Arc<dyn SpanStore>,
    cfg: RedConfig,
    alerts: AlertsConfig,
    notifier: Notifier,
    token: CancellationToken,
) -> futures::future::BoxFuture<'static, ()> {
    // Boxed, so that crates awaiting it do not compile its call tree
    // again (ARCHITECTURE.md, "Build time").
    Box::pin(async move {
        let mut tick = tokio::time::interval(alerts.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = token.cancelled() => return,
            }
            if plane.is_leader() {
                pass(plane.as_ref(), &store, &notifier, cfg.clock.unix_ms()).await;
            }
        }
    })
}
