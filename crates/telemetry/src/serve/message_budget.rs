//! [`MessageBudgetLayer`]: bounds what a gRPC server holds for requests it
//! has not decoded yet.
//!
//! tonic buffers a whole message before the handler sees it, so admission
//! inside a handler comes too late: a client that declares large messages
//! and sends them slowly, on many streams, makes the server hold their bytes
//! for as long as it likes. This layer reads gRPC's length-prefixed framing
//! (per message: 1 byte compressed flag, 4 bytes big-endian length, then the
//! message) as frames arrive, and when a message's prefix is seen reserves
//! its declared length:
//!
//! - against the message's connection (keyed by the peer address from the
//!   request's extensions, see [`PeerOf`]): at most `per_connection` bytes;
//! - against the server's [`ByteBudget`], shared by every connection.
//!
//! The reservation is given back when the last byte of the message has
//! arrived (tonic decodes it at once) or the request ends. A message that
//! does not fit is refused at its prefix, before its bytes are read: the body
//! fails with the error [`Refuse`] makes of the [`Refusal`] (tonic turns it
//! into the status, RESOURCE_EXHAUSTED + `google.rpc.RetryInfo` by the
//! callers). Requests in flight are bounded too (`max_requests`, from the
//! call to the response's headers), refused the same way beyond it: a
//! request never waits behind a slow one.
//!
//! HTTP/2 flow control bounds the rest: a peer can push at most the
//! connection window of unread bytes (`serve::grpc::CONNECTION_WINDOW`).

use std::{
    collections::HashMap,
    fmt,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use axum::BoxError;
use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::budget::{ByteBudget, Reservation};

/// The connection a request arrived on, from its extensions (the caller
/// knows its server's connect-info type); `None`: only the total applies.
pub type PeerOf = fn(&http::Extensions) -> Option<SocketAddr>;

/// Makes the error a refused request fails with (a `tonic::Status` with
/// RetryInfo, in the callers).
pub type Refuse = Arc<dyn Fn(Refusal) -> BoxError + Send + Sync>;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "a message of {declared} bytes does not fit this connection's budget \
         ({held} of {limit} bytes held)"
    )]
    Connection {
        declared: u64,
        held: u64,
        limit: u64,
    },
    #[error(
        "a message of {declared} bytes does not fit the server's budget \
         ({available} of {capacity} bytes free)"
    )]
    Total {
        declared: u64,
        available: u64,
        capacity: u64,
    },
    #[error("the server has {limit} requests in flight")]
    Requests { limit: usize },
}

/// The bounds of one server: bytes per connection, bytes in total, requests
/// in flight. Clones share them.
#[derive(Debug, Clone)]
pub struct MessageBudget {
    per_connection: u64,
    total: ByteBudget,
    /// Declared bytes held per connection; an entry exists only while
    /// non-zero, so the map is bounded by the connections holding bytes.
    held: Arc<Mutex<HashMap<SocketAddr, u64>>>,
    requests: Arc<Semaphore>,
    max_requests: usize,
}

impl MessageBudget {
    pub fn new(per_connection: u64, total: ByteBudget, max_requests: usize) -> Self {
        Self {
            per_connection,
            total,
            held: Arc::default(),
            requests: Arc::new(Semaphore::new(max_requests)),
            max_requests,
        }
    }

    /// Bytes held now for `peer` (tests and metrics).
    pub fn held_by(&self, peer: SocketAddr) -> u64 {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.get(&peer).copied().unwrap_or(0)
    }

    fn reserve(&self, peer: Option<SocketAddr>, bytes: u64) -> Result<Held, Refusal> {
        let conn = match peer {
            Some(peer) => {
                let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
                let now = held.get(&peer).copied().unwrap_or(0);
                if now.saturating_add(bytes) > self.per_connection {
                    return Err(Refusal::Connection {
                        declared: bytes,
                        held: now,
                        limit: self.per_connection,
                    });
                }
                held.insert(peer, now + bytes);
                Some(ConnHeld {
                    peer,
                    bytes,
                    map: Arc::clone(&self.held),
                })
            }
            None => None,
        };
        let total = self
            .total
            .try_reserve(bytes)
            .ok_or_else(|| Refusal::Total {
                declared: bytes,
                available: self.total.available(),
                capacity: self.total.capacity(),
            })?;
        Ok(Held {
            _total: total,
            _conn: conn,
        })
    }
}

/// One message's reservation; dropping it gives the bytes back.
#[derive(Debug)]
struct Held {
    _total: Reservation,
    _conn: Option<ConnHeld>,
}

#[derive(Debug)]
struct ConnHeld {
    peer: SocketAddr,
    bytes: u64,
    map: Arc<Mutex<HashMap<SocketAddr, u64>>>,
}

