//! The byte tunnel behind an upgraded connection (WebSocket): `start`
//! gives it a task of its own and its place in the counts, [`run`] joins
//! both upgraded halves. The tunnel ends when either side closes, after
//! `tunnel_idle_timeout` with no byte in either direction, or when the
//! proxy shuts down.
//!
//! It never parses frames: it moves bytes, which is why a message of any
//! size or shape passes. An idle tunnel holds no copy buffer: bytes are
//! read into a per-thread scratch buffer and written on at once, and only
//! what the other side cannot take yet is kept, in a buffer of its own that
//! is freed as soon as it drains. Thousands of quiet WebSockets then cost
//! little more than their sockets and TLS state.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::upstream::h1::Upgraded;
use super::upstream::server::Lease;
use super::{ConnInfo, Shared};
use crate::config::RouteConfig;
use crate::side::Side;

/// The largest read in one go: one TLS record's worth of plaintext.
const SCRATCH: usize = 16 * 1024;

thread_local! {
    // Used only inside one synchronous `poll`, never across an await, so a
    // task that moves between threads never sees another task's bytes.
    static SCRATCH_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; SCRATCH].into_boxed_slice());
}

/// How a tunnel ended, for the log.
#[derive(Debug)]
pub enum End {
    Closed {
        to_upstream: u64,
        to_client: u64,
    },
    Idle,
    Shutdown,
    /// A reload removed its route or its server (`tunnel_drain_after_reload`).
    Retired,
    Error(io::Error),
}

/// Starts the tunnel of a request on `route` whose upstream answered 101.
/// It runs in a task of its own, tracked by `shared.tunnels` (it outlives
/// the HTTP connection, so the shutdown drain must find it there), counted
/// in the open-tunnel gauge and on the client connection's entry while it
/// runs, and logged when it ends. `lease` keeps the tunnel counted among
/// its server's connections in flight (least_conn, max_conns) until it ends.
///
/// `retired` fires when a reload with `tunnel_drain_after_reload` has
/// removed the tunnel's route, or its server from the pool, and the grace
/// has passed: the tunnel is then closed.
pub(crate) fn start(
    shared: &Shared,
    conn: &ConnInfo,
    route: &RouteConfig,
    retired: CancellationToken,
    client: OnUpgrade,
    upstream: Upgraded,
    lease: Lease,
) {
    let idle = route.tunnel_idle_timeout;
    let cancel = shared.tunnel_cancel.clone();
    let route_path = route.path.clone();
    let (metrics, entry) = (shared.metrics.clone(), conn.conn.clone());
    metrics.tunnels_active.inc();
    entry.tunnels.fetch_add(1, Ordering::Relaxed);
    let server_retired = lease.server.retired.clone();
    shared.tunnels.spawn(async move {
        let end = tokio::select! {
            end = run(client, upstream, idle, cancel) => end,
            () = retired.cancelled() => End::Retired,
            () = server_retired.cancelled() => End::Retired,
        };
        drop(lease);
        tracing::debug!(route = %route_path, ?end, "tunnel ended");
        metrics.tunnels_active.dec();
        entry.tunnels.fetch_sub(1, Ordering::Relaxed);
    });
}

/// Waits for both sides to finish upgrading, then moves bytes until the end.
pub async fn run(
    client: OnUpgrade,
    upstream: Upgraded,
    idle_timeout: Duration,
    cancel: CancellationToken,
) -> End {
    let client = match client.await {
        Ok(client) => client,
        Err(e) => return End::Error(io::Error::other(e)),
    };
    join(TokioIo::new(client), upstream, idle_timeout, cancel).await
}

