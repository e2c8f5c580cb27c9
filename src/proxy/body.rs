//! The response body the proxy hands to hyper: an upstream body streamed
//! frame by frame under the route's read timeout, a static file read in
//! bounded chunks, or a short local answer. It also carries the access-log
//! line, written when the body ends or the client goes away, so the line
//! has the real byte count.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::access::AccessRecord;
use super::upstream::h1::body::UpstreamBody;
use super::upstream::server::Lease;
use crate::serve::body::FileBody;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response body that passed no byte for longer than the route allows.
#[derive(Debug, thiserror::Error)]
#[error("upstream sent nothing for {0:?} in the middle of a response body")]
pub struct BodyReadTimeout(pub Duration);

enum Kind {
    // Boxed: a response is moved several times on its way out, and most of
    // its size would be this state, which only a streamed body needs.
    Upstream(Pin<Box<Streaming>>),
    Local { data: Option<Bytes> },
    File(Box<FileBody>),
    // Another body around one of the two: compression.
    Wrapped(Pin<Box<dyn Body<Data = Bytes, Error = BoxError> + Send>>),
}

pin_project! {
    #[project = StreamingProj]
    struct Streaming {
        #[pin]
        body: UpstreamBody,
        #[pin]
        idle: Sleep,
        timeout: Duration,
        // The server's count of requests in flight, which least_conn and
        // max_conns read, lasts as long as the body.
        lease: Option<Lease>,
        // What `response_buffering` read ahead, sent before the rest.
        ahead: Option<Bytes>,
    }
}

pub struct ProxyBody {
    kind: Kind,
    log: Option<Box<AccessRecord>>,
}

impl ProxyBody {
    /// Streams `body`, failing if the upstream is silent for `timeout`
    /// between two frames.
    pub fn upstream(body: UpstreamBody, timeout: Duration, log: Option<Box<AccessRecord>>) -> Self {
        ProxyBody {
            kind: Kind::Upstream(Box::pin(Streaming {
                body,
                idle: tokio::time::sleep(timeout),
                timeout,
                lease: None,
                ahead: None,
            })),
            log,
        }
    }

    /// A complete body made here, such as an error page.
    pub fn local(data: impl Into<Bytes>, log: Option<Box<AccessRecord>>) -> Self {
        let data: Bytes = data.into();
        ProxyBody {
            kind: Kind::Local {
                data: (!data.is_empty()).then_some(data),
            },
            log,
        }
    }

    /// A static file's bytes, read as the client takes them.
    pub(crate) fn file(file: Box<FileBody>, log: Option<Box<AccessRecord>>) -> Self {
        ProxyBody {
            kind: Kind::File(file),
            log,
        }
    }

    /// Holds `lease` until a streamed body ends; a local body has ended.
    pub(crate) fn hold(&mut self, lease: Lease) {
        if let Kind::Upstream(streaming) = &mut self.kind {
            *streaming.as_mut().project().lease = Some(lease);
        }
    }

    /// Sends `data`, read ahead of the client, before the rest of a
    /// streamed body.
    pub(crate) fn after(mut self, data: Bytes) -> Self {
        if let Kind::Upstream(streaming) = &mut self.kind {
            *streaming.as_mut().project().ahead = (!data.is_empty()).then_some(data);
        }
        self
    }

    pub fn empty() -> Self {
        Self::local(Bytes::new(), None)
    }

    pub fn set_log(&mut self, log: Option<Box<AccessRecord>>) {
        self.log = log;
    }

    /// The body replaced by `data` (an error page); the access record stays.
    pub(crate) fn replace(&mut self, data: Bytes) {
        self.kind = Kind::Local {
            data: (!data.is_empty()).then_some(data),
        };
    }

    /// This body inside the one `wrap` makes of it (a compressor); the
    /// access record stays outside, and counts the bytes sent.
    pub(crate) fn wrap<W>(self, wrap: impl FnOnce(ProxyBody) -> W) -> ProxyBody
    where
        W: Body<Data = Bytes, Error = BoxError> + Send + 'static,
    {
        let ProxyBody { kind, log } = self;
        let inner = ProxyBody { kind, log: None };
        ProxyBody {
            kind: Kind::Wrapped(Box::pin(wrap(inner))),
            log,
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = match &mut this.kind {
            Kind::Local { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Kind::File(file) => Poll::Ready(match file.next_chunk() {
                Some(Ok(chunk)) => Some(Ok(Frame::data(chunk))),
                Some(Err(e)) => Some(Err(e.into())),
                None => None,
            }),
            Kind::Wrapped(body) => body.as_mut().poll_frame(cx),
            Kind::Upstream(streaming) => {
                let StreamingProj {
                    mut body,
                    mut idle,
                    timeout,
                    ahead,
                    ..
                } = streaming.as_mut().project();
                match ahead.take() {
                    Some(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
                    None => match body.as_mut().poll_frame(cx) {
                        Poll::Ready(Some(Ok(frame))) => {
                            idle.as_mut().reset(Instant::now() + *timeout);
                            Poll::Ready(Some(Ok(frame)))
                        }
                        Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
                        Poll::Ready(None) => Poll::Ready(None),
                        Poll::Pending => match idle.poll(cx) {
                            Poll::Ready(()) => Poll::Ready(Some(Err(BodyReadTimeout(*timeout).into()))),
                            Poll::Pending => Poll::Pending,
                        },
                    },
                }
            }
        };
        if let (Poll::Ready(Some(Ok(frame))), Some(log)) = (&polled, this.log.as_mut()) {
            if let Some(data) = frame.data_ref() {
                log.bytes += data.len() as u64;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Upstream(streaming) => streaming.ahead.is_none() && streaming.body.is_end_stream(),
            Kind::Local { data } => data.is_none(),
            Kind::File(file) => file.remaining() == 0,
            Kind::Wrapped(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Upstream(streaming) => {
                let ahead = streaming.ahead.as_ref().map_or(0, |d| d.len() as u64);
                let hint = streaming.body.size_hint();
                let mut out = SizeHint::new();
                out.set_lower(hint.lower() + ahead);
                if let Some(upper) = hint.upper() {
                    out.set_upper(upper + ahead);
                }
                out
            }
            Kind::Local { data } => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Kind::File(file) => SizeHint::with_exact(file.remaining()),
            Kind::Wrapped(body) => body.size_hint(),
        }
    }
}
