//! The byte tunnel behind an upgraded connection (WebSocket): both upgraded
//! halves are joined, the tunnel ends when either side closes, after
//! `tunnel_idle_timeout` with no byte in either direction, or when the
//! proxy shuts down.
//!
//! It never parses frames: it moves bytes, which is why a message of any
//! size or shape passes.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How a tunnel ended, for the log.
#[derive(Debug)]
pub enum End {
    Closed { to_upstream: u64, to_client: u64 },
    Idle,
    Shutdown,
    Error(io::Error),
}

/// Waits for both sides to finish upgrading, then moves bytes until the end.
pub async fn run(
    client: OnUpgrade,
    upstream: OnUpgrade,
    idle_timeout: Duration,
    cancel: CancellationToken,
) -> End {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(e) => return End::Error(io::Error::other(e)),
    };
    let epoch = Instant::now();
    let activity = Arc::new(AtomicU64::new(0));
    let mut client = Tracked::new(TokioIo::new(client), epoch, activity.clone());
    let mut upstream = Tracked::new(TokioIo::new(upstream), epoch, activity.clone());

    let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
    let idle = async {
        loop {
            let last = Duration::from_millis(activity.load(Ordering::Relaxed));
            let deadline = epoch + last + idle_timeout;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    };
    tokio::select! {
        r = copy => match r {
            Ok((to_upstream, to_client)) => End::Closed { to_upstream, to_client },
            Err(e) => End::Error(e),
        },
        () = idle => End::Idle,
        () = cancel.cancelled() => End::Shutdown,
    }
}

/// A stream that records when it last moved a byte, in milliseconds since
/// the tunnel began, so one timer can serve both directions.
struct Tracked<T> {
    inner: T,
    epoch: Instant,
    activity: Arc<AtomicU64>,
}

impl<T> Tracked<T> {
    fn new(inner: T, epoch: Instant, activity: Arc<AtomicU64>) -> Self {
        Tracked {
            inner,
            epoch,
            activity,
        }
    }

    fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.activity.store(ms, Ordering::Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
