//! The gateway endpoints the agent dials, shared by the gateway forwarder
//! (which sends to one and fails over to the next) and the control client
//! (which replaces the list with the gateway cluster's members).
//!
//! The list starts as `--gateway` (then the members remembered from the last
//! run, see `control::members`) and is replaced whole by each non-empty
//! member list the cluster sends. A replaced list keeps the channels (and so
//! the connections) of the endpoints it still has. It is never empty: an
//! update with no usable endpoint is ignored.

use std::{
    net::IpAddr,
    sync::{Arc, RwLock},
    time::Duration,
};

use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// An endpoint that cannot be dialled.
#[derive(Debug, thiserror::Error)]
#[error("gateway endpoint {url}: {message}")]
pub struct EndpointError {
    pub url: String,
    pub message: String,
}

/// One gateway federation endpoint and its (lazily connecting) channel.
#[derive(Debug, Clone)]
pub struct GatewayEndpoint {
    pub url: String,
    pub channel: Channel,
}

/// A version of the endpoint list.
#[derive(Debug, Default)]
pub struct EndpointList {
    /// Grows with every replacement, so holders can tell theirs is stale.
    pub generation: u64,
    pub endpoints: Vec<GatewayEndpoint>,
}

impl EndpointList {
    pub fn urls(&self) -> Vec<String> {
        self.endpoints.iter().map(|e| e.url.clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<&GatewayEndpoint> {
        self.endpoints.get(i)
    }
}

/// What [`GatewayEndpoints::replace`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replaced {
    /// The list is now these endpoints.
    Changed(Vec<String>),
    /// The list already was this.
    Unchanged,
    /// Nothing usable was offered; the list stays as it was.
    Ignored,
}

/// The shared, replaceable endpoint list. Cloning shares it.
#[derive(Debug, Clone)]
pub struct GatewayEndpoints {
    list: Arc<RwLock<Arc<EndpointList>>>,
    tls: ClientTlsConfig,
}

/// HTTP/2 and TCP settings of every gateway (and OTLP export) channel.
pub(crate) fn tune(e: Endpoint) -> Endpoint {
    e.connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true)
}

fn channel(url: &str, tls: &ClientTlsConfig) -> Result<Channel, EndpointError> {
    Endpoint::from_shared(url.to_owned())
        .and_then(|e| e.tls_config(tls.clone()))
        .map(|e| tune(e).connect_lazy())
        .map_err(|e| EndpointError {
            url: url.to_owned(),
            message: e.to_string(),
        })
}

/// True for `https://HOST:PORT` with a host an agent can dial (an
/// unspecified address such as `0.0.0.0` is where a gateway listens, not
/// where it is reached).
pub fn dialable(url: &str) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    let Some(authority) = uri.authority() else {
        return false;
    };
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    uri.scheme_str() == Some("https")
        && authority.port_u16().is_some()
        && !host.is_empty()
        && !host.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified())
        && uri.path_and_query().is_none_or(|p| p.as_str() == "/")
}

/// The usable endpoints of `urls`, trimmed, deduplicated, in order.
pub fn normalise<S: AsRef<str>>(urls: &[S]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(urls.len());
    for u in urls {
        let u = u.as_ref().trim().trim_end_matches('/');
        if dialable(u) && !out.iter().any(|o| o == u) {
            out.push(u.to_owned());
        }
    }
    out
}

/// Where to continue in `new` after the list changed: the endpoint in use
/// when `new` has it, else a position spread by `spread` (agents pass a
/// hash of their id, so a fleet whose entry point left the list does not
/// converge on the first member).
pub fn carry_over<S: AsRef<str>>(current: Option<&str>, new: &[S], spread: u64) -> usize {
    if new.is_empty() {
        return 0;
    }
    current
        .and_then(|c| new.iter().position(|u| u.as_ref() == c))
        .unwrap_or((spread % new.len() as u64) as usize)
}

impl GatewayEndpoints {
    /// `urls` (already validated: `--gateway`, then remembered members)
    /// dialled with `tls`.
    pub fn new(urls: &[String], tls: ClientTlsConfig) -> Result<Self, EndpointError> {
        let mut endpoints = Vec::with_capacity(urls.len());
        for url in urls {
            if endpoints.iter().any(|e: &GatewayEndpoint| &e.url == url) {
                continue;
            }
            endpoints.push(GatewayEndpoint {
                url: url.clone(),
                channel: channel(url, &tls)?,
            });
        }
        Ok(Self {
            list: Arc::new(RwLock::new(Arc::new(EndpointList {
                generation: 0,
                endpoints,
            }))),
            tls,
        })
    }

