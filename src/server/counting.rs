//! A client stream that counts the bytes it moves into its connection's
//! entry, for `/connections` and the byte counters of `/metrics`. It also
//! owns the connection's registration and its place in the active gauge,
//! so both last exactly as long as the socket: through an upgrade, the
//! tunnel, and the lingering close.

use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::limit::Slot;
use crate::connections::{Conn, Registration, TlsFacts};
use crate::metrics::Metrics;

pub struct Counting<T> {
    inner: T,
    conn: Arc<Conn>,
    registration: Registration,
    _active: ActiveConnection,
    _slot: Slot,
}

impl<T> Counting<T> {
    pub fn new(inner: T, registration: Registration, metrics: Arc<Metrics>, slot: Slot) -> Self {
        Counting {
            inner,
            conn: registration.conn().clone(),
            registration,
            _active: ActiveConnection::new(metrics),
            _slot: slot,
        }
    }

    pub fn conn(&self) -> &Arc<Conn> {
        &self.conn
    }

    /// Lists the connection in `/connections`, with its TLS facts.
    pub fn list(&mut self, tls: Option<TlsFacts>) {
        self.registration.list(tls);
    }
}

/// Counts a connection in the active gauge for as long as it lives.
struct ActiveConnection(Arc<Metrics>);

impl ActiveConnection {
    fn new(metrics: Arc<Metrics>) -> Self {
        metrics.connections_total.inc();
        metrics.connections_active.inc();
        ActiveConnection(metrics)
    }
}

impl Drop for ActiveConnection {
    fn drop(&mut self) {
        self.0.connections_active.dec();
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counting<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.conn.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counting<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.conn.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            self.conn.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
