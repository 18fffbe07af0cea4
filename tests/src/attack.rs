//! Hostile clients for the hostile-client scenario (`tests/hostile.rs`):
//! each runs as a task until its token is cancelled and reports what the
//! server did to it.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;

/// How a slow-loris client misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loris {
    /// Headers that never end: one more header byte a second.
    Headers,
    /// Complete headers announcing 1 MiB, then one body byte a second.
    Body,
}

impl Loris {
    fn start(self) -> &'static [u8] {
        match self {
            Loris::Headers => b"POST /v1/traces HTTP/1.1\r\nhost: x\r\nx-slow: ",
            Loris::Body => {
                b"POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\n\
                  content-length: 1048576\r\n\r\n\x0a"
            }
        }
    }
}

/// What the server did to one kind of attacker.
#[derive(Debug, Default)]
pub struct Outcomes {
    /// Connections the server closed (a deadline, or a refusal).
    pub closed_by_server: AtomicU64,
    /// Connections opened.
    pub opened: AtomicU64,
}

impl Outcomes {
    pub fn closed(&self) -> u64 {
        self.closed_by_server.load(Ordering::SeqCst)
    }
}

/// `connections` slow-loris clients against `addr`; each reconnects when the
/// server closes it, until `stop`.
pub fn slow_loris(
    addr: SocketAddr,
    kind: Loris,
    connections: usize,
    stop: &CancellationToken,
) -> (Arc<Outcomes>, Vec<JoinHandle<()>>) {
    let outcomes = Arc::new(Outcomes::default());
    let tasks = (0..connections)
        .map(|_| {
            let stop = stop.clone();
            let outcomes = Arc::clone(&outcomes);
            tokio::spawn(async move {
                while !stop.is_cancelled() {
                    let Ok(mut s) = TcpStream::connect(addr).await else {
                        pace(&stop).await;
                        continue;
                    };
                    outcomes.opened.fetch_add(1, Ordering::SeqCst);
                    if s.write_all(kind.start()).await.is_err() {
                        continue;
                    }
                    let mut buf = [0u8; 4096];
                    loop {
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            r = s.read(&mut buf) => {
                                // A reply (408) or the close: the server
                                // gave up on us; both end this connection.
                                if matches!(r, Ok(0) | Err(_)) {
                                    outcomes.closed_by_server.fetch_add(1, Ordering::SeqCst);
                                    break;
                                }
                            }
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                                if s.write_all(b"x").await.is_err() {
                                    outcomes.closed_by_server.fetch_add(1, Ordering::SeqCst);
                                    break;
                                }
                            }
                        }
                    }
                }
            })
        })
        .collect();
    (outcomes, tasks)
}

/// Idle TCP connects (no TLS bytes at all) against an mTLS port, from each
/// of `sources` (127/8 addresses), `per_source` at a time; a connection the
/// server closes is opened again, until `stop`.
pub fn handshake_flood(
    addr: SocketAddr,
    sources: &[[u8; 4]],
    per_source: usize,
    stop: &CancellationToken,
) -> (Arc<Outcomes>, Vec<JoinHandle<()>>) {
    let outcomes = Arc::new(Outcomes::default());
    let mut tasks = Vec::new();
    for source in sources {
        for _ in 0..per_source {
            let (source, stop, outcomes) = (*source, stop.clone(), Arc::clone(&outcomes));
            tasks.push(tokio::spawn(async move {
                while !stop.is_cancelled() {
                    let Ok(mut s) = connect_from(source, addr).await else {
                        pace(&stop).await;
                        continue;
                    };
                    outcomes.opened.fetch_add(1, Ordering::SeqCst);
                    let mut buf = [0u8; 64];
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = s.read(&mut buf) => {
                            outcomes.closed_by_server.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    pace(&stop).await;
                }
            }));
        }
    }
    (outcomes, tasks)
}

async fn connect_from(source: [u8; 4], addr: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    sock.bind(SocketAddr::from((source, 0)))?;
    sock.connect(addr).await
}

/// A pause between reconnects, so a refused attacker does not spin.
async fn pace(stop: &CancellationToken) {
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
    }
}
