//! The request body sent upstream: the client's body passed on as it
//! streams, and, when there is one, a signal when it has been sent in
//! full. The route's `read_timeout` counts from that moment, so a long
//! upload is never mistaken for a silent upstream.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tokio::sync::oneshot;

pin_project! {
    pub struct RequestBody {
        #[pin]
        inner: Incoming,
        // Fired (by send or drop) when the body is done; `None` for a body
        // that was empty from the start, whose timer starts at once.
        done: Option<oneshot::Sender<()>>,
    }
}

impl RequestBody {
    /// Wraps `inner`; the receiver resolves once the body has been sent,
    /// or at once when there is no body.
    pub fn new(inner: Incoming) -> (Self, Option<oneshot::Receiver<()>>) {
        if inner.is_end_stream() {
            return (RequestBody { inner, done: None }, None);
        }
        let (tx, rx) = oneshot::channel();
        (
            RequestBody {
                inner,
                done: Some(tx),
            },
            Some(rx),
        )
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            if let Some(done) = this.done.take() {
                let _ = done.send(());
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
