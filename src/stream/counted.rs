//! The two legs of a stream, wrapped to count the bytes they move.
//!
//! The client leg counts wire bytes into the connection's entry of the
//! live-connection registry (`/connections`, and the process's byte
//! totals), and owns that entry, the stream's gauge and its
//! `max_connections` permit, so all three last exactly as long as the
//! socket. The upstream leg counts what the stream forwarded, into the
//! stream's byte counters and the connection's own totals for its access
//! line.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;

use super::metrics::Active;
use crate::connections::{Conn, Registration};

/// Where a wrapper counts: bytes read from its stream, and written to it.
pub(crate) trait Count {
    fn read(&self, n: usize);
    fn written(&self, n: usize);
}

/// A stream whose reads and writes are counted by `C`.
pub(crate) struct Counted<T, C> {
    inner: T,
    count: C,
}

impl<T, C> Counted<T, C> {
    pub(crate) fn get_ref(&self) -> &T {
        &self.inner
    }

    pub(crate) fn count(&self) -> &C {
        &self.count
    }

    pub(crate) fn count_mut(&mut self) -> &mut C {
        &mut self.count
    }
}

/// The client leg's counts, and what lives as long as the client socket.
pub(crate) struct ClientSide {
    conn: Arc<Conn>,
    pub(crate) registration: Registration,
    _active: Active,
    _permit: OwnedSemaphorePermit,
}

impl Count for ClientSide {
    fn read(&self, n: usize) {
        self.conn.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn written(&self, n: usize) {
        self.conn.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
    }
}

pub(crate) type ClientLeg<T> = Counted<T, ClientSide>;

impl<T> ClientLeg<T> {
    pub(crate) fn client(
        inner: T,
        registration: Registration,
        active: Active,
        permit: OwnedSemaphorePermit,
    ) -> Self {
        Counted {
            inner,
            count: ClientSide {
                conn: registration.conn().clone(),
                registration,
                _active: active,
                _permit: permit,
            },
        }
    }
}

/// What one connection forwarded each way, read for its access line.
#[derive(Debug, Default)]
pub(crate) struct Forwarded {
    pub(crate) to_upstream: AtomicU64,
    pub(crate) to_client: AtomicU64,
}

/// The upstream leg's counts: the stream's counters and the connection's.
pub(crate) struct UpstreamSide {
    to_upstream: Counter,
    to_client: Counter,
    forwarded: Arc<Forwarded>,
}

impl Count for UpstreamSide {
    fn read(&self, n: usize) {
        self.to_client.inc_by(n as u64);
        self.forwarded.to_client.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn written(&self, n: usize) {
        self.to_upstream.inc_by(n as u64);
        self.forwarded.to_upstream.fetch_add(n as u64, Ordering::Relaxed);
    }
}

pub(crate) type UpstreamLeg<T> = Counted<T, UpstreamSide>;

impl<T> UpstreamLeg<T> {
    pub(crate) fn upstream(
        inner: T,
        to_upstream: Counter,
        to_client: Counter,
        forwarded: Arc<Forwarded>,
    ) -> Self {
        Counted {
            inner,
            count: UpstreamSide {
                to_upstream,
                to_client,
                forwarded,
            },
        }
    }
}

impl<T: AsyncRead + Unpin, C: Count + Unpin> AsyncRead for Counted<T, C> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            this.count.read(n);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin, C: Count + Unpin> AsyncWrite for Counted<T, C> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            this.count.written(n);
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            this.count.written(n);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
