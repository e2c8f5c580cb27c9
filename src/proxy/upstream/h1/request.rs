//! Writing a request to an upstream: how its body is framed, and the bytes
//! of its head and of each body frame.
//!
//! The head goes out as the proxy built it: origin-form target, HTTP/1.1,
//! field names in lower case as `http` keeps them. Only the framing field
//! is added when the request has none: a body of known length gets its
//! `Content-Length`, any other body is sent chunked.

use bytes::{BufMut, Bytes};
use http::header::{self, HeaderMap, HeaderValue};
use http::{request, Method};
use http_body::{Body, Frame};

use crate::proxy::request_body::RequestBody;

static CHUNKED: HeaderValue = HeaderValue::from_static("chunked");

/// How the request body travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// There is none.
    Empty,
    /// As it is: the head says how long it is.
    Length,
    Chunked,
}

/// Decides the body's framing and adds the field that announces it, unless
/// the request carries one already (a client's `Content-Length`, which the
/// server side has checked).
pub fn frame_body(parts: &mut request::Parts, body: &RequestBody) -> BodyFraming {
    let ended = body.is_end_stream();
    if parts.headers.contains_key(header::CONTENT_LENGTH) {
        return if ended {
            BodyFraming::Empty
        } else {
            BodyFraming::Length
        };
    }
    match body.size_hint().exact() {
        Some(0) if ended => {
            // An empty POST still says so: some servers answer 411 to a
            // POST without a length.
            if matches!(parts.method, Method::POST | Method::PUT | Method::PATCH) {
                parts
                    .headers
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
            }
            BodyFraming::Empty
        }
        Some(n) => {
            parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
            BodyFraming::Length
        }
        None => {
            parts.headers.insert(header::TRANSFER_ENCODING, CHUNKED.clone());
            BodyFraming::Chunked
        }
    }
}

/// The request line and fields, ending with the empty line.
pub fn encode_head(parts: &request::Parts) -> Bytes {
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut out = Vec::with_capacity(256 + parts.headers.len() * 32);
    out.put_slice(parts.method.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(if target.is_empty() {
        b"/"
    } else {
        target.as_bytes()
    });
    out.put_slice(b" HTTP/1.1\r\n");
    put_fields(&mut out, &parts.headers);
    out.into()
}

/// `name: value` lines, then the empty line that ends them.
fn put_fields(out: &mut Vec<u8>, fields: &HeaderMap) {
    for (name, value) in fields {
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"\r\n");
}

/// Queues the bytes that carry `frame`: the data as it is, in a chunk, or
/// as the trailers that end a chunked body. Trailers of a body that is not
/// chunked have no way to travel and are dropped.
pub fn encode_frame(framing: BodyFraming, frame: Frame<Bytes>, out: &mut impl Extend<Bytes>) {
    match frame.into_data() {
        Ok(data) if data.is_empty() => {}
        Ok(data) if framing == BodyFraming::Chunked => {
            out.extend([chunk_size(data.len()), data, Bytes::from_static(b"\r\n")]);
        }
        Ok(data) => out.extend([data]),
        Err(frame) => {
            if let (BodyFraming::Chunked, Ok(trailers)) = (framing, frame.into_trailers()) {
                let mut end = b"0\r\n".to_vec();
                put_fields(&mut end, &trailers);
                out.extend([Bytes::from(end)]);
            }
        }
    }
}

/// The last chunk of a chunked body that had no trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

fn chunk_size(len: usize) -> Bytes {
    Bytes::from(format!("{len:x}\r\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    #[test]
    fn the_head_is_the_request_line_and_fields() {
        let req = Request::post("http://ignored/a/b?c=d")
            .header("host", "app")
            .header("x-two", "1")
            .header("x-two", "2")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        assert_eq!(
            &encode_head(&parts)[..],
            b"POST /a/b?c=d HTTP/1.1\r\nhost: app\r\nx-two: 1\r\nx-two: 2\r\n\r\n"
        );
    }

    #[test]
    fn chunks_and_trailers_are_framed() {
        let mut out: Vec<Bytes> = Vec::new();
        encode_frame(
            BodyFraming::Chunked,
            Frame::data(Bytes::from_static(b"0123456789abcdefXY")),
            &mut out,
        );
        encode_frame(BodyFraming::Chunked, Frame::data(Bytes::new()), &mut out);
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-sum", HeaderValue::from_static("7"));
        encode_frame(BodyFraming::Chunked, Frame::trailers(trailers.clone()), &mut out);
        let wire: Vec<u8> = out.concat();
        assert_eq!(wire, b"12\r\n0123456789abcdefXY\r\n0\r\nx-sum: 7\r\n\r\n");

        let mut out: Vec<Bytes> = Vec::new();
        encode_frame(
            BodyFraming::Length,
            Frame::data(Bytes::from_static(b"abc")),
            &mut out,
        );
        encode_frame(BodyFraming::Length, Frame::trailers(trailers), &mut out);
        assert_eq!(out.concat(), b"abc");
    }
}
