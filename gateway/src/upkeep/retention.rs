//! The retention job: every `--retention-interval`, delete what
//! `--retention-hours` says is expired ([`SpanStore::enforce_retention`]).
//!
//! [`run`] is the whole loop. Each pass asks its [`Scope`] which stores to
//! work on: in a gateway cluster, the Postgres shards whose lease this node
//! holds, or the whole store while this node leads (one node at a time
//! either way). A pass is idempotent and safe to interrupt: shutdown
//! cancels it mid-way and the next pass finishes the job.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use control_plane::ControlPlane;
use ingest::GatewayMetrics;
use model::RetentionPolicy;
use store::{RetentionReport, SpanStore, StoreError, shard::ShardedStore};
use telemetry::clock::unix_nanos;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// True when `policy` keeps every span forever: no pass is needed.
pub fn keeps_everything(policy: &RetentionPolicy) -> bool {
    policy.default_hours.is_none() && policy.clusters.is_empty()
}

/// One pass at `now_unix_nano`, logged and counted.
pub async fn pass(
    store: &dyn SpanStore,
    policy: &RetentionPolicy,
    metrics: &GatewayMetrics,
    now_unix_nano: u64,
) -> Result<RetentionReport, StoreError> {
    let started = Instant::now();
    let result = store.enforce_retention(policy, now_unix_nano).await;
    match &result {
        Ok(report) => {
            metrics.retention_run(Some(report));
            tracing::info!(
                partitions_dropped = report.partitions_dropped,
                spans_deleted = report.spans_deleted,
                partitions_compacted = report.partitions_compacted,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "retention pass"
            );
        }
        Err(error) => {
            metrics.retention_run(None);
            tracing::warn!(%error, "retention pass failed; retrying next interval");
        }
    }
    result
}

/// Which stores a pass works on, asked before every pass, with a label for
/// the logs.
pub type Scope = Arc<dyn Fn() -> Vec<(String, Arc<dyn SpanStore>)> + Send + Sync>;

/// A scope of one store, always.
pub fn whole(store: Arc<dyn SpanStore>) -> Scope {
    Arc::new(move || vec![("store".to_owned(), Arc::clone(&store))])
}

/// Runs a pass now and then every `interval` until `shutdown` is
/// cancelled (which also stops a pass in progress). With a policy that
/// keeps everything a pass deletes nothing but still compacts finished
/// days.
pub async fn run(
    scope: Scope,
    policy: RetentionPolicy,
    interval: Duration,
    metrics: GatewayMetrics,
    shutdown: CancellationToken,
) {
    if keeps_everything(&policy) {
        // The pass still runs: it compacts the search index of days that
        // are over.
        tracing::info!("retention off: every span is kept (set --retention-hours to expire spans)");
    }
    tracing::info!(
        default_hours = ?policy.default_hours,
        clusters = ?policy.clusters,
        interval_secs = interval.as_secs_f64(),
        "retention on"
    );
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        tokio::select! {
            biased;
            () = shutdown.cancelled() => {
                tracing::info!("retention pass interrupted by shutdown; the next one resumes it");
                return;
            }
            _ = async {
                for (label, store) in scope() {
                    tracing::debug!(target_store = label, "retention pass");
                    let _ = pass(&*store, &policy, &metrics, unix_nanos()).await;
                }
            } => {}
        }
    }
}

/// The stores this node runs per-shard work on now: the shards whose lease
/// it holds, or, without shards, the whole store while it leads.
pub fn retention_scope(
    plane: &ControlPlane,
    store: &Arc<dyn SpanStore>,
    sharded: Option<&Arc<ShardedStore>>,
) -> Vec<(String, Arc<dyn SpanStore>)> {
    match sharded {
        Some(sharded) => sharded
            .shards()
            .into_iter()
            .filter_map(|(id, s)| {
                plane
                    .holds_lease(id)
                    .map(|fence| (format!("shard {id} (fence {fence})"), s))
            })
            .collect(),
        None if plane.is_leader() => vec![("store".to_owned(), Arc::clone(store))],
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::testsuite::fake::{FakeStore, RetentionBehaviour};

    fn policy(hours: u64) -> RetentionPolicy {
        RetentionPolicy {
            default_hours: Some(hours),
            ..RetentionPolicy::default()
        }
    }

    /// Polls until `cond` holds (real time; the intervals here are short).
    async fn until(what: &str, cond: impl Fn() -> bool) {
        tokio::time::timeout(Duration::from_secs(10), async {
            while !cond() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
    }

    #[tokio::test]
    async fn passes_run_every_interval_and_are_counted() {
        let store = Arc::new(FakeStore::default());
        // The report grows fields (compaction on main): keep the rest default.
        #[allow(clippy::needless_update)]
        let report = RetentionReport {
            partitions_dropped: 2,
            spans_deleted: 5,
            ..RetentionReport::default()
        };
        store.set_retention(RetentionBehaviour::Report(report));
        let metrics = GatewayMetrics::default();
        let token = CancellationToken::new();
        let task = tokio::spawn(run(
            whole(store.clone()),
            policy(24),
            Duration::from_millis(20),
            metrics.clone(),
            token.clone(),
        ));
        until("three passes", || metrics.retention_runs("ok") >= 3).await;
        store.set_retention(RetentionBehaviour::Fail);
        until("a failed pass", || metrics.retention_runs("error") >= 1).await;
        token.cancel();
        task.await.expect("run ends on shutdown");
        // Failed passes remove nothing; every ok pass is counted in full.
        let ok = metrics.retention_runs("ok");
        assert_eq!(metrics.retention_removed(), (5 * ok, 2 * ok));
        assert_eq!(
            store.retention_calls(),
            ok + metrics.retention_runs("error")
        );
    }

    #[tokio::test]
    async fn shutdown_stops_a_pass_in_progress() {
        let store = Arc::new(FakeStore::default());
        store.set_retention(RetentionBehaviour::Hang);
        let token = CancellationToken::new();
        let task = tokio::spawn(run(
            whole(store.clone()),
            policy(1),
            Duration::from_secs(300),
            GatewayMetrics::default(),
            token.clone(),
        ));
        while store.retention_calls() == 0 {
            tokio::task::yield_now().await;
        }
        token.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("stopped promptly")
            .expect("no panic");
    }

    #[tokio::test]
    async fn a_policy_keeping_everything_still_runs_passes_until_shutdown() {
        // The pass deletes nothing under this policy but compacts finished
        // days, so it runs; shutdown ends the loop.
        let store = Arc::new(FakeStore::default());
        let token = CancellationToken::new();
        let job = tokio::spawn(run(
            whole(store.clone()),
            RetentionPolicy::default(),
            Duration::from_millis(20),
            GatewayMetrics::default(),
            token.clone(),
        ));
        until("two passes", || store.retention_calls() >= 2).await;
        token.cancel();
        tokio::time::timeout(Duration::from_secs(5), job)
            .await
            .expect("the loop stops on shutdown")
            .expect("no panic");
        assert!(keeps_everything(&RetentionPolicy::default()));
        let mut per_cluster = RetentionPolicy::default();
        per_cluster.clusters.insert("eu".into(), 24);
        assert!(!keeps_everything(&per_cluster));
    }
}