/// Moves bytes between any two streams until the end: the upgraded halves
/// of a WebSocket, or the legs of a `[[stream]]`.
pub(crate) async fn join<C, U>(
    client: C,
    upstream: U,
    idle_timeout: Duration,
    cancel: CancellationToken,
) -> End
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let epoch = Instant::now();
    // Milliseconds since `epoch` of the last byte moved either way; one
    // timer then serves both directions.
    let activity = AtomicU64::new(0);
    let copy = CopyBoth {
        client,
        upstream,
        to_upstream: Direction::default(),
        to_client: Direction::default(),
        failed: None,
        epoch,
        activity: &activity,
    };
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
    // The copy runs at every wake-up; the idle timer and the shutdown are
    // looked at only when they fire.
    let mut copy = std::pin::pin!(copy);
    let mut idle = Side::new(idle);
    let mut shutdown = Side::new(cancel.cancelled_owned());
    std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = copy.as_mut().poll(cx) {
            return Poll::Ready(match r {
                Ok((to_upstream, to_client)) => End::Closed {
                    to_upstream,
                    to_client,
                },
                Err(e) => End::Error(e),
            });
        }
        if idle.poll(cx).is_ready() {
            return Poll::Ready(End::Idle);
        }
        shutdown.poll(cx).map(|()| End::Shutdown)
    })
    .await
}

/// Which side of a direction failed: the tunnel ends differently.
#[derive(Debug)]
enum Broken {
    /// Reading failed (a reset): what was read before has been passed on
    /// and the writer shut down; the other direction writes to the broken
    /// socket, so it ends too.
    Reader(io::Error),
    /// Writing failed: the other direction reads from that same socket,
    /// so it runs on until that socket gives its last bytes and its end.
    Writer(io::Error),
}

impl From<Broken> for io::Error {
    fn from(b: Broken) -> io::Error {
        match b {
            Broken::Reader(e) | Broken::Writer(e) => e,
        }
    }
}

/// One direction of the tunnel.
#[derive(Default)]
struct Direction {
    /// Bytes read but not yet taken by the writer; empty (no allocation)
    /// whenever the writer keeps up.
    pending: Vec<u8>,
    written: usize,
    /// The writer has buffered bytes that a flush must push out.
    needs_flush: bool,
    read_eof: bool,
    /// Why the reader ended, reported once what it gave has been passed on.
    read_err: Option<io::Error>,
    done: bool,
    total: u64,
}

