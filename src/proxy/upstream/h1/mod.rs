//! The HTTP/1.1 client of the upstream leg, run inside the request's own
//! task: the request is written and the response read by the future that
//! handles the request, and the response body reads straight from the
//! connection. No connection task, no channel between them.
//!
//! The request head and body are written while the response head is
//! awaited, and the rest of the body while the response body is read: an
//! upstream may answer before it has read the whole body (an echo, an
//! early refusal), and an `Expect: 100-continue` upload gets its interim
//! response read and dropped. A connection goes back to its pool only
//! after an exchange that left it in step: the request sent in full, the
//! response body read to its end with nothing after it, and keep-alive.

pub mod body;
pub mod chunked;
pub mod request;
pub mod response;

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes, BytesMut};
use http::{Method, Request, Response};
use http_body::Body;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::proxy::request_body::{BodyError, RequestBody};
use crate::proxy::upstream::pool::Home;
use body::UpstreamBody;
use request::BodyFraming;
use response::{Head, HeadError};

/// A connection to an upstream, plain or TLS.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// The largest response head read.
const MAX_HEAD: usize = 64 * 1024;
/// What a read asks for at least.
const READ_SIZE: usize = 8 * 1024;

/// An upstream connection and what was read from it but not used yet.
pub struct Conn {
    io: Box<dyn Io>,
    buf: BytesMut,
}

impl Conn {
    pub fn new(io: impl Io) -> Self {
        Conn {
            io: Box::new(io),
            buf: BytesMut::new(),
        }
    }

    /// Whether an idle connection can take a request: the upstream has
    /// neither closed it nor sent anything unasked. Looks without waiting,
    /// and asks that `waker` be woken should either happen later.
    pub fn poll_idle(&mut self, waker: &Waker) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(waker);
        let mut probe = [0u8; 1];
        let mut probe = ReadBuf::new(&mut probe);
        matches!(
            Pin::new(&mut self.io).poll_read(&mut cx, &mut probe),
            Poll::Pending
        )
    }

    /// Reads more into the buffer: the number of bytes read, 0 at the end.
    fn poll_fill(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<io::Result<usize>> {
        self.buf.reserve(want.max(READ_SIZE));
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf)
    }
}

