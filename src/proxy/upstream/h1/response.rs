//! Reading an upstream's response head: the status line and fields, parsed
//! with httparse out of the read buffer, and how the body that follows is
//! framed (RFC 9112 section 6.3). Interim responses (1xx other than 101)
//! are read and dropped here, so the caller only ever sees the final one.
//!
//! Field values are slices of the buffer, not copies.

use std::mem::MaybeUninit;

use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{response, Response, StatusCode, Version};

/// The most fields a response head may carry.
const MAX_FIELDS: usize = 100;

/// How the body after a head is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: a response to HEAD, 204, 304.
    Empty,
    Length(u64),
    Chunked,
    /// Until the upstream closes the connection.
    UntilClose,
    /// 101: the connection now carries another protocol.
    Upgrade,
}

/// A final response head.
#[derive(Debug)]
pub struct Head {
    pub parts: response::Parts,
    pub framing: Framing,
    /// The connection may carry another request after this response.
    pub keep_alive: bool,
}

/// Why a response head was refused.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error("upstream sent a malformed response head: {0}")]
    Malformed(&'static str),
    #[error("upstream sent a response head over {0} bytes")]
    TooLarge(usize),
}

/// Parses the final response head at the front of `buf`, consuming it and
/// any interim responses before it; `None` while the head is incomplete.
/// `head_request` says whether the request was HEAD, whose response has no
/// body whatever its fields say.
pub fn parse(buf: &mut BytesMut, head_request: bool) -> Result<Option<Head>, HeadError> {
    loop {
        let Some(parts) = parse_one(buf)? else {
            return Ok(None);
        };
        let status = parts.status;
        if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
            continue;
        }
        return Ok(Some(frame(parts, head_request)?));
    }
}

/// Whether `buf` may hold a whole head, given that its first `scanned`
/// bytes held none: a head ends in an empty line (CRLF CRLF, or the bare
/// LF LF that parsers accept), which is looked for only where the new
/// bytes could have completed it.
pub fn may_have_ended(buf: &[u8], scanned: usize) -> bool {
    let from = scanned.saturating_sub(3);
    buf.get(from..).is_some_and(|new| {
        memchr::memmem::find(new, b"\n\r\n").is_some() || memchr::memmem::find(new, b"\n\n").is_some()
    })
}

fn parse_one(buf: &mut BytesMut) -> Result<Option<response::Parts>, HeadError> {
    // Left uninitialised: zeroing 100 fields costs more than parsing a
    // typical head.
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
    let mut res = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut res,
        buf,
        &mut fields,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::Malformed("too many header fields")),
        Err(_) => return Err(HeadError::Malformed("not a valid HTTP/1.x response head")),
    };
    let version = match res.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let status = res
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or(HeadError::Malformed("bad status code"))?;
    // Where each field lies in `buf`, so that the values can be slices of
    // the frozen head rather than copies.
    let base = buf.as_ptr() as usize;
    let mut spans = Vec::with_capacity(res.headers.len());
    for field in res.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| HeadError::Malformed("bad header field name"))?;
        let start = field.value.as_ptr() as usize - base;
        spans.push((name, start, start + field.value.len()));
    }
    let head = buf.split_to(len).freeze();
    // One spare slot: a map filled to its capacity grows (rehashing every
    // entry) on the next insert or `entry`, even one that replaces, and
    // the HTTP/2 server side looks up Content-Length with `entry`.
    let mut headers = HeaderMap::with_capacity(spans.len() + 1);
    for (name, start, end) in spans {
        // A slice of the head, not a copy. httparse already admits only the
        // bytes a HeaderValue may hold; the check stays, as the last guard
        // before the client's wire.
        headers.append(
            name,
            HeaderValue::from_maybe_shared(head.slice(start..end))
                .map_err(|_| HeadError::Malformed("bad header field value"))?,
        );
    }
    let (mut parts, ()) = Response::new(()).into_parts();
    parts.status = status;
    parts.version = version;
    parts.headers = headers;
    Ok(Some(parts))
}

fn frame(parts: response::Parts, head_request: bool) -> Result<Head, HeadError> {
    let status = parts.status;
    let headers = &parts.headers;
    let mut keep_alive = match parts.version {
        Version::HTTP_10 => connection_has(headers, "keep-alive"),
        _ => !connection_has(headers, "close"),
    };
    let framing = if status == StatusCode::SWITCHING_PROTOCOLS {
        keep_alive = false;
        Framing::Upgrade
    } else if head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        Framing::Empty
    } else if headers.contains_key(header::TRANSFER_ENCODING) {
        // With a Content-Length as well, the response is refused further
        // on; the connection is never used again either way.
        if headers.contains_key(header::CONTENT_LENGTH) {
            keep_alive = false;
        }
        if final_coding_is_chunked(headers) {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else if headers.contains_key(header::CONTENT_LENGTH) {
        Framing::Length(content_length(headers)?)
    } else {
        Framing::UntilClose
    };
    if framing == Framing::UntilClose {
        keep_alive = false;
    }
    Ok(Head {
        parts,
        framing,
        keep_alive,
    })
}

fn tokens<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a [u8]> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    tokens(headers, &header::CONNECTION).any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
}