impl Direction {
    /// Moves bytes from `reader` to `writer` until the reader would block;
    /// ready once the reader ended (or failed) and the writer was shut down.
    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut R,
        writer: &mut W,
        touch: &dyn Fn(),
    ) -> Poll<Result<(), Broken>>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        loop {
            while self.written < self.pending.len() {
                let n = ready!(Pin::new(&mut *writer).poll_write(cx, &self.pending[self.written..]))
                    .map_err(Broken::Writer)?;
                if n == 0 {
                    return Poll::Ready(Err(Broken::Writer(io::ErrorKind::WriteZero.into())));
                }
                self.written += n;
                self.needs_flush = true;
            }
            if !self.pending.is_empty() {
                // Drained: give the memory back while the tunnel is quiet.
                self.pending = Vec::new();
                self.written = 0;
            }
            if self.read_eof {
                if self.needs_flush {
                    ready!(Pin::new(&mut *writer).poll_flush(cx)).map_err(Broken::Writer)?;
                    self.needs_flush = false;
                }
                ready!(Pin::new(&mut *writer).poll_shutdown(cx)).map_err(Broken::Writer)?;
                return Poll::Ready(match self.read_err.take() {
                    Some(e) => Err(Broken::Reader(e)),
                    None => Ok(()),
                });
            }
            let step = SCRATCH_BUF.with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                let mut buf = ReadBuf::new(&mut scratch[..]);
                match Pin::new(&mut *reader).poll_read(cx, &mut buf) {
                    Poll::Pending => Poll::Pending,
                    // A reader that failed (a reset) has still given bytes
                    // that the other side must get, and a close after them.
                    Poll::Ready(Err(e)) => {
                        self.read_err = Some(e);
                        self.read_eof = true;
                        Poll::Ready(Ok(()))
                    }
                    Poll::Ready(Ok(())) => {
                        let data = buf.filled();
                        if data.is_empty() {
                            self.read_eof = true;
                            return Poll::Ready(Ok(()));
                        }
                        touch();
                        self.total += data.len() as u64;
                        let mut offset = 0;
                        while offset < data.len() {
                            match Pin::new(&mut *writer).poll_write(cx, &data[offset..]) {
                                Poll::Ready(Ok(0)) => {
                                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()))
                                }
                                Poll::Ready(Ok(n)) => offset += n,
                                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                                Poll::Pending => {
                                    self.pending = data[offset..].to_vec();
                                    self.written = 0;
                                    break;
                                }
                            }
                        }
                        self.needs_flush = true;
                        Poll::Ready(Ok(()))
                    }
                }
            });
            match step {
                Poll::Ready(Ok(())) => continue,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(Broken::Writer(e))),
                Poll::Pending => {
                    // Nothing more to read now: push out what the writer holds.
                    if self.needs_flush {
                        ready!(Pin::new(&mut *writer).poll_flush(cx)).map_err(Broken::Writer)?;
                        self.needs_flush = false;
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

/// Both directions, until both have ended: a close on one side is passed
/// on as a shutdown of the other side's write half, and the peer then
/// closes its own side. A failure ends the tunnel without losing what the
/// failed socket had already sent: an upstream that answers and then
/// resets makes the next write towards it fail, but its answer is already
/// in the socket, and the client gets it (see [`Broken`]).
struct CopyBoth<'a, C, U> {
    client: C,
    upstream: U,
    to_upstream: Direction,
    to_client: Direction,
    failed: Option<io::Error>,
    epoch: Instant,
    activity: &'a AtomicU64,
}

/// Notes how a direction ended. A broken reader ends the `other` direction
/// too, since that one writes to the same socket.
fn ended(result: Result<(), Broken>, other: &mut Direction, failed: &mut Option<io::Error>) {
    let Err(broken) = result else { return };
    if let Broken::Reader(_) = broken {
        other.done = true;
    }
    failed.get_or_insert(broken.into());
}

impl<C, U> Future for CopyBoth<'_, C, U>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    type Output = io::Result<(u64, u64)>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let (epoch, activity) = (this.epoch, this.activity);
        let touch = move || activity.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
        if !this.to_upstream.done {
            if let Poll::Ready(r) =
                this.to_upstream
                    .poll_copy(cx, &mut this.client, &mut this.upstream, &touch)
            {
                this.to_upstream.done = true;
                ended(r, &mut this.to_client, &mut this.failed);
            }
        }
        if !this.to_client.done {
            if let Poll::Ready(r) = this
                .to_client
                .poll_copy(cx, &mut this.upstream, &mut this.client, &touch)
            {
                this.to_client.done = true;
                ended(r, &mut this.to_upstream, &mut this.failed);
            }
        }
        if this.to_upstream.done && this.to_client.done {
            Poll::Ready(match this.failed.take() {
                Some(e) => Err(e),
                None => Ok((this.to_upstream.total, this.to_client.total)),
            })
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let near = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (far, _) = listener.accept().await.unwrap();
        (near, far)
    }

    /// An upstream that answers and then resets, while the client has
    /// already sent more: writing that on fails, and the answer must
    /// still reach the client, followed by a close.
    #[tokio::test]
    async fn an_answer_sent_before_a_reset_reaches_the_client() {
        let (mut client_peer, client_side) = pair().await;
        let (upstream_side, mut upstream_peer) = pair().await;

        client_peer.write_all(b"next request").await.unwrap();
        let mut peek = [0u8; 1];
        tokio::time::timeout(Duration::from_secs(10), client_side.peek(&mut peek))
            .await
            .expect("the client's bytes arrive")
            .unwrap();

        upstream_peer.write_all(b"answer").await.unwrap();
        socket2::SockRef::from(&upstream_peer)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(upstream_peer);
        let deadline = Instant::now() + Duration::from_secs(10);
        while upstream_side.take_error().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the reset never arrived");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }

        let activity = AtomicU64::new(0);
        let copy = CopyBoth {
            client: client_side,
            upstream: upstream_side,
            to_upstream: Direction::default(),
            to_client: Direction::default(),
            failed: None,
            epoch: Instant::now(),
            activity: &activity,
        };
        let ended = tokio::time::timeout(Duration::from_secs(10), copy)
            .await
            .expect("the tunnel ends by itself");
        assert!(ended.is_err(), "the failed write is reported: {ended:?}");

        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), client_peer.read_to_end(&mut got))
            .await
            .expect("the client sees a close")
            .unwrap();
        assert_eq!(got, b"answer");
    }
}
