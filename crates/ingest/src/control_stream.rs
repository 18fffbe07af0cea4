//! The federation `Control` stream (`federation.proto`): what the gateway
//! cluster tells its agents, pushed as complete states.
//!
//! The seam: whoever owns the control state (the Raft state machine once it
//! runs; until then [`crate::Gateway::start`] with a one-gateway view) holds
//! the `watch::Sender` of a [`ControlView`] and publishes a new view on every
//! change. Every agent stream holds a [`ControlFeed`] (a receiver of it) and
//! turns each view into the agent's [`ControlUpdate`]: the member list and
//! the effective policy of the agent's cluster ([`ControlView::policy_for`]).
//!
//! Bounds: a stream holds one watch receiver and the last update it sent,
//! nothing more. The watch keeps only the newest view (latest wins: a slow
//! agent skips intermediate views, no queue grows), and the stream produces
//! an update only when tonic polls it, that is when HTTP/2 flow control lets
//! it send. An update equal to the last one sent is not sent again, except as
//! the [`KEEPALIVE`]. The stream ends with UNAVAILABLE when the gateway shuts
//! down (its ingest token) or when the view's sender is dropped.

use std::{pin::Pin, sync::Arc, time::Duration};

use futures::Stream;
use model::ClusterId;
use proto::federation::ControlUpdate;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::{
    metrics::GatewayMetrics,
    view::{ControlFeed, ControlView, Registration},
};

/// A stream that saw no change for this long sends its last update again,
/// so agents can tell a quiet stream from a dead one.
pub const KEEPALIVE: Duration = Duration::from_secs(30);

/// What `Control` answers with.
pub type ControlStream = Pin<Box<dyn Stream<Item = Result<ControlUpdate, Status>> + Send>>;

/// The update for an agent of `cluster` under `view`, or `None` when it says
/// what `last` already said. `sequence` counts the distinct updates.
pub fn next_update(
    last: Option<&ControlUpdate>,
    view: &ControlView,
    cluster: &str,
) -> Result<Option<ControlUpdate>, serde_json::Error> {
    let sampling_policy_json = match view.policy_for(cluster) {
        Some(p) => serde_json::to_string(p)?,
        None => String::new(),
    };
    if let Some(l) = last
        && l.gateways == view.gateways
        && l.sampling_policy_json == sampling_policy_json
    {
        return Ok(None);
    }
    Ok(Some(ControlUpdate {
        gateways: view.gateways.clone(),
        sampling_policy_json,
        sequence: last.map_or(0, |l| l.sequence) + 1,
    }))
}

/// Counts a stream in `meridian_gateway_control_streams` while it lives.
#[derive(Debug)]
struct Active(GatewayMetrics);

impl Active {
    fn new(metrics: GatewayMetrics) -> Self {
        metrics.control_streams(1);
        Self(metrics)
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.control_streams(-1);
    }
}

/// One agent's subscription.
#[derive(Debug)]
struct Subscription {
    feed: ControlFeed,
    cluster: ClusterId,
    registration: Registration,
    /// The agent certificate's serial (a revocation ends the stream).
    serial: String,
    shutdown: CancellationToken,
    last: Option<ControlUpdate>,
    keepalive_at: Instant,
    ended: bool,
    _active: Active,
}

impl Subscription {
    /// The update for the feed's current view (marking it seen), if it
    /// differs from the last one sent. An error ends the stream (the agent
    /// keeps what it had and reconnects).
    fn current(&mut self) -> Result<Option<ControlUpdate>, Status> {
        let view = Arc::clone(&self.feed.borrow_and_update());
        if !view.admits(self.cluster.as_str(), self.registration) {
            // Deleted (or never registered): the agent is disconnected at
            // once; it keeps its spans and reconnects with backoff.
            self.ended = true;
            return Err(crate::service::unregistered(&self.cluster));
        }
        if view.revokes(&self.serial) {
            self.ended = true;
            return Err(crate::service::revoked(&self.serial));
        }
        let update = next_update(self.last.as_ref(), &view, self.cluster.as_str()).map_err(|e| {
            tracing::error!(error = %e, cluster = %self.cluster, "cannot encode a sampling policy");
            self.ended = true;
            Status::internal(format!("cannot encode the sampling policy: {e}"))
        })?;
        if let Some(u) = &update {
            self.last = Some(u.clone());
            self.keepalive_at = Instant::now() + KEEPALIVE;
        }
        Ok(update)
    }

