//! One stream to one gateway at a time, rotating with backoff: how the
//! agent's long-lived streams ([`crate::control`], [`crate::verdict_stream`])
//! follow the gateway cluster.
//!
//! A client asks its [`Rotation`] for the endpoint to follow, follows it
//! until the stream ends, and hands back how it [`Ended`]. The next endpoint
//! is the one after the last one tried, looked up by URL in the current
//! (replaceable) list; when that URL left the list, a position spread by the
//! agent's id ([`carry_over`]) keeps a fleet from converging on one member.
//! After a loss the rotation waits a jittered backoff: short after a stream
//! that worked, growing to [`BACKOFF`]'s cap while no gateway answers.

use std::time::Duration;

use telemetry::Shutdown;

use crate::forward::{
    Backoff,
    endpoints::{GatewayEndpoint, GatewayEndpoints, carry_over},
};

/// How long opening a stream may take once connected.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Reconnect delays: short after a stream that worked, growing to 30 s
/// while no gateway answers (an old gateway without the stream's RPC is
/// asked again at that pace).
pub const BACKOFF: Backoff = Backoff {
    initial: Duration::from_millis(250),
    max: Duration::from_secs(30),
};

/// Why a stream stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The agent is stopping.
    Shutdown,
    /// The stream failed, ended or went silent; `worked` when it had
    /// carried something before.
    Lost { reason: String, worked: bool },
}

/// Opens one stream: `open` (the RPC call) within [`OPEN_TIMEOUT`]. A
/// refusal, no answer in time, or the agent stopping is how this attempt
/// [`Ended`].
pub async fn open_stream<T>(
    open: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    shutdown: &Shutdown,
) -> Result<T, Ended> {
    let opened = tokio::select! {
        r = tokio::time::timeout(OPEN_TIMEOUT, open) => r,
        _ = shutdown.cancelled() => return Err(Ended::Shutdown),
    };
    match opened {
        Ok(Ok(resp)) => Ok(resp.into_inner()),
        Ok(Err(status)) => Err(Ended::Lost {
            reason: format!("{:?}: {}", status.code(), status.message()),
            worked: false,
        }),
        Err(_) => Err(Ended::Lost {
            reason: format!("no answer within {OPEN_TIMEOUT:?}"),
            worked: false,
        }),
    }
}

/// Which gateway a stream client follows next, and how long it waits.
#[derive(Debug)]
pub struct Rotation {
    endpoints: GatewayEndpoints,
    backoff: Backoff,
    /// A hash of the agent id (see [`carry_over`]).
    spread: u64,
    /// The URL tried last.
    last: Option<String>,
    /// Streams lost in a row without one that worked.
    attempt: u32,
}

impl Rotation {
    pub fn new(endpoints: GatewayEndpoints, agent_id: &str, backoff: Backoff) -> Self {
        Self {
            endpoints,
            backoff,
            spread: u64::from(crc32fast::hash(agent_id.as_bytes())),
            last: None,
            attempt: 0,
        }
    }

    /// The endpoint to follow now: the first at start, then the one after
    /// the last one tried. `None` only if the list were empty (it never is).
    pub fn next_endpoint(&mut self) -> Option<GatewayEndpoint> {
        let list = self.endpoints.current();
        let urls = list.urls();
        let i = match &self.last {
            Some(url) => urls
                .iter()
                .position(|u| u == url)
                .map_or_else(|| carry_over(None, &urls, self.spread), |i| i + 1),
            None => 0,
        };
        let endpoint = list.get(i % list.len().max(1)).cloned()?;
        self.last = Some(endpoint.url.clone());
        Some(endpoint)
    }

    /// Takes how the stream to `url` ended. After a loss it logs `lost`
    /// (with the gateway, the reason and the delay) and waits the backoff.
    /// Returns false when the agent is stopping.
    pub async fn after(
        &mut self,
        url: &str,
        ended: Ended,
        lost: &'static str,
        shutdown: &Shutdown,
    ) -> bool {
        let (reason, worked) = match ended {
            Ended::Shutdown => return false,
            Ended::Lost { reason, worked } => (reason, worked),
        };
        self.attempt = if worked {
            1
        } else {
            self.attempt.saturating_add(1)
        };
        let delay = self
            .backoff
            .delay(self.attempt, None, rand::random::<f64>());
        tracing::warn!(
            gateway = %url,
            reason,
            retry_in_ms = delay.as_millis() as u64,
            "{lost}"
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = shutdown.cancelled() => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(urls: &[&str]) -> GatewayEndpoints {
        telemetry::install_crypto_provider();
        let urls: Vec<String> = urls.iter().map(|u| (*u).to_owned()).collect();
        GatewayEndpoints::new(&urls, tonic::transport::ClientTlsConfig::new())
            .expect("valid endpoints")
    }

    #[tokio::test]
    async fn rotates_through_the_list_and_follows_its_changes() {
        let list = endpoints(&["https://a:1", "https://b:1", "https://c:1"]);
        let mut r = Rotation::new(list.clone(), "agent-1", BACKOFF);
        let mut next = || r.next_endpoint().map(|e| e.url);
        assert_eq!(next().as_deref(), Some("https://a:1"));
        assert_eq!(next().as_deref(), Some("https://b:1"));
        assert_eq!(next().as_deref(), Some("https://c:1"));
        assert_eq!(next().as_deref(), Some("https://a:1"), "wraps around");
        // The last one tried left the list: the spread picks where to go on.
        list.replace(&["https://d:1".to_owned()]);
        assert_eq!(next().as_deref(), Some("https://d:1"));
    }

    #[tokio::test(start_paused = true)]
    async fn waits_after_a_loss_and_stops_on_shutdown() {
        let mut r = Rotation::new(endpoints(&["https://a:1"]), "agent-1", BACKOFF);
        let shutdown = Shutdown::new();
        let lost = |worked| Ended::Lost {
            reason: "gone".into(),
            worked,
        };
        let started = tokio::time::Instant::now();
        assert!(r.after("https://a:1", lost(true), "lost", &shutdown).await);
        let waited = started.elapsed();
        assert!(waited >= BACKOFF.initial / 2 && waited <= BACKOFF.initial);
        assert!(
            !r.after("https://a:1", Ended::Shutdown, "lost", &shutdown)
                .await
        );
        shutdown.trigger();
        assert!(!r.after("https://a:1", lost(false), "lost", &shutdown).await);
    }
}