    /// The list as it stands.
    pub fn current(&self) -> Arc<EndpointList> {
        self.list
            .read()
            .map(|g| Arc::clone(&g))
            .unwrap_or_else(|p| Arc::clone(&p.into_inner()))
    }

    pub fn urls(&self) -> Vec<String> {
        self.current().urls()
    }

    /// Replaces the list with the usable endpoints of `offered`, reusing the
    /// channels of endpoints kept. An offer with none is ignored.
    pub fn replace<S: AsRef<str>>(&self, offered: &[S]) -> Replaced {
        let urls = normalise(offered);
        let mut guard = self.list.write().unwrap_or_else(|p| p.into_inner());
        if urls.is_empty() {
            return Replaced::Ignored;
        }
        if guard.urls() == urls {
            return Replaced::Unchanged;
        }
        let mut endpoints = Vec::with_capacity(urls.len());
        for url in &urls {
            let existing = guard.endpoints.iter().find(|e| &e.url == url).cloned();
            match existing.map_or_else(|| channel(url, &self.tls), |e| Ok(e.channel)) {
                Ok(channel) => endpoints.push(GatewayEndpoint {
                    url: url.clone(),
                    channel,
                }),
                Err(error) => tracing::warn!(%error, "skipping a gateway endpoint"),
            }
        }
        if endpoints.is_empty() {
            return Replaced::Ignored;
        }
        let urls = endpoints.iter().map(|e| e.url.clone()).collect();
        *guard = Arc::new(EndpointList {
            generation: guard.generation + 1,
            endpoints,
        });
        Replaced::Changed(urls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dialable_https_endpoints_are_kept_once() {
        let offered = [
            "https://gw-0:4320",
            " https://gw-1:4320/ ",
            "https://gw-0:4320",
            "http://plain:4320",
            "https://no-port",
            "https://0.0.0.0:4320",
            "https://[::]:4320",
            "https://[::1]:4320",
            "https://gw-2:4320/some/path",
            "",
            "not a url",
        ];
        assert_eq!(
            normalise(&offered),
            vec![
                "https://gw-0:4320",
                "https://gw-1:4320",
                "https://[::1]:4320"
            ]
        );
    }

    #[test]
    fn the_endpoint_in_use_survives_a_new_list() {
        let new = ["https://a:1", "https://b:1", "https://c:1"];
        assert_eq!(carry_over(Some("https://b:1"), &new, 7), 1);
        // Gone (or none yet): spread by the agent's hash.
        assert_eq!(carry_over(Some("https://lb:1"), &new, 7), 1);
        assert_eq!(carry_over(None, &new, 9), 0);
        assert_eq!(carry_over::<&str>(Some("https://a:1"), &[], 7), 0);
    }

    #[tokio::test]
    async fn replacing_keeps_channels_and_never_empties_the_list() -> anyhow::Result<()> {
        telemetry::install_crypto_provider();
        let eps = GatewayEndpoints::new(&["https://a:1".to_owned()], ClientTlsConfig::new())?;
        assert_eq!(eps.current().generation, 0);
        assert_eq!(eps.replace(&["https://0.0.0.0:1"]), Replaced::Ignored);
        assert_eq!(eps.replace::<&str>(&[]), Replaced::Ignored);
        assert_eq!(eps.replace(&["https://a:1"]), Replaced::Unchanged);
        assert_eq!(eps.urls(), vec!["https://a:1"]);
        let before = eps.current();
        assert_eq!(
            eps.replace(&["https://b:1", "https://a:1"]),
            Replaced::Changed(vec!["https://b:1".into(), "https://a:1".into()])
        );
        let after = eps.current();
        assert_eq!(after.generation, 1);
        assert_eq!(after.urls(), vec!["https://b:1", "https://a:1"]);
        // The shared handle sees the change.
        assert_eq!(eps.clone().urls(), after.urls());
        assert!(before.get(0).is_some_and(|e| e.url == "https://a:1"));
        Ok(())
    }
}