    /// The next item of the stream: a changed update, a keepalive, or the
    /// end.
    async fn next(&mut self) -> Option<Result<ControlUpdate, Status>> {
        if self.ended {
            return None;
        }
        if self.last.is_none() {
            // The first update always differs from none.
            return Some(self.current().map(Option::unwrap_or_default));
        }
        loop {
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => {
                    self.ended = true;
                    return Some(Err(Status::unavailable("the gateway is shutting down")));
                }
                changed = self.feed.changed() => {
                    if changed.is_err() {
                        self.ended = true;
                        return Some(Err(Status::unavailable("the gateway's control state is gone")));
                    }
                    match self.current() {
                        Ok(Some(u)) => return Some(Ok(u)),
                        Ok(None) => continue,
                        Err(s) => return Some(Err(s)),
                    }
                }
                _ = tokio::time::sleep_until(self.keepalive_at) => {
                    self.keepalive_at = Instant::now() + KEEPALIVE;
                    return self.last.clone().map(Ok);
                }
            }
        }
    }
}

/// The `Control` stream of an agent of `cluster` whose certificate has
/// `serial` (identity already checked). It ends with FAILED_PRECONDITION
/// as soon as the view no longer admits the cluster under `registration`
/// (the cluster was deleted) or revokes the certificate.
pub fn stream(
    feed: ControlFeed,
    (cluster, serial): (ClusterId, String),
    registration: Registration,
    shutdown: CancellationToken,
    metrics: GatewayMetrics,
) -> ControlStream {
    let sub = Subscription {
        feed,
        cluster,
        registration,
        serial,
        shutdown,
        last: None,
        keepalive_at: Instant::now() + KEEPALIVE,
        ended: false,
        _active: Active::new(metrics),
    };
    Box::pin(futures::stream::unfold(sub, |mut sub| async move {
        let item = sub.next().await?;
        Some((item, sub))
    }))
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use model::sampling::{HeadConfig, HeadRule};

    use std::net::SocketAddr;

    use model::sampling::SamplingConfig;

    use super::*;

    fn policy(p: f64) -> SamplingConfig {
        SamplingConfig {
            head: HeadConfig {
                default_probability: p,
                rules: vec![HeadRule {
                    cluster: None,
                    service: Some("svc".into()),
                    operation: None,
                    probability: None,
                    max_traces_per_second: Some(3.0),
                }],
            },
            tail: None,
        }
    }

    fn view(policies: &[(&str, f64)]) -> ControlView {
        ControlView {
            gateways: vec!["https://a:1".into(), "https://b:1".into()],
            policies: policies
                .iter()
                .map(|(k, p)| ((*k).to_owned(), policy(*p)))
                .collect(),
            ..ControlView::default()
        }
    }

    #[test]
    fn a_cluster_gets_its_own_policy_else_the_default_else_none() {
        let v = view(&[("east", 0.1), ("*", 0.5)]);
        assert_eq!(v.policy_for("east"), Some(&policy(0.1)));
        assert_eq!(v.policy_for("west"), Some(&policy(0.5)));
        let v = view(&[("east", 0.1)]);
        assert_eq!(v.policy_for("west"), None);
        assert_eq!(ControlView::default().policy_for("east"), None);
    }

    #[test]
    fn updates_carry_the_policy_as_json_and_skip_repeats() -> anyhow::Result<()> {
        let v = view(&[("east", 0.25)]);
        let first = next_update(None, &v, "east")?.expect("a first update");
        assert_eq!(first.sequence, 1);
        assert_eq!(first.gateways, v.gateways);
        let back: SamplingConfig = serde_json::from_str(&first.sampling_policy_json)?;
        assert_eq!(back, policy(0.25));
        // A change elsewhere says nothing new to east.
        let elsewhere = view(&[("east", 0.25), ("west", 0.9)]);
        assert_eq!(next_update(Some(&first), &elsewhere, "east")?, None);
        // Losing the policy is news: an empty policy means "use yours".
        let second = next_update(Some(&first), &view(&[]), "east")?.expect("an update");
        assert_eq!(
            (second.sequence, second.sampling_policy_json.as_str()),
            (2, "")
        );
        // So is a new member list.
        let mut more = view(&[]);
        more.gateways.push("https://c:1".into());
        let third = next_update(Some(&second), &more, "east")?.expect("an update");
        assert_eq!((third.sequence, third.gateways.len()), (3, 3));
        Ok(())
    }

    #[test]
    fn a_lone_gateway_lists_itself_unless_it_listens_everywhere() {
        let v = ControlView::single(SocketAddr::from(([127, 0, 0, 1], 4320)));
        assert_eq!(v.gateways, vec!["https://127.0.0.1:4320".to_owned()]);
        assert!(v.policies.is_empty());
        let v = ControlView::single(SocketAddr::from(([0, 0, 0, 0], 4320)));
        assert!(v.gateways.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn the_stream_follows_the_feed_keeps_alive_and_ends_at_shutdown() -> anyhow::Result<()> {
        let (tx, feed) = tokio::sync::watch::channel(Arc::new(view(&[])));
        let metrics = GatewayMetrics::default();
        let token = CancellationToken::new();
        let mut s = stream(
            feed,
            (ClusterId::new("east")?, "a1".into()),
            Registration::default(),
            token.clone(),
            metrics.clone(),
        );
        let first = s.next().await.expect("an item")?;
        assert_eq!(
            (first.sequence, first.sampling_policy_json.as_str()),
            (1, "")
        );
        assert_eq!(metrics.active_control_streams(), 1);
        // Several views published before the agent reads: it gets the last.
        tx.send_replace(Arc::new(view(&[("east", 0.1)])));
        tx.send_replace(Arc::new(view(&[("east", 0.2)])));
        let second = s.next().await.expect("an item")?;
        assert_eq!(second.sequence, 2);
        assert_eq!(
            serde_json::from_str::<SamplingConfig>(&second.sampling_policy_json)?,
            policy(0.2)
        );
        // Nothing changes for this cluster: after KEEPALIVE the same update.
        tx.send_replace(Arc::new(view(&[("east", 0.2), ("west", 1.0)])));
        let started = Instant::now();
        let again = s.next().await.expect("a keepalive")?;
        assert_eq!(again, second);
        assert!(started.elapsed() >= KEEPALIVE);
        token.cancel();
        let end = s.next().await.expect("a final status");
        assert_eq!(
            end.map(|_| ()).map_err(|s| s.code()),
            Err(tonic::Code::Unavailable)
        );
        assert!(s.next().await.is_none());
        drop(s);
        assert_eq!(metrics.active_control_streams(), 0);
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn deleting_the_cluster_ends_its_stream_at_once() -> anyhow::Result<()> {
        let mut registered = view(&[]);
        registered.registered.insert("east".into());
        let (tx, feed) = tokio::sync::watch::channel(Arc::new(registered.clone()));
        let metrics = GatewayMetrics::default();
        let mut s = stream(
            feed,
            (ClusterId::new("east")?, "a1".into()),
            Registration::default(),
            CancellationToken::new(),
            metrics.clone(),
        );
        assert_eq!(s.next().await.expect("an item")?.sequence, 1);
        // Another cluster registered: no news for east.
        registered.registered.insert("west".into());
        tx.send_replace(Arc::new(registered.clone()));
        // East deleted while west stays registered: the stream ends now.
        registered.registered.remove("east");
        tx.send_replace(Arc::new(registered));
        let started = Instant::now();
        let end = s.next().await.expect("a final status");
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "not at the next keepalive"
        );
        let status = end.expect_err("an error status");
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
        assert!(
            status.message().contains("not registered"),
            "{}",
            status.message()
        );
        assert!(s.next().await.is_none());
        drop(s);
        assert_eq!(metrics.active_control_streams(), 0);
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn revoking_the_certificate_ends_its_stream_at_once() -> anyhow::Result<()> {
        let (tx, feed) = tokio::sync::watch::channel(Arc::new(view(&[])));
        let mut s = stream(
            feed,
            (ClusterId::new("east")?, "a1".into()),
            Registration::default(),
            CancellationToken::new(),
            GatewayMetrics::default(),
        );
        assert_eq!(s.next().await.expect("an item")?.sequence, 1);
        let mut revoked = view(&[]);
        revoked.revoked.insert("a1".into());
        tx.send_replace(Arc::new(revoked));
        let status = s
            .next()
            .await
            .expect("a final status")
            .expect_err("an error");
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
        assert!(status.message().contains("revoked"), "{}", status.message());
        assert!(s.next().await.is_none());
        Ok(())
    }
}
