//! Notifications: a bounded queue in front of one sender task that posts
//! to every configured webhook, then records the notification through Raft.
//!
//! - Queue: [`QUEUE_CAPACITY`] notifications. Full policy: the offer is
//!   refused and counted in the log; nothing is lost, because the
//!   evaluator offers every notification still owed (the replicated
//!   `transition > notified`) again at its next pass.
//! - Delivery: each receiver gets up to [`ATTEMPTS`] tries, each with a
//!   [`TIMEOUT`], with a doubling pause from 500 ms; a 2xx is success. The
//!   notification is then recorded (`Command::AlertNotified`) with how many
//!   receivers accepted it — also when none did, so a dead receiver does
//!   not stall the others' later notifications.
//! - Formats: Alertmanager's webhook JSON (version 4), so it can feed an
//!   existing Alertmanager or anything that reads its webhooks, and a
//!   generic JSON body. Both link to the UI view of the series and to
//!   example traces (exemplars).
//! - Explanation: before a firing notification is sent, the sender runs
//!   [`super::explain`] (bounded by its deadline) and adds its top
//!   dimensions and latency delta: `explain_top`, `explain_latency`,
//!   `explain_url` annotations, or an `explain` object in the JSON body.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use control_plane::Proposer;
use control_state::{
    Command, Notification,
    alert::{AlertState, AlertStatus, Condition},
};
use store::SpanStore;
use telemetry::clock::SharedClock;

pub const QUEUE_CAPACITY: usize = 256;
pub const ATTEMPTS: u32 = 3;
pub const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    Alertmanager,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub url: String,
    pub format: WebhookFormat,
}

/// One notification to send.
#[derive(Debug, Clone)]
pub struct Job {
    pub rule: String,
    pub expr: String,
    pub condition: Condition,
    pub status: AlertStatus,
    /// Why, for a firing notification (filled in by the sender).
    pub explain: Option<super::explain::Summary>,
}

/// The evaluator's handle on the queue.
#[derive(Debug, Clone)]
pub struct Notifier {
    tx: mpsc::Sender<Job>,
    /// (rule, transition) queued or being sent, not offered twice.
    pending: Arc<Mutex<HashSet<(String, u64)>>>,
}

impl Notifier {
    /// Queues `job` unless it is already queued; false when the queue is
    /// full (offered again at the next evaluation).
    pub fn offer(&self, job: Job) -> bool {
        let key = (job.rule.clone(), job.status.transition);
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.contains(&key) {
            return true;
        }
        match self.tx.try_send(job) {
            Ok(()) => {
                pending.insert(key);
                true
            }
            Err(_) => {
                tracing::warn!(rule = %key.0, "notification queue full; offered again next evaluation");
                false
            }
        }
    }
}

fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The UI view of the rule's series.
pub fn series_url(ui: &str, c: &Condition) -> String {
    let q: Vec<String> = c
        .labels()
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect();
    format!("{}/dashboards?{}", ui.trim_end_matches('/'), q.join("&"))
}

fn status_word(s: &AlertStatus) -> &'static str {
    if s.state == AlertState::Resolved {
        "resolved"
    } else {
        "firing"
    }
}

/// The Alertmanager webhook body (pure).
pub fn alertmanager_body(job: &Job, ui: &str) -> Value {
    let mut labels = serde_json::Map::new();
    labels.insert("alertname".into(), json!(job.rule));
    for (k, v) in job.condition.labels() {
        labels.insert(k.into(), json!(v));
    }
    let url = series_url(ui, &job.condition);
    let traces: Vec<String> = job
        .status
        .exemplars
        .iter()
        .map(|t| format!("{}/trace/{t}", ui.trim_end_matches('/')))
        .collect();
    let annotations = json!({
        "summary": format!("{} is {}", job.rule, status_word(&job.status)),
        "description": format!("{} (value {})", job.expr, job.status.value.map_or("none".into(), |v| format!("{v:.4}"))),
        "dashboard": url,
        "exemplar_trace_ids": job.status.exemplars.join(","),
        "exemplar_traces": traces.join(" "),
    });
    let mut annotations = annotations;
    if let (Some(s), Some(map)) = (&job.explain, annotations.as_object_mut()) {
        for (k, v) in super::explain::annotations(s) {
            map.insert(k.into(), json!(v));
        }
    }
    let ends = if job.status.state == AlertState::Resolved {
        rfc3339(job.status.since_ms)
    } else {
        "0001-01-01T00:00:00Z".into()
    };
    let fingerprint = format!("{:016x}", u64::from(crc32fast::hash(job.rule.as_bytes())));
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{alertname=\"{}\"}}", job.rule),
        "truncatedAlerts": 0,
        "status": status_word(&job.status),
        "receiver": "meridian",
        "groupLabels": {"alertname": job.rule},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": ui,
        "alerts": [{
            "status": status_word(&job.status),
            "labels": labels,
            "annotations": annotations,
            "startsAt": rfc3339(job.status.fired_at_ms),
            "endsAt": ends,
            "generatorURL": url,
            "fingerprint": fingerprint,
        }],
    })
}