impl Drop for ConnHeld {
    fn drop(&mut self) {
        let mut held = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(now) = held.get_mut(&self.peer) {
            *now = now.saturating_sub(self.bytes);
            if *now == 0 {
                held.remove(&self.peer);
            }
        }
    }
}

/// The layer of a [`MessageBudget`] (tonic: `Server::builder().layer(..)`).
#[derive(Clone)]
pub struct MessageBudgetLayer {
    budget: MessageBudget,
    peer_of: PeerOf,
    refuse: Refuse,
}

impl fmt::Debug for MessageBudgetLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageBudgetLayer")
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl MessageBudgetLayer {
    pub fn new(budget: MessageBudget, peer_of: PeerOf, refuse: Refuse) -> Self {
        Self {
            budget,
            peer_of,
            refuse,
        }
    }
}

impl<S> tower::Layer<S> for MessageBudgetLayer {
    type Service = MessageBudgetService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MessageBudgetService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`MessageBudgetLayer`].
#[derive(Debug, Clone)]
pub struct MessageBudgetService<S> {
    inner: S,
    layer: MessageBudgetLayer,
}

impl<S, B, R> tower::Service<http::Request<B>> for MessageBudgetService<S>
where
    S: tower::Service<http::Request<BudgetBody<B>>, Response = R>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    R: Send + 'static,
{
    type Response = R;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<R, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let budget = self.layer.budget.clone();
        let refuse = Arc::clone(&self.layer.refuse);
        let Ok(slot) = Arc::clone(&budget.requests).try_acquire_owned() else {
            let err = refuse(Refusal::Requests {
                limit: budget.max_requests,
            });
            return Box::pin(std::future::ready(Err(err)));
        };
        let peer = (self.layer.peer_of)(req.extensions());
        let req = req.map(|inner| BudgetBody::new(inner, budget, peer, refuse));
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await.map_err(Into::into);
            drop::<OwnedSemaphorePermit>(slot);
            res
        })
    }
}

/// A request body whose gRPC messages are reserved against a
/// [`MessageBudget`] as their prefixes arrive.
pub struct BudgetBody<B> {
    inner: Pin<Box<B>>,
    budget: MessageBudget,
    peer: Option<SocketAddr>,
    refuse: Refuse,
    prefix: [u8; 5],
    prefix_len: usize,
    /// Bytes of the current message still to come.
    remaining: u64,
    held: Option<Held>,
    failed: bool,
}

impl<B> fmt::Debug for BudgetBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BudgetBody")
            .field("peer", &self.peer)
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

impl<B> BudgetBody<B> {
    fn new(inner: B, budget: MessageBudget, peer: Option<SocketAddr>, refuse: Refuse) -> Self {
        Self {
            inner: Box::pin(inner),
            budget,
            peer,
            refuse,
            prefix: [0; 5],
            prefix_len: 0,
            remaining: 0,
            held: None,
            failed: false,
        }
    }

    /// Follows the framing through `data`, reserving each message at its
    /// prefix and giving it back at its last byte.
    fn account(&mut self, mut data: &[u8]) -> Result<(), Refusal> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = data
                    .len()
                    .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                self.remaining -= n as u64;
                data.advance(n);
                if self.remaining == 0 {
                    self.held = None;
                }
                continue;
            }
            let n = data.len().min(5 - self.prefix_len);
            self.prefix[self.prefix_len..self.prefix_len + n].copy_from_slice(&data[..n]);
            self.prefix_len += n;
            data.advance(n);
            if self.prefix_len == 5 {
                self.prefix_len = 0;
                let [_, a, b, c, d] = self.prefix;
                let len = u64::from(u32::from_be_bytes([a, b, c, d]));
                if len > 0 {
                    self.held = Some(self.budget.reserve(self.peer, len + 5)?);
                    self.remaining = len;
                }
            }
        }
        Ok(())
    }
}

