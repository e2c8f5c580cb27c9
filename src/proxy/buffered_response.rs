//! `response_buffering`: up to the route's size of a response is read
//! before its head is sent. A response that ends within it is answered
//! from memory with its length, and its upstream connection goes back to
//! the pool (and its server's count of requests in flight drops) at once,
//! however slowly the client reads. A larger one streams on after what
//! was read, so memory stays bounded by the size. Server-sent events and
//! responses with `X-Accel-Buffering: no` are never buffered; the header,
//! meant for the proxy, is never passed on (as nginx does).

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderName};
use http_body::Body as _;
use http_body_util::BodyExt as _;

use super::refusal::Refusal;
use super::upstream::h1::body::UpstreamBody;

pub(crate) static X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");

/// Whether a response with `headers` may be buffered; removes
/// `X-Accel-Buffering` either way.
pub(crate) fn allowed(headers: &mut HeaderMap) -> bool {
    let refused = match headers.remove(&X_ACCEL_BUFFERING) {
        Some(value) => value.as_bytes().eq_ignore_ascii_case(b"no"),
        None => false,
    };
    // Each event must reach the client when it is sent.
    let events = headers.get(header::CONTENT_TYPE).is_some_and(|v| {
        let media = v.as_bytes().split(|&b| b == b';').next().unwrap_or_default();
        media.trim_ascii().eq_ignore_ascii_case(b"text/event-stream")
    });
    !refused && !events
}

/// What was read of a body.
pub(crate) enum Ahead {
    /// The whole body: its upstream connection has gone home.
    Whole(Bytes),
    /// The first `limit` bytes or more; the rest is still to be read.
    Part(Bytes),
}

/// Reads `body` until it ends or `limit` bytes are in, each piece within
/// `timeout`. Trailers are dropped: the answer is sent with its length.
pub(crate) async fn read_ahead(
    body: &mut UpstreamBody,
    limit: u64,
    timeout: std::time::Duration,
) -> Result<Ahead, Refusal> {
    let expected = body.size_hint().exact().unwrap_or(0).min(limit);
    let mut held = BytesMut::with_capacity(usize::try_from(expected).unwrap_or(0));
    while (held.len() as u64) < limit {
        match tokio::time::timeout(timeout, body.frame()).await {
            Err(_) => return Err(Refusal::BodyStalled { timeout }),
            Ok(None) => return Ok(Ahead::Whole(held.freeze())),
            Ok(Some(Err(e))) => return Err(Refusal::BodyFailed(e)),
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    held.extend_from_slice(data);
                }
            }
        }
    }
    // The buffer is full: a body that has ended since is still whole.
    if body.is_end_stream() {
        return Ok(Ahead::Whole(held.freeze()));
    }
    Ok(Ahead::Part(held.freeze()))
}
