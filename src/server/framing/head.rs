//! A request head read for its framing, a line at a time, as its bytes
//! arrive.
//!
//! On every head httparse (hyper's parser) accepts, this finds the same
//! end and the same header names and values: the head ends at its first
//! empty line once the empty lines before the request line are skipped, a
//! header's name is what precedes its first colon, and its value is the
//! rest without surrounding spaces and tabs. On a head httparse refuses it
//! may conclude anything, since hyper closes the connection there.
//! `tests::agrees_with_httparse` holds it to that, with the head whole and
//! cut into pieces.
//!
//! Nothing of the head is kept but what the framing needs: a line that a
//! read cuts short keeps its first [`KEEP`] bytes and its last few, so a
//! client trickling a large head costs a few hundred bytes here, whatever
//! the head's size.

/// hyper's limit on the header lines of a request head.
const MAX_HEADERS: usize = 100;

/// The start of a line kept across reads: room for any header name the
/// framing reads and for any value it can use.
const KEEP: usize = 256;

/// The end of a line kept across reads: ` HTTP/1.1` and a CR.
const TAIL: usize = 10;

/// What a complete head says about the message.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    pub both_framings: bool,
    /// hyper would refuse the head (a bad Content-Length, a
    /// Transfer-Encoding that does not end in chunked, or one on HTTP/1.0),
    /// or a framing value is too long to follow.
    pub refused: bool,
    pub upgrade: bool,
    pub body: Body,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Body {
    Length(u64),
    Chunked,
}

pub enum Step {
    /// The head is not complete yet.
    Partial,
    Complete(Head),
    /// hyper refuses it, or it is longer than the limit.
    Invalid,
}

/// A head being read; once complete, the next one.
pub struct HeadReader {
    /// Its bytes so far.
    len: usize,
    /// The request line has been read.
    started: bool,
    headers: usize,
    framing: Framing,
    line: Line,
}

/// The line a read cut short.
#[derive(Default)]
struct Line {
    /// Its first bytes, at most [`KEEP`].
    start: Vec<u8>,
    /// Its length so far.
    len: usize,
    /// Its last bytes, right-aligned: the last `min(len, TAIL)` are valid.
    tail: [u8; TAIL],
}

impl Line {
    fn push(&mut self, bytes: &[u8]) {
        let room = KEEP.saturating_sub(self.start.len()).min(bytes.len());
        self.start.extend_from_slice(&bytes[..room]);
        self.len += bytes.len();
        if bytes.len() >= TAIL {
            self.tail.copy_from_slice(&bytes[bytes.len() - TAIL..]);
        } else {
            self.tail.copy_within(bytes.len().., 0);
            self.tail[TAIL - bytes.len()..].copy_from_slice(bytes);
        }
    }

    fn tail(&self) -> &[u8] {
        &self.tail[TAIL - self.len.min(TAIL)..]
    }
}

impl Default for HeadReader {
    fn default() -> Self {
        Self::new()
    }
}

impl HeadReader {
    pub fn new() -> Self {
        HeadReader {
            len: 0,
            started: false,
            headers: 0,
            framing: Framing::new(false, false),
            line: Line::default(),
        }
    }

    /// Reads on from `bytes`, a head being at most `max_head` bytes long.
    /// Returns how many bytes the head took, and where it stands.
    pub fn feed(&mut self, bytes: &[u8], max_head: usize) -> (usize, Step) {
        let mut at = 0;
        loop {
            let rest = &bytes[at..];
            let Some(end) = memchr::memchr(b'\n', rest) else {
                self.line.push(rest);
                self.len += rest.len();
                let step = if self.len > max_head {
                    Step::Invalid
                } else {
                    Step::Partial
                };
                return (bytes.len(), step);
            };
            at += end + 1;
            self.len += end + 1;
            if self.len > max_head {
                return (at, Step::Invalid);
            }
            let step = if self.line.len == 0 {
                // The whole line is in this read: no copy.
                let line = &rest[..end];
                self.end_line(line, true, &line[line.len().saturating_sub(TAIL)..])
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.push(&rest[..end]);
                let step = self.end_line(&line.start, line.len <= KEEP, line.tail());
                // The buffer is kept for the next cut line; it never grows
                // past KEEP.
                line.start.clear();
                self.line = Line {
                    start: line.start,
                    ..Line::default()
                };
                step
            };
            if let Some(step) = step {
                return (at, step);
            }
        }
    }

