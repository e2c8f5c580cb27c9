//! The request body sent upstream. A chunked body is read ahead up to
//! `READ_AHEAD` before anything is forwarded, so a framing error in it (a
//! bad chunk size, a broken chunk) is answered with 400 and the upstream
//! never sees the request; past that, and for bodies of declared length,
//! it streams. It also signals when it has been sent in full, so the
//! route's `read_timeout` counts from then, and records whether the
//! client broke it, so the answer is a 400 and not a 502.
//!
//! With the route's `max_body`, the bytes are counted as they pass. A body
//! that is larger already within the read-ahead is refused before anything
//! is forwarded; past it, the frame that would take the body over the limit
//! is not passed on and the body ends with [`BodyError::TooLarge`] instead,
//! which aborts the upstream request: the application never receives more
//! than the limit, and the client is answered 413 if no response started.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::oneshot;

/// How much of a chunked request body is read before it is forwarded.
pub const READ_AHEAD: usize = 64 * 1024;

/// Why a request body could not even start to be forwarded.
#[derive(Debug)]
pub enum ReadAheadError {
    /// The client's framing is broken: 400.
    Malformed(hyper::Error),
    /// The client sent nothing for the route's read timeout: 408.
    Timeout,
    /// The body is larger than the route's `max_body`: 413.
    TooLarge { limit: u64 },
}

/// Why a request body stopped while it was being forwarded.
#[derive(Debug)]
pub enum BodyError {
    /// Reading from the client failed: it went away, or broke the framing.
    Client(hyper::Error),
    /// The body grew past the route's `max_body`.
    TooLarge { limit: u64 },
    /// The client sent nothing for `client_body_timeout`.
    Stalled,
    /// The temporary file of a buffered body could not be read back.
    Spill(std::io::Error),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Client(_) => f.write_str("reading the request body from the client failed"),
            BodyError::TooLarge { limit } => {
                write!(f, "the request body is larger than max_body ({limit} bytes)")
            }
            BodyError::Stalled => f.write_str("the client sent no request body for client_body_timeout"),
            BodyError::Spill(_) => {
                f.write_str("reading the buffered request body back from its temporary file failed")
            }
        }
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BodyError::Client(e) => Some(e),
            BodyError::Spill(e) => Some(e),
            BodyError::TooLarge { .. } | BodyError::Stalled => None,
        }
    }
}

/// The limit, when the body of a failed exchange was cut off by `max_body`:
/// looks for [`BodyError::TooLarge`] among the causes of `err`.
pub fn cut_off(err: &(dyn std::error::Error + 'static)) -> Option<u64> {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if let Some(BodyError::TooLarge { limit }) = e.downcast_ref::<BodyError>() {
            return Some(*limit);
        }
        cause = e.source();
    }
    None
}

/// Whether the body of a failed exchange stalled past `client_body_timeout`.
pub fn stalled(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if let Some(BodyError::Stalled) = e.downcast_ref::<BodyError>() {
            return true;
        }
        cause = e.source();
    }
    false
}

pub struct RequestBody {
    ahead: VecDeque<Frame<Bytes>>,
    /// The part of a buffered body that went to a temporary file, sent
    /// after `ahead`.
    spilled: Option<super::buffered_request::Spilled>,
    rest: Option<Incoming>,
    /// Fired (by send or drop) once the body is done; `None` for a body
    /// that is done from the start, whose timer starts at once.
    done: Option<oneshot::Sender<()>>,
    client_failed: Arc<AtomicBool>,
    /// Bytes of `rest` that may still pass: `max_body` less what has been
    /// read, or `u64::MAX` without a limit.
    allowance: u64,
    /// `max_body`, or `u64::MAX`, for the error.
    limit: u64,
    /// `client_body_timeout`, once set.
    stall: Option<super::stall::Stall>,
}

/// What the request path keeps of a body it hands to the upstream client.
pub struct Tracking {
    /// Resolves once the body has been sent in full.
    pub sent: Option<oneshot::Receiver<()>>,
    /// Set when the client's body failed while it was being forwarded.
    pub client_failed: Arc<AtomicBool>,
}

impl RequestBody {
    /// A body with nothing in it.
    pub fn empty() -> Self {
        RequestBody {
            ahead: VecDeque::new(),
            spilled: None,
            rest: None,
            done: None,
            client_failed: Arc::new(AtomicBool::new(false)),
            allowance: u64::MAX,
            limit: u64::MAX,
            stall: None,
        }
    }

    /// A copy to send again, when the whole body is here (nothing is left
    /// to read from the client, and what was read ahead is at most
    /// `READ_AHEAD`): an empty body, or a small chunked one read whole.
    pub(crate) fn replay(&self) -> Option<RequestBody> {
        if self.rest.as_ref().is_some_and(|rest| !rest.is_end_stream()) {
            return None;
        }
        let mut ahead = VecDeque::with_capacity(self.ahead.len());
        for frame in &self.ahead {
            if let Some(data) = frame.data_ref() {
                ahead.push_back(Frame::data(data.clone()));
            } else if let Some(trailers) = frame.trailers_ref() {
                ahead.push_back(Frame::trailers(trailers.clone()));
            }
        }
        Some(RequestBody {
            ahead,
            spilled: self.spilled.as_ref().map(super::buffered_request::Spilled::again),
            ..RequestBody::empty()
        })
    }

