//! A response body compressed as it streams. Each frame from the inner body
//! goes through the encoder and what the encoder gives out leaves at once;
//! whenever the inner body has nothing ready, the encoder is flushed, so a
//! server-sent event, or any byte an application sent before pausing,
//! reaches the client compressed but never held back. Memory is the
//! encoder's window and one frame, whatever the body's length.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::encoder::Encoder;
use crate::proxy::body::BoxError;

/// The most input an encoder takes between two flushes.
const FLUSH_EVERY: usize = 1024 * 1024;

pin_project! {
    /// `inner`, compressed by `encoder`.
    pub(crate) struct Compressed<B> {
        #[pin]
        inner: B,
        // `None` once the stream has been finished.
        encoder: Option<Encoder>,
        // Bytes written since the last flush.
        unflushed: usize,
        // The inner body's trailers, sent after the encoder's last bytes.
        trailers: Option<HeaderMap>,
    }
}

impl<B> Compressed<B> {
    pub(crate) fn new(inner: B, encoder: Encoder) -> Self {
        Compressed {
            inner,
            encoder: Some(encoder),
            unflushed: 0,
            trailers: None,
        }
    }
}

impl<B> Body for Compressed<B>
where
    B: Body<Data = Bytes, Error = BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        loop {
            let Some(encoder) = this.encoder.as_mut() else {
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            };
            match this.inner.as_mut().poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        encoder.write(&data)?;
                        *this.unflushed += data.len();
                        // Brotli keeps what a block needs until the block
                        // ends, and left alone makes blocks of up to 16 MiB:
                        // a flush now and then bounds what it holds.
                        if *this.unflushed >= FLUSH_EVERY {
                            encoder.flush()?;
                            *this.unflushed = 0;
                        }
                        let out = encoder.take();
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                    }
                    Err(frame) => {
                        // Trailers end the body: the stream is finished
                        // before them.
                        *this.trailers = frame.into_trailers().ok();
                        if let Some(out) = finish(this.encoder)? {
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                    }
                },
                Poll::Ready(Some(Err(e))) => {
                    *this.encoder = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    if let Some(out) = finish(this.encoder)? {
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                }
                Poll::Pending => {
                    if *this.unflushed == 0 {
                        return Poll::Pending;
                    }
                    // Nothing more is ready: what came so far goes out now
                    // rather than waiting for more to fill a block.
                    encoder.flush()?;
                    *this.unflushed = 0;
                    let out = encoder.take();
                    if out.is_empty() {
                        return Poll::Pending;
                    }
                    return Poll::Ready(Some(Ok(Frame::data(out))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.encoder.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// Ends the stream; its last bytes, unless there are none.
fn finish(encoder: &mut Option<Encoder>) -> Result<Option<Bytes>, BoxError> {
    let Some(encoder) = encoder.take() else {
        return Ok(None);
    };
    let out = encoder.finish()?;
    Ok((!out.is_empty()).then_some(out))
}
