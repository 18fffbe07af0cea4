//! A TCP proxy that injects network faults between gateway peers.
//!
//! One proxy sits in front of each gateway's Raft port; the gateway
//! advertises the proxy's address, so every peer reaches it through the
//! proxy. A peer is told apart by the source IP of its connections (each
//! gateway binds its outgoing Raft connections to its own loopback IP,
//! 127.0.0.N), so a test can cut one link without touching the others.
//!
//! Faults, all changeable while connections are open:
//! - [`FaultProxy::block_source`] / [`FaultProxy::block_all`]: open
//!   connections from the source are cut at once; new ones are accepted and
//!   then black-holed (read and discarded, never forwarded) until the peer
//!   gives up, as a partition looks to TCP clients: timeouts, not refusals.
//!   When the block lifts, a held connection is closed and the peer's next
//!   one is forwarded.
//! - [`FaultProxy::set_delay`]: every chunk is delivered `delay` after it
//!   was read (a delay line, so latency does not cap throughput).
//!
//! Bounds: at most [`MAX_CONNECTIONS`] connections at once (the next accept
//! waits, the kernel backlog holds new peers); per direction at most
//! [`DELAY_LINE_CHUNKS`] chunks of [`CHUNK_BYTES`] in the delay line (full:
//! reading from the sender pauses). Every task ends when either side
//! closes, when the connection is cut, or when the proxy is dropped.

use std::{
    collections::BTreeSet,
    io,
    net::{IpAddr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use telemetry::Shutdown;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpListener, TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::{Semaphore, mpsc, watch},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

/// Connections open at once (forwarded or held); the next accept waits.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a connection waits for [`FaultProxy::set_target`] before it is
/// closed.
pub const TARGET_WAIT: Duration = Duration::from_secs(2);
/// Bytes read at a time.
pub const CHUNK_BYTES: usize = 16 << 10;
/// Chunks in flight per direction (full: reading pauses).
pub const DELAY_LINE_CHUNKS: usize = 64;

/// The faults in force.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Faults {
    blocked: BTreeSet<IpAddr>,
    all: bool,
    delay: Duration,
}

impl Faults {
    fn blocks(&self, ip: IpAddr) -> bool {
        self.all || self.blocked.contains(&ip)
    }
}

/// Counters a test can keep after dropping the proxy.
#[derive(Debug, Default)]
pub struct ProxyStats {
    active: AtomicUsize,
    accepted: AtomicU64,
    forwarded: AtomicU64,
    held: AtomicU64,
    cut: AtomicU64,
}

impl ProxyStats {
    /// Connections open now (waiting for a target, forwarded or held).
    pub fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }
    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }
    /// Connections forwarded to the target.
    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::SeqCst)
    }
    /// Connections black-holed because their source was blocked.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::SeqCst)
    }
    /// Forwarded connections cut by a block.
    pub fn cut(&self) -> u64 {
        self.cut.load(Ordering::SeqCst)
    }
}

/// Counts a connection as active while alive.
struct Active(Arc<ProxyStats>);

impl Active {
    fn new(stats: &Arc<ProxyStats>) -> Self {
        stats.active.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(stats))
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A running proxy on `127.0.0.1:<port>`. Dropping it closes the listener
/// and every connection.
#[derive(Debug)]
pub struct FaultProxy {
    pub addr: SocketAddr,
    target: watch::Sender<Option<SocketAddr>>,
    faults: watch::Sender<Faults>,
    stats: Arc<ProxyStats>,
    tasks: Shutdown,
}

impl FaultProxy {
    /// Binds `127.0.0.1:0` and starts accepting; connections wait for a
    /// target.
    pub async fn start() -> io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let (target, _) = watch::channel(None);
        let (faults, _) = watch::channel(Faults::default());
        let proxy = Self {
            addr,
            target,
            faults,
            stats: Arc::default(),
            tasks: Shutdown::new(),
        };
        let ctx = Conn {
            target: proxy.target.subscribe(),
            faults: proxy.faults.subscribe(),
            stats: Arc::clone(&proxy.stats),
            cancel: proxy.tasks.token().clone(),
        };
        let tasks = proxy.tasks.clone();
        proxy.tasks.spawn(accept_loop(listener, ctx, tasks));
        Ok(proxy)
    }

    /// Where accepted connections go from now on (open ones keep theirs).
    pub fn set_target(&self, target: SocketAddr) {
        self.target.send_replace(Some(target));
    }

    /// Cuts `ip`'s open connections and black-holes its new ones.
    pub fn block_source(&self, ip: IpAddr) {
        self.faults.send_modify(|f| {
            f.blocked.insert(ip);
        });
    }