impl<B> Body for BudgetBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        let frame = match self.inner.as_mut().poll_frame(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => {
                self.held = None;
                return Poll::Ready(None);
            }
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(Some(Ok(frame))) => frame,
        };
        if let Some(data) = frame.data_ref() {
            let this = &mut *self;
            if let Err(refusal) = this.account(data) {
                this.failed = true;
                this.held = None;
                tracing::debug!(%refusal, peer = ?this.peer, "grpc message refused before decoding");
                return Poll::Ready(Some(Err((this.refuse)(refusal))));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    fn message(len: usize) -> Vec<u8> {
        let mut m = vec![0u8];
        m.extend_from_slice(&(len as u32).to_be_bytes());
        m.extend(std::iter::repeat_n(7u8, len));
        m
    }

    fn peer(_: &http::Extensions) -> Option<SocketAddr> {
        Some(SocketAddr::from(([127, 0, 0, 1], 9)))
    }

    fn body(budget: &MessageBudget) -> BudgetBody<http_body_util::Empty<Bytes>> {
        let refuse: Refuse = Arc::new(|r| Box::new(r) as BoxError);
        BudgetBody::new(
            http_body_util::Empty::new(),
            budget.clone(),
            peer(&http::Extensions::new()),
            refuse,
        )
    }

    #[test]
    fn a_message_is_held_from_its_prefix_to_its_last_byte() {
        let budget = MessageBudget::new(10_000, ByteBudget::new(1 << 20), 4);
        let mut b = body(&budget);
        let m = message(4000);
        let at = SocketAddr::from(([127, 0, 0, 1], 9));
        b.account(&m[..3]).expect("a partial prefix");
        assert_eq!(budget.held_by(at), 0);
        b.account(&m[3..100]).expect("fits");
        assert_eq!(budget.held_by(at), 4005);
        b.account(&m[100..]).expect("fits");
        assert_eq!(budget.held_by(at), 0, "given back at the last byte");
        // Two messages in one frame, the second split.
        let two = [message(10), message(20)].concat();
        b.account(&two[..20]).expect("fits");
        assert_eq!(budget.held_by(at), 25);
        b.account(&two[20..]).expect("fits");
        assert_eq!(budget.held_by(at), 0);
    }

    #[test]
    fn the_connection_and_the_total_bound_what_is_held() {
        let budget = MessageBudget::new(10_000, ByteBudget::new(12 * 1024), 4);
        let (mut a, mut b, mut c) = (body(&budget), body(&budget), body(&budget));
        a.account(&message(6000)[..10]).expect("fits");
        let over = b
            .account(&message(6000)[..10])
            .expect_err("over the connection");
        assert!(
            matches!(over, Refusal::Connection { held: 6005, .. }),
            "{over}"
        );
        // Another connection is bounded by the total only.
        c.peer = Some(SocketAddr::from(([127, 0, 0, 2], 9)));
        c.account(&message(6000)[..10]).expect("fits the total");
        let mut d = body(&budget);
        d.peer = None;
        let over = d.account(&message(2000)[..10]).expect_err("over the total");
        assert!(matches!(over, Refusal::Total { .. }), "{over}");
        drop(a);
        b.account(&message(6000)[..10])
            .expect("a's bytes came back");
    }

    #[tokio::test]
    async fn a_refused_body_fails_with_the_callers_error_and_then_ends() {
        let budget = MessageBudget::new(100, ByteBudget::new(1 << 20), 4);
        let refuse: Refuse = Arc::new(|r| Box::new(r) as BoxError);
        let full = http_body_util::Full::new(Bytes::from(message(1000)));
        let at = peer(&http::Extensions::new());
        let mut b = BudgetBody::new(full, budget, at, refuse);
        let err = b.frame().await.expect("a frame").expect_err("refused");
        let refusal = err.downcast::<Refusal>().expect("the caller's error");
        assert!(
            matches!(*refusal, Refusal::Connection { declared: 1005, .. }),
            "{refusal}"
        );
        assert!(b.frame().await.is_none());
    }

    #[tokio::test]
    async fn requests_beyond_the_limit_are_refused_not_queued() {
        use tower::{Layer, Service, ServiceExt};
        let budget = MessageBudget::new(100, ByteBudget::new(1 << 20), 1);
        let refuse: Refuse = Arc::new(|r| Box::new(r) as BoxError);
        let (gate_tx, gate_rx) = tokio::sync::oneshot::channel::<()>();
        let gate = Arc::new(Mutex::new(Some(gate_rx)));
        let inner = tower::service_fn(
            move |_req: http::Request<BudgetBody<http_body_util::Empty<Bytes>>>| {
                let gate = gate.lock().unwrap_or_else(|p| p.into_inner()).take();
                async move {
                    if let Some(g) = gate {
                        let _ = g.await;
                    }
                    Ok::<_, BoxError>(())
                }
            },
        );
        let mut svc = MessageBudgetLayer::new(budget, peer, refuse).layer(inner);
        let req = || http::Request::new(http_body_util::Empty::<Bytes>::new());
        let first = svc.ready().await.expect("ready").call(req());
        let second = svc.ready().await.expect("ready").call(req()).await;
        let err = second.expect_err("over the limit");
        assert!(matches!(
            err.downcast_ref::<Refusal>(),
            Some(Refusal::Requests { limit: 1 })
        ));
        let _ = gate_tx.send(());
        first.await.expect("the first finishes");
        svc.ready()
            .await
            .expect("ready")
            .call(req())
            .await
            .expect("a slot is free again");
    }
}