    /// Takes in a complete line, without its LF: `start` is all of it when
    /// `whole`, else its first [`KEEP`] bytes; `tail` is its last bytes.
    fn end_line(&mut self, start: &[u8], whole: bool, tail: &[u8]) -> Option<Step> {
        let line = if whole {
            start.strip_suffix(b"\r").unwrap_or(start)
        } else {
            start
        };
        if !self.started {
            // httparse skips empty lines before the request line.
            if whole && line.is_empty() {
                return None;
            }
            self.started = true;
            let tail = tail.strip_suffix(b"\r").unwrap_or(tail);
            let http11 = if tail.ends_with(b" HTTP/1.1") {
                true
            } else if tail.ends_with(b" HTTP/1.0") {
                false
            } else {
                return Some(Step::Invalid);
            };
            self.framing = Framing::new(line.starts_with(b"CONNECT "), http11);
            return None;
        }
        if whole && line.is_empty() {
            // Ready for the next head, keeping the line buffer.
            let framing = std::mem::replace(&mut self.framing, Framing::new(false, false));
            (self.len, self.started, self.headers) = (0, false, 0);
            return Some(Step::Complete(framing.head()));
        }
        self.headers += 1;
        if self.headers > MAX_HEADERS {
            // hyper answers 431.
            return Some(Step::Invalid);
        }
        match memchr::memchr(b':', line) {
            Some(colon) if whole => {
                let value = line[colon + 1..].trim_ascii();
                self.framing.header(&line[..colon], Some(value));
            }
            // A value too long to keep: the name is enough for Upgrade, and
            // a Content-Length or Transfer-Encoding is not followed.
            Some(colon) => self.framing.header(&line[..colon], None),
            None if whole => return Some(Step::Invalid),
            // A name longer than KEEP: none the framing reads.
            None => {}
        }
        None
    }
}

/// The framing facts of a head, gathered header by header by hyper's rules
/// (hyper `proto::h1::role::Server::parse`).
struct Framing {
    http11: bool,
    te: bool,
    chunked: bool,
    cl: bool,
    length: Option<u64>,
    refused: bool,
    upgrade: bool,
}

impl Framing {
    fn new(connect: bool, http11: bool) -> Self {
        Framing {
            http11,
            te: false,
            chunked: false,
            cl: false,
            length: None,
            refused: false,
            upgrade: connect,
        }
    }

    /// One header; `value` is `None` when it was too long to keep.
    fn header(&mut self, name: &[u8], value: Option<&[u8]>) {
        // The length first: most names are ruled out by it alone.
        match name.len() {
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                self.refused |= !self.http11;
                self.te = true;
                self.chunked = value.is_some_and(ends_in_chunked);
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                self.cl = true;
                if self.te {
                    return;
                }
                match (value.and_then(digits), self.length) {
                    (None, _) => self.refused = true,
                    (Some(n), Some(prev)) if n != prev => self.refused = true,
                    (Some(n), _) => self.length = Some(n),
                }
            }
            7 if name.eq_ignore_ascii_case(b"upgrade") => self.upgrade = self.http11,
            _ => {}
        }
    }

    fn head(self) -> Head {
        Head {
            both_framings: self.te && self.cl,
            refused: self.refused || (self.te && !self.chunked),
            upgrade: self.upgrade,
            body: match (self.te, self.length) {
                (true, _) => Body::Chunked,
                (false, Some(n)) => Body::Length(n),
                (false, None) => Body::Length(0),
            },
        }
    }
}

/// hyper's test: the value is visible ASCII and its last comma-separated
/// coding is `chunked`.
fn ends_in_chunked(value: &[u8]) -> bool {
    let visible = value.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b));
    visible
        && value
            .rsplit(|&b| b == b',')
            .next()
            .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