    pub fn unblock_source(&self, ip: IpAddr) {
        self.faults.send_modify(|f| {
            f.blocked.remove(&ip);
        });
    }

    /// [`Self::block_source`] for every source.
    pub fn block_all(&self) {
        self.faults.send_modify(|f| f.all = true);
    }

    /// Lifts every block (the delay stays).
    pub fn heal(&self) {
        self.faults.send_modify(|f| {
            f.all = false;
            f.blocked.clear();
        });
    }

    /// Delays every chunk by `delay` (zero: none).
    pub fn set_delay(&self, delay: Duration) {
        self.faults.send_modify(|f| f.delay = delay);
    }

    pub fn stats(&self) -> Arc<ProxyStats> {
        Arc::clone(&self.stats)
    }

    /// Closes everything and waits (bounded) for every task to end.
    pub async fn close(self) -> bool {
        self.tasks.shutdown(Duration::from_secs(5)).await
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.tasks.trigger();
    }
}

/// What every connection task shares.
#[derive(Debug, Clone)]
struct Conn {
    target: watch::Receiver<Option<SocketAddr>>,
    faults: watch::Receiver<Faults>,
    stats: Arc<ProxyStats>,
    cancel: CancellationToken,
}

async fn accept_loop(listener: TcpListener, ctx: Conn, tasks: Shutdown) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        // A slot before accepting: when full, peers wait in the backlog.
        let permit = tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let (socket, peer) = tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            r = listener.accept() => match r {
                Ok(a) => a,
                Err(_) => {
                    // Out of descriptors and the like: try again shortly.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        ctx.stats.accepted.fetch_add(1, Ordering::SeqCst);
        let ctx = ctx.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let _active = Active::new(&ctx.stats);
            let cancel = ctx.cancel.clone();
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = connection(socket, peer.ip(), ctx) => {}
            }
        });
    }
}

async fn connection(mut client: TcpStream, source: IpAddr, mut ctx: Conn) {
    let target = tokio::time::timeout(TARGET_WAIT, ctx.target.wait_for(Option::is_some))
        .await
        .ok()
        .and_then(Result::ok)
        .and_then(|t| *t);
    let Some(target) = target else {
        return;
    };
    if ctx.faults.borrow().blocks(source) {
        ctx.stats.held.fetch_add(1, Ordering::SeqCst);
        black_hole(&mut client, source, &mut ctx.faults).await;
        return;
    }
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    ctx.stats.forwarded.fetch_add(1, Ordering::SeqCst);
    let (client_r, client_w) = client.into_split();
    let (server_r, server_w) = server.into_split();
    let up = pipe(client_r, server_w, ctx.faults.clone());
    let down = pipe(server_r, client_w, ctx.faults.clone());
    let mut faults = ctx.faults.clone();
    tokio::select! {
        _ = faults.wait_for(|f| f.blocks(source)) => {
            ctx.stats.cut.fetch_add(1, Ordering::SeqCst);
        }
        _ = async { tokio::try_join!(up, down) } => {}
    }
}

/// Reads and discards until the peer gives up or the block lifts.
async fn black_hole(client: &mut TcpStream, source: IpAddr, faults: &mut watch::Receiver<Faults>) {
    let mut sink = vec![0u8; CHUNK_BYTES];
    loop {
        tokio::select! {
            _ = faults.wait_for(|f| !f.blocks(source)) => return,
            r = client.read(&mut sink) => if matches!(r, Ok(0) | Err(_)) { return },
        }
    }
}