fn final_coding_is_chunked(headers: &HeaderMap) -> bool {
    tokens(headers, &header::TRANSFER_ENCODING)
        .filter(|t| !t.is_empty())
        .last()
        .is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"))
}

/// The length every Content-Length value agrees on (`5`, `5, 5` and two
/// fields of `5` are all 5); anything else is refused.
fn content_length(headers: &HeaderMap) -> Result<u64, HeadError> {
    let mut agreed = None;
    for t in tokens(headers, &header::CONTENT_LENGTH) {
        if t.is_empty() || t.len() > 19 || !t.iter().all(u8::is_ascii_digit) {
            return Err(HeadError::Malformed("bad Content-Length"));
        }
        let n = t.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        if agreed.is_some_and(|a| a != n) {
            return Err(HeadError::Malformed("conflicting Content-Length values"));
        }
        agreed = Some(n);
    }
    agreed.ok_or(HeadError::Malformed("bad Content-Length"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(wire: &[u8], head_request: bool) -> (Head, Vec<u8>) {
        let mut buf = BytesMut::from(wire);
        let head = parse(&mut buf, head_request).unwrap().expect("a complete head");
        (head, buf.to_vec())
    }

    #[test]
    fn the_framing_follows_the_status_method_and_fields() {
        let cases: [(&[u8], bool, Framing, bool); 9] = [
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n",
                false,
                Framing::Length(5),
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
                false,
                Framing::Length(5),
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, Chunked\r\n\r\n",
                false,
                Framing::Chunked,
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n",
                false,
                Framing::UntilClose,
                false,
            ),
            (b"HTTP/1.1 200 OK\r\n\r\n", false, Framing::UntilClose, false),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n",
                true,
                Framing::Empty,
                true,
            ),
            (
                b"HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\n\r\n",
                false,
                Framing::Empty,
                true,
            ),
            (
                b"HTTP/1.0 200 OK\r\ncontent-length: 5\r\n\r\n",
                false,
                Framing::Length(5),
                false,
            ),
            (
                b"HTTP/1.1 101 Switching\r\nupgrade: websocket\r\n\r\n",
                false,
                Framing::Upgrade,
                false,
            ),
        ];
        for (wire, head_request, framing, keep_alive) in cases {
            let (head, _) = parsed(wire, head_request);
            let text = String::from_utf8_lossy(wire);
            assert_eq!(head.framing, framing, "{text}");
            assert_eq!(head.keep_alive, keep_alive, "{text}");
        }
        let (head, _) = parsed(
            b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\ncontent-length: 1\r\n\r\n",
            false,
        );
        assert!(head.keep_alive);
        let (head, _) = parsed(
            b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\n",
            false,
        );
        assert!(!head.keep_alive);
    }

    #[test]
    fn interim_responses_are_skipped_and_the_body_is_left() {
        let (head, rest) = parsed(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nx-a: 1\r\nx-a: 2\r\ncontent-length: 2\r\n\r\nok",
            false,
        );
        assert_eq!(head.parts.status, 201);
        assert!(head.parts.headers.get("link").is_none());
        assert_eq!(head.parts.headers.get_all("x-a").iter().count(), 2);
        assert_eq!(rest, b"ok");
    }

    #[test]
    fn a_head_end_is_found_wherever_the_reads_split_it() {
        let wire = b"HTTP/1.1 200 OK\r\nx: y\r\n\r\n";
        for cut in 1..wire.len() {
            let mut scanned = 0;
            for end in [cut, wire.len()] {
                let seen = may_have_ended(&wire[..end], scanned);
                assert_eq!(seen, end == wire.len(), "cut at {cut}, {end} bytes");
                scanned = end;
            }
        }
        assert!(may_have_ended(b"HTTP/1.0 200 OK\nx: y\n\n", 10));
    }

    #[test]
    fn incomplete_heads_wait_and_broken_ones_are_refused() {
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\ncontent-le"[..]);
        assert!(parse(&mut buf, false).unwrap().is_none());
        assert_eq!(buf.len(), 27, "nothing is consumed from a partial head");
        for wire in [
            &b"HTTP/1.1 2x0 OK\r\n\r\n"[..],
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nx: a\x01b\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nx: a\r\n folded\r\n\r\n",
        ] {
            let mut buf = BytesMut::from(wire);
            assert!(
                parse(&mut buf, false).is_err(),
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    /// The HTTP/2 server side looks Content-Length up with `entry`, which
    /// grows a full map even when the field is there: a parsed head leaves
    /// a slot free, whatever the number of its fields.
    #[test]
    fn a_parsed_head_has_room_for_one_more_field() {
        for fields in 0..40 {
            let mut wire = b"HTTP/1.1 200 OK\r\n".to_vec();
            for i in 0..fields {
                wire.extend_from_slice(format!("x-field-{i}: v\r\n").as_bytes());
            }
            wire.extend_from_slice(b"\r\n");
            let (head, _) = parsed(&wire, false);
            let headers = &head.parts.headers;
            assert_eq!(headers.len(), fields);
            assert!(headers.capacity() > headers.len(), "{fields} fields fill the map");
        }
    }
}
