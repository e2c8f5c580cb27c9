//! Decoding a chunked response body (RFC 9112 section 7.1) from the bytes
//! read so far, without copying the chunk data: each step hands out a slice
//! of the read buffer.
//!
//! Strict where leniency would let two parsers disagree on where the body
//! ends: a chunk size is 1 to 16 hex digits, every line ends in CRLF, and a
//! chunk's data must be followed by CRLF. Extensions are skipped; trailers
//! are parsed and handed on.

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

/// The longest chunk-size line read (size, extensions and CRLF).
const MAX_LINE: usize = 4096;
/// The largest trailer section read.
const MAX_TRAILERS: usize = 16 * 1024;
/// The most trailer fields read.
const MAX_TRAILER_FIELDS: usize = 32;

/// What one step of decoding gave.
#[derive(Debug, PartialEq)]
pub enum Step {
    Data(Bytes),
    Trailers(HeaderMap),
    /// The body is over; bytes after it were left in the buffer.
    End,
    /// More bytes must be read before anything can be decoded.
    NeedMore,
}

/// The upstream broke the chunked framing.
#[derive(Debug, thiserror::Error)]
#[error("upstream sent a malformed chunked body: {0}")]
pub struct ChunkError(&'static str);

#[derive(Debug, Default)]
pub struct Chunked {
    state: State,
}

#[derive(Debug, Default, Clone, Copy)]
enum State {
    #[default]
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

impl Chunked {
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Decodes what it can from the front of `buf`, consuming it.
    pub fn step(&mut self, buf: &mut BytesMut) -> Result<Step, ChunkError> {
        loop {
            match self.state {
                State::Size => {
                    let Some(lf) = memchr::memchr(b'\n', buf) else {
                        return need_more(buf.len(), MAX_LINE, "chunk-size line too long");
                    };
                    let size = parse_size_line(&buf[..=lf])?;
                    buf.advance(lf + 1);
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    let n = (buf.len() as u64).min(left) as usize;
                    let data = buf.split_to(n).freeze();
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                    return Ok(Step::Data(data));
                }
                State::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Step::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(ChunkError("chunk data not followed by CRLF"));
                    }
                    buf.advance(2);
                    self.state = State::Size;
                }
                State::Trailers => {
                    if buf.len() < 2 {
                        return Ok(Step::NeedMore);
                    }
                    if &buf[..2] == b"\r\n" {
                        buf.advance(2);
                        self.state = State::Done;
                        return Ok(Step::End);
                    }
                    let Some(end) = memchr::memmem::find(buf, b"\r\n\r\n") else {
                        return need_more(buf.len(), MAX_TRAILERS, "trailer section too large");
                    };
                    let trailers = parse_trailers(&buf[..end + 4])?;
                    buf.advance(end + 4);
                    self.state = State::Done;
                    return Ok(Step::Trailers(trailers));
                }
                State::Done => return Ok(Step::End),
            }
        }
    }
}

fn need_more(have: usize, limit: usize, what: &'static str) -> Result<Step, ChunkError> {
    if have >= limit {
        Err(ChunkError(what))
    } else {
        Ok(Step::NeedMore)
    }
}

/// The size from `HEXDIG+ [ws] [; extensions] CRLF`.
fn parse_size_line(line: &[u8]) -> Result<u64, ChunkError> {
    let Some(line) = line.strip_suffix(b"\r\n") else {
        return Err(ChunkError("chunk-size line not ended by CRLF"));
    };
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(ChunkError("chunk size is not a hex number"));
    }
    if digits > 16 {
        return Err(ChunkError("chunk size too large"));
    }
    let mut size = 0u64;
    for &b in &line[..digits] {
        // Every byte is a hex digit, and 16 of them fit in a u64.
        size = (size << 4) | u64::from(hex_value(b));
    }
    let rest = &line[digits..];
    let after_ws = rest
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(rest.len());
    match rest.get(after_ws) {
        None => Ok(size),
        Some(b';') if !rest.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) => Ok(size),
        Some(_) => Err(ChunkError("unexpected bytes after the chunk size")),
    }
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

fn parse_trailers(section: &[u8]) -> Result<HeaderMap, ChunkError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_TRAILER_FIELDS];
    let parsed = match httparse::parse_headers(section, &mut fields) {
        Ok(httparse::Status::Complete((_, parsed))) => parsed,
        Ok(httparse::Status::Partial) | Err(_) => return Err(ChunkError("malformed trailer section")),
    };
    let mut map = HeaderMap::with_capacity(parsed.len());
    for field in parsed {
        let name =
            HeaderName::from_bytes(field.name.as_bytes()).map_err(|_| ChunkError("bad trailer name"))?;
        let value = HeaderValue::from_bytes(field.value).map_err(|_| ChunkError("bad trailer value"))?;
        map.append(name, value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The data, the trailers, and what was left after the end.
    type Decoded = (Vec<u8>, Option<HeaderMap>, Vec<u8>);

    /// Decodes `wire` fed in pieces of `piece` bytes.
    fn decode(wire: &[u8], piece: usize) -> Result<Decoded, ChunkError> {
        let mut dec = Chunked::default();
        let mut buf = BytesMut::new();
        let mut fed = 0;
        let (mut data, mut trailers) = (Vec::new(), None);
        loop {
            match dec.step(&mut buf)? {
                Step::Data(d) => data.extend_from_slice(&d),
                Step::Trailers(t) => trailers = Some(t),
                Step::End => return Ok((data, trailers, [&buf[..], &wire[fed..]].concat())),
                Step::NeedMore => {
                    if fed == wire.len() {
                        return Err(ChunkError("test: input ran out"));
                    }
                    let n = piece.min(wire.len() - fed);
                    buf.extend_from_slice(&wire[fed..fed + n]);
                    fed += n;
                }
            }
        }
    }

    #[test]
    fn chunks_extensions_and_trailers_decode_whatever_the_read_sizes() {
        let wire = b"5\r\nhello\r\n1a;name=\"v\"\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-sum: 42\r\n\r\nNEXT";
        for piece in [1, 2, 3, 7, 100] {
            let (data, trailers, rest) = decode(wire, piece).unwrap();
            assert_eq!(data, b"helloabcdefghijklmnopqrstuvwxyz", "piece {piece}");
            assert_eq!(trailers.unwrap()["x-sum"], "42");
            assert_eq!(rest, b"NEXT");
        }
        let (data, trailers, rest) = decode(b"A\r\n0123456789\r\n0\r\n\r\n", 4).unwrap();
        assert_eq!(
            (data.as_slice(), trailers, rest.len()),
            (&b"0123456789"[..], None, 0)
        );
    }

    #[test]
    fn broken_framing_is_an_error_not_a_guess() {
        for wire in [
            &b"zz\r\nhello\r\n0\r\n\r\n"[..],
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"5 x\r\nhello\r\n0\r\n\r\n",
            b"-5\r\nhello\r\n0\r\n\r\n",
            b"10000000000000000\r\n",
            b"0\r\nbad trailer\r\n\r\n",
        ] {
            assert!(
                decode(wire, 3).is_err(),
                "{:?} decoded",
                String::from_utf8_lossy(wire)
            );
        }
        let mut endless = BytesMut::from(&[b'1'; MAX_LINE][..]);
        assert!(Chunked::default().step(&mut endless).is_err());
    }
}