/// The generic JSON body (pure).
pub fn json_body(job: &Job, ui: &str) -> Value {
    json!({
        "rule": job.rule,
        "status": status_word(&job.status),
        "transition": job.status.transition,
        "expr": job.expr,
        "value": job.status.value,
        "labels": job.condition.labels().into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        "started_at": rfc3339(job.status.fired_at_ms),
        "at": rfc3339(job.status.since_ms),
        "url": series_url(ui, &job.condition),
        "exemplars": job.status.exemplars.iter().map(|t| json!({"trace_id": t, "url": format!("{}/trace/{t}", ui.trim_end_matches('/'))})).collect::<Vec<_>>(),
        "explain": job.explain.as_ref().map(super::explain::json),
    })
}

/// How a webhook is named in logs and in the replicated notification log:
/// its scheme and host only. A webhook URL is often a credential itself
/// (Slack's and Teams' carry the secret in the path, others a `?token=`).
fn shown(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(a webhook)".into();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}://{host}")
}

async fn deliver(client: &reqwest::Client, hook: &Webhook, body: &Value) -> Result<(), String> {
    let mut pause = Duration::from_millis(500);
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        match client
            .post(&hook.url)
            .timeout(TIMEOUT)
            .json(body)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => last = format!("HTTP {}", r.status()),
            // The error without the URL: a webhook URL is often a secret.
            Err(e) => last = e.without_url().to_string(),
        }
        tracing::warn!(webhook = %shown(&hook.url), attempt, error = %last, "webhook failed");
        if attempt < ATTEMPTS {
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
    }
    Err(last)
}

/// Starts the sender; returns the evaluator's handle. `store` is what
/// firing notifications are explained from.
pub fn start(
    plane: Arc<dyn Proposer>,
    store: Arc<dyn SpanStore>,
    hooks: Vec<Webhook>,
    ui_url: String,
    clock: SharedClock,
    spawn: &telemetry::Shutdown,
    token: CancellationToken,
) -> Notifier {
    let (tx, mut rx) = mpsc::channel::<Job>(QUEUE_CAPACITY);
    let pending: Arc<Mutex<HashSet<(String, u64)>>> = Arc::default();
    let notifier = Notifier {
        tx,
        pending: Arc::clone(&pending),
    };
    spawn.spawn(async move {
        let client = reqwest::Client::new();
        loop {
            let mut job = tokio::select! {
                j = rx.recv() => match j { Some(j) => j, None => return },
                _ = token.cancelled() => return,
            };
            if job.status.state == AlertState::Firing && job.explain.is_none() && !hooks.is_empty()
            {
                let now = u64::try_from(clock.unix_ms())
                    .unwrap_or_default()
                    .saturating_mul(1_000_000);
                job.explain = super::explain::explain(
                    store.as_ref(),
                    &job.condition,
                    &job.status,
                    &ui_url,
                    now,
                )
                .await;
            }
            let mut delivered = 0u32;
            let mut error = None;
            for hook in &hooks {
                let body = match hook.format {
                    WebhookFormat::Alertmanager => alertmanager_body(&job, &ui_url),
                    WebhookFormat::Json => json_body(&job, &ui_url),
                };
                match deliver(&client, hook, &body).await {
                    Ok(()) => delivered += 1,
                    Err(e) => error = Some(format!("{}: {e}", shown(&hook.url))),
                }
            }
            let notification = Notification {
                rule: job.rule.clone(),
                status: status_word(&job.status).into(),
                transition: job.status.transition,
                at_ms: clock.unix_ms(),
                delivered,
                receivers: hooks.len() as u32,
                error,
            };
            if let Err(e) = plane.write(Command::AlertNotified { notification }).await {
                // Still owed in the replicated state: the next leader (or
                // this one) sends it again.
                tracing::warn!(error = %e, rule = %job.rule, "recording a notification failed");
            }
            pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&(job.rule, job.status.transition));
        }
    });
    notifier
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn webhooks_are_shown_by_host_only() {
        assert_eq!(
            shown("https://hooks.slack.com/services/T0/B0/s3cret"),
            "https://hooks.slack.com"
        );
        assert_eq!(
            shown("http://u:pw@am:9093/api/v2/alerts?token=s3cret"),
            "http://am:9093"
        );
        assert_eq!(shown("not a url s3cret"), "(a webhook)");
    }
}
