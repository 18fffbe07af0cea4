//! The accept loop of an mTLS port (federation, Raft): handshakes run off
//! the accept path, bounded in number, per source IP and in time; every
//! refusal is logged and counted; established streams go to tonic through a
//! bounded channel.
//!
//! Order per connection: accept, then the per-IP check (over it: closed at
//! once, counted, the loop goes on accepting), then a slot of the global
//! handshake limit (none free: the loop waits, further clients wait in the
//! kernel backlog), then the handshake in its own task within
//! [`HANDSHAKE_TIMEOUT`]. So one address can hold at most
//! [`MAX_HANDSHAKES_PER_IP`] of the [`MAX_HANDSHAKES`] slots: idle connects
//! from one host cannot keep agents on other hosts from handshaking.

use std::{
    collections::HashMap,
    io,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use rustls::ServerConfig;
use telemetry::Shutdown;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{Semaphore, mpsc},
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

/// Handshakes in progress at once; further connections wait in the kernel
/// backlog (full policy: block accept).
pub const MAX_HANDSHAKES: usize = 256;
/// Handshakes in progress at once from one source IP; beyond it a new
/// connection from that IP is closed at once (counted as
/// [`Refused::PerIpLimit`]).
pub const MAX_HANDSHAKES_PER_IP: usize = 16;
/// A client that does not finish its handshake in this time is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Established connections waiting for tonic to take them.
const ESTABLISHED_QUEUE: usize = 64;

/// Why a connection was refused before it reached tonic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The handshake failed or timed out (no certificate, unknown CA,
    /// garbage, silence).
    Handshake,
    /// Its source IP already had [`MAX_HANDSHAKES_PER_IP`] handshakes in
    /// progress.
    PerIpLimit,
}

impl Refused {
    /// The `reason` label the gateway counts it under.
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::Handshake => "tls",
            Refused::PerIpLimit => "handshake_per_ip",
        }
    }
}

/// Called once per refused connection (the gateway counts it as
/// `meridian_gateway_identity_refused_total{reason=Refused::as_str}`).
pub type OnRefused = Arc<dyn Fn(Refused) + Send + Sync>;

/// Handshakes in progress per source IP. An entry exists only while its
/// count is non-zero, so the map holds at most [`MAX_HANDSHAKES`] + 1 IPs.
#[derive(Debug, Default, Clone)]
struct PerIp(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One handshake counted against its IP; dropping it gives the slot back.
#[derive(Debug)]
struct IpSlot {
    ip: IpAddr,
    map: PerIp,
}

impl PerIp {
    fn try_take(&self, ip: IpAddr) -> Option<IpSlot> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= MAX_HANDSHAKES_PER_IP {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            ip,
            map: self.clone(),
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut map = self.map.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Accepts TCP connections and yields established mTLS streams. Refused
/// connections (over the per-IP limit, failed handshakes) are logged and
/// counted. The returned channel is bounded (full: the accept loop waits).
pub fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    shutdown: &Shutdown,
    on_refused: OnRefused,
) -> mpsc::Receiver<Result<TlsStream<TcpStream>, io::Error>> {
    let (tx, rx) = mpsc::channel(ESTABLISHED_QUEUE);
    let acceptor = TlsAcceptor::from(config);
    let limit = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    let per_ip = PerIp::default();
    let sd = shutdown.clone();
    shutdown.spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                _ = sd.cancelled() => return,
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(error) => {
                        tracing::warn!(%error, "mtls accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let Some(ip_slot) = per_ip.try_take(peer.ip()) else {
                // Debug, not warn: a flood would fill the log; the counter
                // shows it.
                tracing::debug!(%peer, "connection refused: too many handshakes from its ip");
                on_refused(Refused::PerIpLimit);
                drop(tcp);
                continue;
            };
            let permit = tokio::select! {
                _ = sd.cancelled() => return,
                p = Arc::clone(&limit).acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            let on_refused = Arc::clone(&on_refused);
            let sd2 = sd.clone();
            sd.spawn(async move {
                // Both slots are held until tonic has the stream (its queue
                // is bounded too).
                let _held = (permit, ip_slot);
                tokio::select! {
                    _ = sd2.cancelled() => {}
                    r = handshake(acceptor, tcp) => match r {
                        Ok(stream) => { let _ = tx.send(Ok(stream)).await; }
                        Err(reason) => {
                            on_refused(Refused::Handshake);
                            tracing::warn!(%peer, reason, "connection refused: tls handshake failed");
                        }
                    },
                }
            });
        }
    });
    rx
}

async fn handshake(acceptor: TlsAcceptor, tcp: TcpStream) -> Result<TlsStream<TcpStream>, String> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("handshake timed out".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_ip_takes_at_most_its_share_and_gives_it_back() {
        let per_ip = PerIp::default();
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let held: Vec<_> = (0..MAX_HANDSHAKES_PER_IP)
            .map(|_| per_ip.try_take(a).expect("within the share"))
            .collect();
        assert!(per_ip.try_take(a).is_none(), "over the share");
        assert!(per_ip.try_take(b).is_some(), "another ip is not affected");
        drop(held);
        assert!(per_ip.try_take(a).is_some(), "slots come back");
        assert!(
            per_ip.0.lock().expect("lock").is_empty(),
            "no entry is left for ips without handshakes"
        );
    }
}