/// Why an exchange gave no response head.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("upstream connection failed")]
    Io(#[source] io::Error),
    #[error("upstream closed the connection before sending a response")]
    Closed,
    #[error(transparent)]
    Head(HeadError),
    /// The request body could not be read to its end (see [`BodyError`]).
    #[error("request body stopped while it was being forwarded")]
    Body(#[source] BodyError),
}

/// The end of an exchange: the response head and the connection, whose
/// buffer holds what came after the head.
pub struct Exchanged {
    pub head: Head,
    pub conn: Conn,
    /// The rest of the request body, when the response came before it was
    /// all sent.
    pub sending: Option<Sending>,
    /// Writing the request failed: the connection cannot be used again.
    pub broken: bool,
}

impl Exchanged {
    /// The response, its body read on from the connection, which goes back
    /// to `home` at the body's end if the exchange left it in step.
    pub fn into_response(self, home: Home) -> Response<UpstreamBody> {
        let reusable = self.head.keep_alive && !self.broken;
        let body = UpstreamBody::new(self.head.framing, self.conn, self.sending, reusable, home);
        Response::from_parts(self.head.parts, body)
    }
}

/// Sends `req` over `conn` and reads the final response head.
pub async fn exchange(mut conn: Conn, req: Request<RequestBody>) -> Result<Exchanged, ExchangeError> {
    let (mut parts, body) = req.into_parts();
    let framing = request::frame_body(&mut parts, &body);
    let head_request = parts.method == Method::HEAD;
    let mut send = Sending {
        queue: VecDeque::from([request::encode_head(&parts)]),
        body: (framing != BodyFraming::Empty).then_some(body),
        framing,
        unflushed: false,
    };
    drop(parts);
    let mut sent = false;
    // Why writing the request failed, if it did: the reason given should
    // no response come either.
    let mut failed: Option<io::Error> = None;
    // How much of the buffer is known to hold no complete head.
    let mut scanned = 0;
    // The bytes of the heads parsed so far (interim responses, then the
    // final one), which the limit counts with what is still buffered.
    let mut consumed = 0;
    let head = poll_fn(|cx| {
        if !sent && failed.is_none() {
            match send.poll(cx, &mut conn.io) {
                Poll::Ready(Ok(())) => sent = true,
                Poll::Ready(Err(SendError::Body(e))) => return Poll::Ready(Err(ExchangeError::Body(e))),
                // The upstream may have answered before it stopped
                // reading (an early 413, then a close): the answer is
                // read below, and the write error is the reason if none
                // comes.
                Poll::Ready(Err(SendError::Io(e))) => failed = Some(e),
                Poll::Pending => {}
            }
        }
        loop {
            // A head is parsed only once its end may have arrived, so one
            // that trickles in costs a scan of each new byte rather than a
            // parse of the whole buffer per read.
            if response::may_have_ended(&conn.buf, scanned) {
                let before = conn.buf.len();
                let parsed = response::parse(&mut conn.buf, head_request).map_err(ExchangeError::Head)?;
                consumed += before - conn.buf.len();
                // The limit holds however the head was cut into reads: one
                // that came whole in a single read is measured too.
                if consumed > MAX_HEAD {
                    return Poll::Ready(Err(ExchangeError::Head(HeadError::TooLarge(MAX_HEAD))));
                }
                if let Some(head) = parsed {
                    return Poll::Ready(Ok(head));
                }
            }
            if consumed + conn.buf.len() >= MAX_HEAD {
                return Poll::Ready(Err(ExchangeError::Head(HeadError::TooLarge(MAX_HEAD))));
            }
            scanned = conn.buf.len();
            match conn.poll_fill(cx, READ_SIZE) {
                Poll::Ready(Ok(0)) => {
                    // What came before the close is judged as it stands: a
                    // broken start of a head is reported as broken, however
                    // the reads cut it, and not as a mere close.
                    if let Err(e) = response::parse(&mut conn.buf, head_request) {
                        return Poll::Ready(Err(ExchangeError::Head(e)));
                    }
                    return Poll::Ready(Err(match failed.take() {
                        Some(e) => ExchangeError::Io(e),
                        None => ExchangeError::Closed,
                    }));
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(Err(ExchangeError::Io(failed.take().unwrap_or(e))))
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await?;
    let broken = failed.is_some();
    Ok(Exchanged {
        head,
        conn,
        sending: (!sent && !broken).then_some(send),
        broken,
    })
}

pub enum SendError {
    Io(io::Error),
    Body(BodyError),
}

/// The request on its way out: bytes queued for the socket, and the body
/// that produces more.
pub struct Sending {
    queue: VecDeque<Bytes>,
    body: Option<RequestBody>,
    framing: BodyFraming,
    unflushed: bool,
}

impl Sending {
    /// Writes until everything is sent and flushed (ready), or the body or
    /// the socket has to wait (pending).
    pub fn poll(&mut self, cx: &mut Context<'_>, io: &mut Box<dyn Io>) -> Poll<Result<(), SendError>> {
        loop {
            while !self.queue.is_empty() {
                let mut slices = [IoSlice::new(&[]); 8];
                let mut count = 0;
                for (slot, bytes) in slices.iter_mut().zip(self.queue.iter()) {
                    *slot = IoSlice::new(bytes);
                    count += 1;
                }
                let n = match Pin::new(&mut *io).poll_write_vectored(cx, &slices[..count]) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(SendError::Io(io::ErrorKind::WriteZero.into())))
                    }
                    Poll::Ready(Ok(n)) => n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(SendError::Io(e))),
                    Poll::Pending => return Poll::Pending,
                };
                self.unflushed = true;
                advance(&mut self.queue, n);
            }
            if self.unflushed {
                match Pin::new(&mut *io).poll_flush(cx) {
                    Poll::Ready(Ok(())) => self.unflushed = false,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(SendError::Io(e))),
                    Poll::Pending => return Poll::Pending,
                }
            }
            let Some(body) = self.body.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            match Pin::new(body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let trailers = frame.is_trailers();
                    request::encode_frame(self.framing, frame, &mut self.queue);
                    if trailers && self.framing == BodyFraming::Chunked {
                        // The trailers end the body.
                        self.body = None;
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(SendError::Body(e))),
                Poll::Ready(None) => {
                    if self.framing == BodyFraming::Chunked {
                        self.queue.push_back(Bytes::from_static(request::LAST_CHUNK));
                    }
                    self.body = None;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Drops the first `n` bytes of the queue.
fn advance(queue: &mut VecDeque<Bytes>, mut n: usize) {
    while n > 0 {
        let Some(front) = queue.front_mut() else { return };
        if n < front.len() {
            front.advance(n);
            return;
        }
        n -= front.len();
        queue.pop_front();
    }
}

/// The upstream side of a connection that switched protocols: the socket,
/// with whatever the upstream sent right after its 101 read first.
pub struct Upgraded {
    io: Box<dyn Io>,
    early: Bytes,
}

impl Upgraded {
    fn new(conn: Conn) -> Self {
        // A copy, not the read buffer itself, which an idle tunnel would
        // otherwise hold on to for as long as it lasts.
        Upgraded {
            io: conn.io,
            early: Bytes::copy_from_slice(&conn.buf),
        }
    }
}

impl AsyncRead for Upgraded {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.early.is_empty() {
            let n = this.early.len().min(buf.remaining());
            buf.put_slice(&this.early.split_to(n));
            if this.early.is_empty() {
                this.early = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
