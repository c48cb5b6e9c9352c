//! The request body with a read deadline: once a handler has to *wait* for body bytes, the rest
//! of the body must arrive within the body-read timeout, or the next read fails with
//! [`BodyTimeout`]. A client that sends its headers and then trickles (or withholds) the body
//! cannot hold a connection and a handler forever.
//!
//! Bodies that arrive with their headers (the usual small API request) never wait, so they
//! never arm the timer: no allocation and no timer-wheel entry on that path.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

/// The error a handler reads when the body did not arrive in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request body did not arrive within {} ms", .0.as_millis())]
pub struct BodyTimeout(pub Duration);

/// [`Incoming`] with the read deadline described in the module docs.
pub(crate) struct TimedBody {
    inner: Incoming,
    timeout: Duration,
    /// Armed on the first read that has to wait; never reset, so a trickle cannot extend it.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl TimedBody {
    pub(crate) fn new(inner: Incoming, timeout: Duration) -> TimedBody {
        TimedBody {
            inner,
            timeout,
            deadline: None,
        }
    }
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|r| r.map_err(Into::into))),
            Poll::Pending => {
                let timeout = this.timeout;
                let deadline = this
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout(timeout))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether `error`, or an error it wraps (as `axum::body::to_bytes` wraps body errors), is a
/// [`BodyTimeout`]: handlers can answer 408 instead of blaming the body's size or syntax.
pub fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<BodyTimeout>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// A response body that holds a value (the connection's request-in-flight mark) until it is
/// written or dropped.
pub(crate) struct Tracked<T> {
    inner: axum::body::Body,
    _held: T,
}

impl<T> Tracked<T> {
    pub(crate) fn new(inner: axum::body::Body, held: T) -> Tracked<T> {
        Tracked { inner, _held: held }
    }
}

impl<T: Unpin> Body for Tracked<T> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
