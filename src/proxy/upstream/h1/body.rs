//! The body of an upstream response, read from the connection as the client
//! side asks for it: data is handed on as slices of the read buffer. Once
//! the body is over and the connection is in step, the connection goes back
//! to its pool; a body dropped before its end closes it.
//!
//! When the response started before the request body was all sent (an
//! echo), each poll of the response body first sends what it can of the
//! request body, so both flow at once, at the pace the client reads.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::chunked::{ChunkError, Chunked, Step};
use super::response::Framing;
use super::{Conn, SendError, Sending, Upgraded};
use crate::proxy::request_body::BodyError;
use crate::proxy::upstream::pool::Home;

/// The most a read of a long body asks for at once.
const READ_MAX: u64 = 256 * 1024;

pub struct UpstreamBody {
    /// `None` once the body is over.
    conn: Option<Conn>,
    decoder: Decoder,
    /// The rest of the request body, still to be sent.
    sending: Option<Sending>,
    /// The connection can carry another request once the body is over.
    reusable: bool,
    home: Home,
}

enum Decoder {
    Length(u64),
    Chunked(Chunked),
    UntilClose,
    Upgrade,
    Done,
}

/// Why a response body could not be read to its end.
#[derive(Debug, thiserror::Error)]
pub enum BodyReadError {
    #[error("upstream closed the connection before the end of the response body")]
    Truncated,
    #[error("reading the response body from the upstream failed")]
    Io(#[source] io::Error),
    #[error(transparent)]
    Chunk(ChunkError),
    /// The request body, still being sent, failed: the exchange is cut.
    #[error("request body stopped while it was being forwarded")]
    Request(#[source] BodyError),
}

impl UpstreamBody {
    /// The body after a head with `framing`, read from `conn`, which goes
    /// back to `home` at the end if `reusable` and `sending` (the rest of
    /// the request) has been sent by then.
    pub fn new(framing: Framing, conn: Conn, sending: Option<Sending>, reusable: bool, home: Home) -> Self {
        let decoder = match framing {
            Framing::Empty | Framing::Length(0) => Decoder::Done,
            Framing::Length(n) => Decoder::Length(n),
            Framing::Chunked => Decoder::Chunked(Chunked::default()),
            Framing::UntilClose => Decoder::UntilClose,
            Framing::Upgrade => Decoder::Upgrade,
        };
        let mut body = UpstreamBody {
            conn: Some(conn),
            decoder,
            sending,
            reusable,
            home,
        };
        if let Decoder::Done = body.decoder {
            body.finish();
        }
        body
    }

    /// The whole body, if it has a length and all of it has been read
    /// already (it usually came in with the head).
    pub fn take_whole(&mut self) -> Option<Bytes> {
        let (Decoder::Length(left), Some(conn)) = (&self.decoder, self.conn.as_mut()) else {
            return None;
        };
        let n = usize::try_from(*left).ok().filter(|&n| n <= conn.buf.len())?;
        let whole = conn.buf.split_to(n).freeze();
        self.finish();
        Some(whole)
    }

    /// The connection of a 101 response, for the tunnel.
    pub fn into_upgraded(mut self) -> Option<Upgraded> {
        match self.decoder {
            Decoder::Upgrade => self.conn.take().map(Upgraded::new),
            _ => None,
        }
    }

    /// The body is over: the connection goes home if it is in step.
    fn finish(&mut self) {
        self.decoder = Decoder::Done;
        let unsent = self.sending.take().is_some();
        if let Some(conn) = self.conn.take() {
            if self.reusable && !unsent && conn.buf.is_empty() {
                self.home.put(conn);
            }
        }
    }

    fn poll_decode(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyReadError>>> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            if let Some(sending) = self.sending.as_mut() {
                match sending.poll(cx, &mut conn.io) {
                    Poll::Ready(Ok(())) => self.sending = None,
                    Poll::Ready(Err(SendError::Body(e))) => {
                        return Poll::Ready(Some(Err(BodyReadError::Request(e))))
                    }
                    // The upstream stopped reading; its answer may still
                    // come whole.
                    Poll::Ready(Err(SendError::Io(_))) => {
                        self.sending = None;
                        self.reusable = false;
                    }
                    Poll::Pending => {}
                }
            }
            let want = match &mut self.decoder {
                Decoder::Done | Decoder::Upgrade => return Poll::Ready(None),
                Decoder::Length(left) => {
                    if !conn.buf.is_empty() {
                        let n = (conn.buf.len() as u64).min(*left);
                        let data = conn.buf.split_to(n as usize).freeze();
                        *left -= n;
                        if *left == 0 {
                            self.finish();
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    (*left).min(READ_MAX) as usize
                }
                Decoder::Chunked(chunked) => {
                    match chunked.step(&mut conn.buf).map_err(BodyReadError::Chunk) {
                        Err(e) => return Poll::Ready(Some(Err(e))),
                        Ok(Step::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                        Ok(Step::Trailers(trailers)) => {
                            self.finish();
                            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                        }
                        Ok(Step::End) => {
                            self.finish();
                            return Poll::Ready(None);
                        }
                        Ok(Step::NeedMore) => 0,
                    }
                }
                Decoder::UntilClose => {
                    if !conn.buf.is_empty() {
                        let data = conn.buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    0
                }
            };
            match conn.poll_fill(cx, want) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(BodyReadError::Io(e)))),
                Poll::Ready(Ok(0)) => {
                    if let Decoder::UntilClose = self.decoder {
                        self.finish();
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Err(BodyReadError::Truncated)));
                }
                Poll::Ready(Ok(_)) => {}
            }
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BodyReadError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyReadError>>> {
        let this = self.get_mut();
        let polled = this.poll_decode(cx);
        if let Poll::Ready(Some(Err(_))) = polled {
            // Whatever follows an error is not a body: nothing more is read.
            this.decoder = Decoder::Done;
            this.conn = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.decoder, Decoder::Done | Decoder::Upgrade)
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder {
            Decoder::Length(n) => SizeHint::with_exact(n),
            Decoder::Done | Decoder::Upgrade => SizeHint::with_exact(0),
            Decoder::Chunked(_) | Decoder::UntilClose => SizeHint::default(),
        }
    }
}
