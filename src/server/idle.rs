//! `idle_timeout`: closing client connections that carry nothing.
//!
//! hyper bounds an HTTP/1.1 connection's wait for its next request
//! (`header_read_timeout` runs from the end of the previous response), but
//! an HTTP/2 connection with no open stream is kept for as long as the
//! client likes: one that sent its preface and then nothing would hold a
//! place under `max_connections` for ever. So every connection is watched
//! here: when no request has been in flight and no byte has moved either
//! way for `idle_timeout`, it is shut down gracefully (GOAWAY over HTTP/2;
//! over HTTP/1.1, closed between requests). A response still streaming, or
//! a request waiting on the upstream, is never cut: graceful shutdown lets
//! both finish.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use crate::connections::Conn;

/// Counts a request as in flight, from its head to its response head.
/// Bytes moving on the socket account for the body that follows.
pub struct InFlight(Arc<Conn>);

impl InFlight {
    fn new(conn: &Arc<Conn>) -> Self {
        conn.requests_in_flight.fetch_add(1, Ordering::Relaxed);
        conn.requests_begun.fetch_add(1, Ordering::Relaxed);
        InFlight(conn.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.requests_in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A service whose calls are counted in the connection's in-flight
/// requests.
pub struct Tracked<S> {
    inner: S,
    conn: Arc<Conn>,
}

impl<S> Tracked<S> {
    pub fn new(inner: S, conn: Arc<Conn>) -> Self {
        Tracked { inner, conn }
    }
}

impl<S, R> hyper::service::Service<R> for Tracked<S>
where
    S: hyper::service::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn call(&self, req: R) -> Self::Future {
        let guard = InFlight::new(&self.conn);
        TrackedFuture {
            inner: self.inner.call(req),
            _guard: guard,
        }
    }
}

pin_project_lite::pin_project! {
    pub struct TrackedFuture<F> {
        #[pin]
        inner: F,
        _guard: InFlight,
    }
}

impl<F: Future> Future for TrackedFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().inner.poll(cx)
    }
}

/// Completes once `conn` has had no request in flight and moved no byte
/// for `timeout`. It checks a few times per period rather than on every
/// byte, so the hot path pays nothing but the atomics it already updates;
/// a connection may therefore live up to a quarter period longer.
pub async fn expired(conn: Arc<Conn>, timeout: Duration) {
    let tick = (timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(15));
    let moved = || conn.bytes_in.load(Ordering::Relaxed) + conn.bytes_out.load(Ordering::Relaxed);
    let mut last = moved();
    let mut quiet_since = Instant::now();
    loop {
        tokio::time::sleep(tick).await;
        let now = moved();
        if now != last || conn.requests_in_flight.load(Ordering::Relaxed) > 0 {
            last = now;
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() >= timeout {
            return;
        }
    }
}