/// Copies one direction through a delay line; at EOF the write side is shut
/// down (half-close), any error ends both halves.
async fn pipe(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    faults: watch::Receiver<Faults>,
) -> io::Result<()> {
    // full: the reader waits, so the sender sees TCP backpressure
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(DELAY_LINE_CHUNKS);
    let reader = async move {
        let mut buf = vec![0u8; CHUNK_BYTES];
        loop {
            let n = from.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            let due = Instant::now() + faults.borrow().delay;
            if tx.send((due, buf[..n].to_vec())).await.is_err() {
                return Ok(());
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            to.write_all(&chunk).await?;
        }
        to.shutdown().await
    };
    tokio::try_join!(reader, writer).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEADLINE: Duration = Duration::from_secs(10);

    /// An echo server; returns its address and the number of connections it
    /// has open.
    async fn echo_server(cancel: CancellationToken) -> (SocketAddr, Arc<AtomicUsize>) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let open = Arc::new(AtomicUsize::new(0));
        let o = Arc::clone(&open);
        tokio::spawn(async move {
            loop {
                let (mut s, _) = tokio::select! {
                    _ = cancel.cancelled() => return,
                    r = l.accept() => match r { Ok(a) => a, Err(_) => return },
                };
                let o = Arc::clone(&o);
                let cancel = cancel.clone();
                tokio::spawn(async move {
                    o.fetch_add(1, Ordering::SeqCst);
                    let mut buf = vec![0u8; 4096];
                    loop {
                        let n = tokio::select! {
                            _ = cancel.cancelled() => break,
                            r = s.read(&mut buf) => match r { Ok(0) | Err(_) => break, Ok(n) => n },
                        };
                        if s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    o.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        (addr, open)
    }

    /// A client connected from `source` (a loopback IP) to `to`.
    async fn connect_from(source: [u8; 4], to: SocketAddr) -> TcpStream {
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        sock.bind(SocketAddr::from((source, 0)))
            .expect("bind source");
        sock.connect(to).await.expect("connect")
    }

    async fn roundtrip(s: &mut TcpStream, msg: &[u8]) -> io::Result<Vec<u8>> {
        s.write_all(msg).await?;
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got).await?;
        Ok(got)
    }

    /// The stream's next read: EOF or an error means it was closed.
    async fn closed(s: &mut TcpStream) -> bool {
        let mut b = [0u8; 1];
        matches!(
            tokio::time::timeout(DEADLINE, s.read(&mut b)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + DEADLINE;
        while !cond() {
            assert!(std::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn forwards_blocks_by_source_and_heals() {
        let cancel = CancellationToken::new();
        let (echo, _) = echo_server(cancel.clone()).await;
        let proxy = FaultProxy::start().await.expect("proxy");
        proxy.set_target(echo);
        let a: IpAddr = [127, 0, 0, 2].into();

        let mut from_a = connect_from([127, 0, 0, 2], proxy.addr).await;
        let mut from_b = connect_from([127, 0, 0, 3], proxy.addr).await;
        assert_eq!(roundtrip(&mut from_a, b"ping").await.expect("a"), b"ping");
        assert_eq!(roundtrip(&mut from_b, b"pong").await.expect("b"), b"pong");

        // Blocking A cuts its open connection; B's is untouched.
        proxy.block_source(a);
        assert!(closed(&mut from_a).await, "A's connection was cut");
        assert_eq!(roundtrip(&mut from_b, b"still").await.expect("b"), b"still");

        // A's new connection is accepted but black-holed: no answer, no
        // refusal.
        let mut held = connect_from([127, 0, 0, 2], proxy.addr).await;
        held.write_all(b"lost")
            .await
            .expect("the write is accepted");
        let mut b = [0u8; 4];
        assert!(
            tokio::time::timeout(Duration::from_millis(300), held.read(&mut b))
                .await
                .is_err(),
            "a held connection neither answers nor closes"
        );
        assert_eq!(proxy.stats().held(), 1);

        // Healing closes the held connection; the next one passes.
        proxy.unblock_source(a);
        assert!(closed(&mut held).await, "the held connection is closed");
        let mut again = connect_from([127, 0, 0, 2], proxy.addr).await;
        assert_eq!(roundtrip(&mut again, b"back").await.expect("a"), b"back");

        // block_all holds everyone until heal.
        proxy.block_all();
        assert!(closed(&mut from_b).await && closed(&mut again).await);
        let mut held = connect_from([127, 0, 0, 3], proxy.addr).await;
        held.write_all(b"x").await.expect("write");
        assert!(
            tokio::time::timeout(Duration::from_millis(300), held.read(&mut b))
                .await
                .is_err()
        );
        proxy.heal();
        let mut healed = connect_from([127, 0, 0, 3], proxy.addr).await;
        assert_eq!(roundtrip(&mut healed, b"ok").await.expect("b"), b"ok");
        assert_eq!(proxy.stats().cut(), 3);
        cancel.cancel();
    }

    #[tokio::test]
    async fn without_a_target_a_connection_waits_then_closes() {
        let cancel = CancellationToken::new();
        let (echo, _) = echo_server(cancel.clone()).await;
        let proxy = FaultProxy::start().await.expect("proxy");
        // Set within the wait: the connection goes through.
        let mut early = connect_from([127, 0, 0, 1], proxy.addr).await;
        early.write_all(b"hi").await.expect("write");
        tokio::time::sleep(Duration::from_millis(100)).await;
        proxy.set_target(echo);
        let mut b = [0u8; 2];
        early.read_exact(&mut b).await.expect("echo");
        assert_eq!(&b, b"hi");

        let lonely = FaultProxy::start().await.expect("proxy");
        let mut s = connect_from([127, 0, 0, 1], lonely.addr).await;
        let started = std::time::Instant::now();
        assert!(closed(&mut s).await);
        assert!(started.elapsed() >= TARGET_WAIT - Duration::from_millis(100));
        cancel.cancel();
    }

    #[tokio::test]
    async fn delay_holds_every_chunk() {
        let cancel = CancellationToken::new();
        let (echo, _) = echo_server(cancel.clone()).await;
        let proxy = FaultProxy::start().await.expect("proxy");
        proxy.set_target(echo);
        let mut s = connect_from([127, 0, 0, 1], proxy.addr).await;
        let delay = Duration::from_millis(150);
        proxy.set_delay(delay);
        let t = std::time::Instant::now();
        assert_eq!(roundtrip(&mut s, b"slow").await.expect("echo"), b"slow");
        // One delay each way (a lower bound only: never a timing ceiling).
        assert!(t.elapsed() >= 2 * delay, "{:?}", t.elapsed());
        proxy.set_delay(Duration::ZERO);
        assert_eq!(roundtrip(&mut s, b"fast").await.expect("echo"), b"fast");
        // A large transfer arrives whole and in order through the delay line.
        proxy.set_delay(Duration::from_millis(5));
        let big: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
        let (mut r, mut w) = s.into_split();
        let sent = big.clone();
        let writer = tokio::spawn(async move { w.write_all(&sent).await.map(|_| w) });
        let mut got = vec![0u8; big.len()];
        r.read_exact(&mut got).await.expect("read back");
        writer.await.expect("join").expect("write");
        assert!(got == big);
        cancel.cancel();
    }

    #[tokio::test]
    async fn dropping_the_proxy_closes_everything() {
        let cancel = CancellationToken::new();
        let (echo, echo_open) = echo_server(cancel.clone()).await;
        let proxy = FaultProxy::start().await.expect("proxy");
        proxy.set_target(echo);
        let addr = proxy.addr;
        let stats = proxy.stats();
        let mut passing = connect_from([127, 0, 0, 1], addr).await;
        assert_eq!(roundtrip(&mut passing, b"a").await.expect("echo"), b"a");
        proxy.block_source([127, 0, 0, 9].into());
        let mut held = connect_from([127, 0, 0, 9], addr).await;
        wait_until("two open connections", || stats.active() == 2).await;
        assert_eq!(echo_open.load(Ordering::SeqCst), 1);

        drop(proxy);
        assert!(
            closed(&mut passing).await,
            "the forwarded connection closed"
        );
        assert!(closed(&mut held).await, "the held connection closed");
        wait_until("every connection task ended", || stats.active() == 0).await;
        wait_until("the server side closed", || {
            echo_open.load(Ordering::SeqCst) == 0
        })
        .await;
        let mut refused = false;
        for _ in 0..100 {
            if TcpStream::connect(addr).await.is_err() {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(refused, "the listener is closed");
        cancel.cancel();
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_wait_for_a_slot() {
        let cancel = CancellationToken::new();
        let (echo, _) = echo_server(cancel.clone()).await;
        let proxy = FaultProxy::start().await.expect("proxy");
        proxy.set_target(echo);
        let stats = proxy.stats();
        let mut open = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            let mut s = connect_from([127, 0, 0, 1], proxy.addr).await;
            assert_eq!(roundtrip(&mut s, b"x").await.expect("echo"), b"x");
            open.push(s);
        }
        // The kernel completes the handshake, the proxy does not serve it.
        let mut waiting = connect_from([127, 0, 0, 1], proxy.addr).await;
        waiting.write_all(b"y").await.expect("write");
        let mut b = [0u8; 1];
        assert!(
            tokio::time::timeout(Duration::from_millis(300), waiting.read(&mut b))
                .await
                .is_err()
        );
        assert_eq!(stats.active(), MAX_CONNECTIONS);
        drop(open.pop());
        waiting
            .read_exact(&mut b)
            .await
            .expect("served once a slot freed");
        assert_eq!(&b, b"y");
        cancel.cancel();
    }

    #[tokio::test]
    async fn close_waits_for_every_task() {
        let cancel = CancellationToken::new();
        let (echo, _) = echo_server(cancel.clone()).await;
        let proxy = FaultProxy::start().await.expect("proxy");
        proxy.set_target(echo);
        let stats = proxy.stats();
        let mut conns = Vec::new();
        for i in 0..10u8 {
            let mut s = connect_from([127, 0, 0, 20 + i], proxy.addr).await;
            assert_eq!(roundtrip(&mut s, b"x").await.expect("echo"), b"x");
            conns.push(s);
        }
        assert_eq!(stats.active(), 10);
        assert!(proxy.close().await, "every task ended in time");
        assert_eq!(stats.active(), 0);
        cancel.cancel();
    }
}