/// A Content-Length as hyper reads it: decimal digits only, no sign, no
/// spaces, no overflow.
fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        let d = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        n.checked_mul(10)?.checked_add(u64::from(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A whole head read at once, or in the pieces given.
    fn read(pieces: &[&[u8]]) -> Option<(usize, Head)> {
        let mut reader = HeadReader::new();
        let mut used = 0;
        for piece in pieces {
            let (n, step) = reader.feed(piece, usize::MAX);
            used += n;
            match step {
                Step::Partial => continue,
                Step::Complete(head) => return Some((used, head)),
                Step::Invalid => return None,
            }
        }
        None
    }

    /// A head as httparse reads it, by hyper's rules: what the reader must
    /// agree with.
    fn oracle(bytes: &[u8]) -> Option<(usize, Head)> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let Ok(httparse::Status::Complete(len)) = req.parse(bytes) else {
            return None;
        };
        let mut framing = Framing::new(req.method == Some("CONNECT"), req.version == Some(1));
        for h in req.headers.iter() {
            framing.header(h.name.as_bytes(), Some(h.value));
        }
        Some((len, framing.head()))
    }

    #[test]
    fn agrees_with_httparse() {
        const PIECES: [&[u8]; 25] = [
            b"GET / HTTP/1.1\r\n",
            b"CONNECT a:1 HTTP/1.1\r\n",
            b"POST /x HTTP/1.0\n",
            b"\r\n",
            b"\n",
            b"\r",
            b"Host: a\r\n",
            b"Content-Length: 12\r\n",
            b"content-length:3 \t\r\n",
            b"Content-Length: 12\n",
            b"CONTENT-LENGTH: 1x\r\n",
            b"Transfer-Encoding: chunked\r\n",
            b"transfer-encoding:\tgzip, Chunked \r\n",
            b"Upgrade: websocket\r\n",
            b"X-Colon: a:b: c\r\n",
            b"Bad Name: x\r\n",
            b"Content-Length : 5\r\n",
            b" folded\r\n",
            b"X: \x01\r\n",
            b"X: caf\xc3\xa9\r\n",
            b"GET",
            b" ",
            b":",
            b"\r\n\r\n",
            b"X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\
              aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\
              aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
        ];
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let mut agreed = 0;
        for _ in 0..200_000 {
            let bytes: Vec<u8> = (0..1 + next(9))
                .flat_map(|_| PIECES[next(PIECES.len())].to_vec())
                .collect();
            let Some(want) = oracle(&bytes) else { continue };
            agreed += 1;
            let text = String::from_utf8_lossy(&bytes);
            assert_eq!(read(&[&bytes]).as_ref(), Some(&want), "whole: {text:?}");
            let (a, b) = (next(bytes.len() + 1), next(bytes.len() + 1));
            let (a, b) = (a.min(b), a.max(b));
            let cut = read(&[&bytes[..a], &bytes[a..b], &bytes[b..]]);
            assert_eq!(cut.as_ref(), Some(&want), "cut at {a} and {b}: {text:?}");
        }
        assert!(agreed > 1_000, "only {agreed} heads were complete and valid");
    }

    #[test]
    fn a_head_trickled_a_byte_at_a_time_is_read_and_not_kept() {
        let head = [
            b"POST /".as_slice(),
            &[b'a'; 5000],
            b" HTTP/1.1\r\nX-Big: ",
            &[b'b'; 5000],
            b"\r\nContent-Length: 7\r\n\r\n",
        ]
        .concat();
        let mut reader = HeadReader::new();
        for (i, byte) in head.chunks(1).enumerate() {
            let (n, step) = reader.feed(byte, 64 * 1024);
            assert_eq!(n, 1);
            assert!(reader.line.start.capacity() <= KEEP, "at byte {i}");
            match step {
                Step::Partial => assert!(i + 1 < head.len()),
                Step::Complete(h) => {
                    assert_eq!(i + 1, head.len());
                    assert_eq!(h.body, Body::Length(7));
                }
                Step::Invalid => panic!("invalid at byte {i}"),
            }
        }
    }

    #[test]
    fn a_framing_value_too_long_to_keep_is_not_followed_but_both_are_still_seen() {
        let spaces = " ".repeat(KEEP);
        let te = format!("POST / HTTP/1.1\r\nTransfer-Encoding: {spaces}chunked\r\n\r\n");
        let (_, head) = read(&[&te.as_bytes()[..20], &te.as_bytes()[20..]]).expect("complete");
        assert!(head.refused && !head.both_framings);
        let both =
            format!("POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: {spaces}chunked\r\n\r\n");
        let (_, head) = read(&[&both.as_bytes()[..40], &both.as_bytes()[40..]]).expect("complete");
        assert!(head.both_framings);
    }

    #[test]
    fn a_head_over_the_limit_is_invalid() {
        let mut reader = HeadReader::new();
        let (_, step) = reader.feed(b"GET /aaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n", 16);
        assert!(matches!(step, Step::Invalid));
        let mut reader = HeadReader::new();
        let (_, step) = reader.feed(b"GET /aaaaaaaaaaaaaaaaaaaa", 16);
        assert!(matches!(step, Step::Invalid));
    }
}
