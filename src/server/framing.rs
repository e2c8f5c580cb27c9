//! A 400 for an HTTP/1.1 request that declares both Content-Length and
//! Transfer-Encoding (RFC 9112 section 6.3: the classic request-smuggling
//! ambiguity).
//!
//! hyper reads such a request by its Transfer-Encoding, drops the
//! Content-Length from the head it hands over, and closes the connection
//! after the answer: safe, but the proxy cannot see that anything was
//! wrong, so the request would be forwarded. [`Framing`] wraps the client
//! stream and follows the request framing in the bytes hyper reads (see
//! [`tracker`]); [`Checked`] wraps the service and marks the request it
//! flagged with [`BothFramings`], which the proxy answers 400 with
//! `Connection: close` before anything is sent upstream.
//!
//! The stream is read before hyper parses what it read, and hyper hands
//! requests to the service one at a time in order, so by the time the
//! service is called for the n-th request the tracker has seen the n-th
//! head.

mod head;
mod tracker;

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;
use tokio::io::{AsyncRead, ReadBuf};

use crate::proxy::headers::BothFramings;
use tracker::Tracker;

/// The check on one HTTP/1.1 connection: its client stream `io` and its
/// `service`, wrapped to share one verdict. `max_head` is the listeners'
/// `max_header_size`.
pub fn check<T, S>(io: T, max_head: usize, service: S) -> (Framing<T>, Checked<S>) {
    let verdict = Arc::new(Verdict::default());
    (
        Framing {
            inner: io,
            tracker: Tracker::new(max_head),
            verdict: verdict.clone(),
        },
        Checked {
            inner: service,
            verdict,
            next: AtomicU64::new(0),
        },
    )
}

/// Which request of the connection, if any, declared both framings.
struct Verdict {
    /// Its index, 0 for the first request; `u64::MAX` for none.
    both_at: AtomicU64,
}

impl Default for Verdict {
    fn default() -> Self {
        Verdict {
            both_at: AtomicU64::new(u64::MAX),
        }
    }
}

/// A client stream whose request framing is followed as it is read.
pub struct Framing<T> {
    inner: T,
    tracker: Tracker,
    verdict: Arc<Verdict>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Framing<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if !this.tracker.is_off() {
            if let Some(index) = this.tracker.feed(&buf.filled()[before..]) {
                this.verdict.both_at.store(index, Ordering::Relaxed);
            }
        }
        r
    }
}

super::write_through!(Framing);

/// A service that marks the request its connection's [`Framing`] flagged.
pub struct Checked<S> {
    inner: S,
    verdict: Arc<Verdict>,
    /// The index the next request gets.
    next: AtomicU64,
}

impl<S, B> hyper::service::Service<Request<B>> for Checked<S>
where
    S: hyper::service::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, mut req: Request<B>) -> Self::Future {
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        if self.verdict.both_at.load(Ordering::Relaxed) == index {
            req.extensions_mut().insert(BothFramings);
        }
        self.inner.call(req)
    }
}