    /// A body read whole before it is sent ([`super::buffered_request`]):
    /// `held` from memory, then `spilled` from its file.
    pub(crate) fn buffered(
        held: Bytes,
        spilled: Option<super::buffered_request::Spilled>,
    ) -> (Self, Tracking) {
        let mut body = RequestBody::empty();
        if !held.is_empty() {
            body.ahead.push_back(Frame::data(held));
        }
        body.spilled = spilled;
        // The read timeout counts from the moment the body is sent.
        let (tx, rx) = oneshot::channel();
        body.done = Some(tx);
        let tracking = Tracking {
            sent: Some(rx),
            client_failed: body.client_failed.clone(),
        };
        (body, tracking)
    }

    /// Ends the body with [`BodyError::Stalled`] when the client sends
    /// nothing of it for `after`.
    pub(crate) fn stall_after(mut self, after: Option<Duration>) -> Self {
        if self.rest.is_some() {
            self.stall = after.map(super::stall::Stall::new);
        }
        self
    }

    /// Wraps `inner`, reading a chunked body ahead first; the body may
    /// carry at most `max_body` bytes when given.
    pub async fn prepare(
        mut inner: Incoming,
        wait: Duration,
        max_body: Option<u64>,
    ) -> Result<(Self, Tracking), ReadAheadError> {
        let limit = max_body.unwrap_or(u64::MAX);
        let client_failed = Arc::new(AtomicBool::new(false));
        let mut ahead = VecDeque::new();
        let chunked = !inner.is_end_stream() && inner.size_hint().exact().is_none();
        let mut finished = false;
        let mut read = 0;
        if chunked {
            while read < READ_AHEAD {
                match tokio::time::timeout(wait, inner.frame()).await {
                    Err(_) => return Err(ReadAheadError::Timeout),
                    Ok(None) => {
                        finished = true;
                        break;
                    }
                    Ok(Some(Err(e))) => return Err(ReadAheadError::Malformed(e)),
                    Ok(Some(Ok(frame))) => {
                        read += frame.data_ref().map_or(0, Bytes::len);
                        if read as u64 > limit {
                            return Err(ReadAheadError::TooLarge { limit });
                        }
                        ahead.push_back(frame);
                    }
                }
            }
        }
        let rest = (!finished).then_some(inner);
        let empty = ahead.is_empty() && rest.as_ref().is_none_or(Body::is_end_stream);
        let (done, sent) = if empty || rest.is_none() {
            // Nothing left to wait for: the timer starts at once.
            (None, None)
        } else {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        };
        let body = RequestBody {
            ahead,
            spilled: None,
            rest,
            done,
            client_failed: client_failed.clone(),
            allowance: limit - read as u64,
            limit,
            stall: None,
        };
        Ok((body, Tracking { sent, client_failed }))
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        if let Some(frame) = this.ahead.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        if let Some(spilled) = this.spilled.as_mut() {
            match spilled.next_chunk() {
                Some(Ok(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Some(Err(e)) => {
                    this.spilled = None;
                    this.done.take();
                    return Poll::Ready(Some(Err(BodyError::Spill(e))));
                }
                None => this.spilled = None,
            }
        }
        let polled = match this.rest.as_mut() {
            Some(rest) => match Pin::new(rest).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.data_ref() {
                    // Only a route with a limit gets here: u64::MAX bytes
                    // never arrive. Nothing more passes, should the body be
                    // polled again.
                    Some(data) if data.len() as u64 > this.allowance => {
                        this.allowance = 0;
                        Poll::Ready(Some(Err(BodyError::TooLarge { limit: this.limit })))
                    }
                    Some(data) => {
                        this.allowance -= data.len() as u64;
                        Poll::Ready(Some(Ok(frame)))
                    }
                    None => Poll::Ready(Some(Ok(frame))),
                },
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(BodyError::Client(e)))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => {
                    if this.stall.as_mut().is_some_and(|stall| stall.stuck(cx)) {
                        Poll::Ready(Some(Err(BodyError::Stalled)))
                    } else {
                        Poll::Pending
                    }
                }
            },
            None => Poll::Ready(None),
        };
        match &polled {
            Poll::Ready(Some(Err(BodyError::Client(_)))) => {
                this.client_failed.store(true, Ordering::Relaxed);
                this.done.take();
            }
            Poll::Ready(Some(Err(BodyError::TooLarge { .. } | BodyError::Stalled | BodyError::Spill(_)))) => {
                this.done.take();
            }
            Poll::Ready(None) => {
                if let Some(done) = this.done.take() {
                    let _ = done.send(());
                }
            }
            Poll::Ready(Some(Ok(_))) => {
                if let Some(stall) = this.stall.as_mut() {
                    stall.moved();
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.ahead.is_empty()
            && self.spilled.as_ref().is_none_or(|s| s.remaining() == 0)
            && self.rest.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let ahead: u64 = self
            .ahead
            .iter()
            .map(|f| f.data_ref().map_or(0, |d| d.len() as u64))
            .sum::<u64>()
            + self
                .spilled
                .as_ref()
                .map_or(0, super::buffered_request::Spilled::remaining);
        match &self.rest {
            None => SizeHint::with_exact(ahead),
            Some(rest) => {
                let hint = rest.size_hint();
                let mut out = SizeHint::new();
                out.set_lower(hint.lower() + ahead);
                if let Some(upper) = hint.upper() {
                    out.set_upper(upper + ahead);
                }
                out
            }
        }
    }
}
