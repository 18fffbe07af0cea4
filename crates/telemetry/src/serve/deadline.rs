//! [`DeadlineBody`]: a request body that must end before a deadline.

use std::{
    error::Error,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

/// The error a [`DeadlineBody`] yields when its deadline passes before its
/// end.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimeout(pub Duration);

/// Whether `err` (or an error in its source chain) is a [`BodyTimeout`].
pub fn is_body_timeout(err: &(dyn Error + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(e) = source {
        if e.is::<BodyTimeout>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// Wraps a body so that reading it fails with [`BodyTimeout`] once
/// `limit` has passed since the wrapper was made (when the headers were
/// read). A body that has ended is never failed.
#[derive(Debug)]
pub struct DeadlineBody<B> {
    inner: Pin<Box<B>>,
    sleep: Pin<Box<Sleep>>,
    limit: Duration,
}

impl<B> DeadlineBody<B> {
    pub fn new(inner: B, limit: Duration) -> Self {
        Self {
            inner: Box::pin(inner),
            sleep: Box::pin(tokio::time::sleep(limit)),
            limit,
        }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = self.inner.as_mut().poll_frame(cx) {
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyTimeout(self.limit)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt, StreamBody};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_fails_at_its_deadline_and_an_ended_one_never() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
        let stalled = DeadlineBody::new(
            StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx)),
            Duration::from_secs(30),
        );
        tx.send(Ok(Frame::data(Bytes::from_static(b"part"))))
            .await
            .expect("sent");
        let err = stalled.collect().await.expect_err("the deadline passes");
        assert!(is_body_timeout(err.as_ref()), "{err}");
        drop(tx);

        let whole = DeadlineBody::new(
            http_body_util::Full::new(Bytes::from_static(b"all")),
            Duration::from_secs(30),
        );
        tokio::time::sleep(Duration::from_secs(60)).await;
        let got = whole.collect().await.expect("ended in time").to_bytes();
        assert_eq!(&got[..], b"all");
    }
}
