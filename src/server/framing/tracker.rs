//! Where each HTTP/1.1 request begins in the bytes a client sends, and
//! which heads declare both Content-Length and Transfer-Encoding.
//!
//! hyper reads such a request by its Transfer-Encoding and removes the
//! Content-Length before the proxy sees the head, so the proxy cannot tell
//! it from a plain chunked request. This tracker reads the same bytes the
//! way hyper does: a head is parsed with the same parser and the same
//! limits, its body is followed by the same framing rules (a fixed length,
//! or hyper's chunked decoder, byte for byte), and the next head starts
//! where hyper's would. Where hyper refuses the input it closes the
//! connection, so whatever the tracker concludes past that point is never
//! asked for; where hyper accepts it, the two agree on every boundary, so
//! a body that happens to contain header-like lines is never mistaken for
//! a head.
//!
//! Following stops for good after a head that asks for an upgrade (what
//! follows may be another protocol) and after a head with both framings
//! (the connection closes after its answer).

/// hyper's limit on the header lines of a request head.
const MAX_HEADERS: usize = 100;

pub struct Tracker {
    state: State,
    /// The start of a head that a read cut short.
    partial: Vec<u8>,
    /// `max_header_size`: hyper refuses a longer head, so the tracker
    /// stops following rather than buffer more.
    max_head: usize,
    /// The index the next head gets: 0 for the connection's first request.
    heads: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At a message start, or inside a head (`partial` holds it so far).
    Head,
    /// Inside a body of known length: the bytes left.
    Length(u64),
    Chunked(Chunk),
    /// No longer following (see the module documentation).
    Off,
}

/// hyper's chunked decoder states, carrying the chunk size where it is
/// being read or consumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    Start,
    Size(u64),
    SizeLws(u64),
    Extension(u64),
    SizeLf(u64),
    Data(u64),
    DataCr,
    DataLf,
    Trailer,
    TrailerLf,
    EndCr,
    EndLf,
}

/// What a complete head says about the message.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    both_framings: bool,
    /// hyper would refuse the head: a bad Content-Length, a
    /// Transfer-Encoding that does not end in chunked, or one on HTTP/1.0.
    refused: bool,
    upgrade: bool,
    body: Body,
}

#[derive(Debug, PartialEq, Eq)]
enum Body {
    Length(u64),
    Chunked,
}

enum Parsed {
    Complete(usize, Head),
    Partial,
    Invalid,
}

impl Tracker {
    pub fn new(max_head: usize) -> Self {
        Tracker {
            state: State::Head,
            partial: Vec::new(),
            max_head,
            heads: 0,
        }
    }

    /// True once nothing more will be followed; reads need not be fed.
    pub fn is_off(&self) -> bool {
        self.state == State::Off
    }

    /// Follows `bytes`, the next bytes the client sent. Returns the index
    /// of a request (0 for the first on the connection) whose head these
    /// bytes completed and which declares both framings.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Option<u64> {
        let mut both = None;
        while !bytes.is_empty() {
            let used = match self.state {
                State::Off => break,
                State::Head => self.head(bytes, &mut both),
                State::Length(left) => {
                    let n = left.min(bytes.len() as u64);
                    self.state = if n == left {
                        State::Head
                    } else {
                        State::Length(left - n)
                    };
                    n as usize
                }
                State::Chunked(chunk) => self.chunked(chunk, bytes),
            };
            bytes = bytes.get(used..).unwrap_or_default();
        }
        both
    }

    fn off(&mut self) {
        self.state = State::Off;
        self.partial = Vec::new();
    }

    /// Reads from a message start; returns how many bytes the head took.
    fn head(&mut self, bytes: &[u8], both: &mut Option<u64>) -> usize {
        if self.partial.is_empty() {
            return match parse(bytes) {
                Parsed::Complete(len, head) => {
                    self.begin(head, both);
                    len
                }
                Parsed::Partial if bytes.len() <= self.max_head => {
                    self.partial.extend_from_slice(bytes);
                    bytes.len()
                }
                Parsed::Partial | Parsed::Invalid => {
                    self.off();
                    bytes.len()
                }
            };
        }
        let before = self.partial.len();
        let take = bytes.len().min(self.max_head.saturating_sub(before));
        self.partial.extend_from_slice(&bytes[..take]);
        // As hyper does: the head is parsed again only once the new bytes
        // may have ended it, so a client sending a byte at a time does not
        // make each byte cost the whole head.
        let parsed = if may_end_head(&self.partial, before) {
            parse(&self.partial)
        } else {
            Parsed::Partial
        };
        match parsed {
            Parsed::Complete(len, head) => {
                self.partial = Vec::new();
                self.begin(head, both);
                len.saturating_sub(before)
            }
            Parsed::Partial if take == bytes.len() && take > 0 => take,
            Parsed::Partial | Parsed::Invalid => {
                self.off();
                bytes.len()
            }
        }
    }

    /// Moves past a complete head, into its body.
    fn begin(&mut self, head: Head, both: &mut Option<u64>) {
        let index = self.heads;
        self.heads += 1;
        if head.both_framings {
            both.get_or_insert(index);
            self.off();
        } else if head.refused || head.upgrade {
            self.off();
        } else {
            self.state = match head.body {
                Body::Length(0) => State::Head,
                Body::Length(n) => State::Length(n),
                Body::Chunked => State::Chunked(Chunk::Start),
            };
        }
    }

    /// Reads through a chunked body; returns how many bytes it took.
    fn chunked(&mut self, mut chunk: Chunk, bytes: &[u8]) -> usize {
        let mut at = 0;
        while at < bytes.len() {
            if let Chunk::Data(left) = chunk {
                let n = left.min((bytes.len() - at) as u64);
                at += n as usize;
                chunk = if n == left {
                    Chunk::DataCr
                } else {
                    Chunk::Data(left - n)
                };
                continue;
            }
            let byte = bytes[at];
            at += 1;
            match step(chunk, byte) {
                Step::Next(next) => chunk = next,
                Step::End => {
                    self.state = State::Head;
                    return at;
                }
                Step::Refused => {
                    self.off();
                    return bytes.len();
                }
            }
        }
        self.state = State::Chunked(chunk);
        at
    }
}

enum Step {
    Next(Chunk),
    End,
    Refused,
}

/// One byte through hyper's chunked decoder (hyper `proto::h1::decode`).
/// Its limits on extension and trailer bytes end the connection when
/// crossed, so they need no counterpart here.
fn step(chunk: Chunk, byte: u8) -> Step {
    use Chunk::*;
    if let (Start | Size(_), Some(digit)) = (chunk, hex(byte)) {
        let n = if let Size(n) = chunk { n } else { 0 };
        return match n.checked_mul(16).and_then(|n| n.checked_add(u64::from(digit))) {
            Some(n) => Step::Next(Size(n)),
            None => Step::Refused,
        };
    }
    let next = match (chunk, byte) {
        (Size(n) | SizeLws(n), b'\t' | b' ') => SizeLws(n),
        (Size(n) | SizeLws(n), b';') => Extension(n),
        (Size(n) | SizeLws(n) | Extension(n), b'\r') => SizeLf(n),
        (Extension(_), b'\n') => return Step::Refused,
        (Extension(n), _) => Extension(n),
        (SizeLf(0), b'\n') => EndCr,
        (SizeLf(n), b'\n') => Data(n),
        (DataCr, b'\r') => DataLf,
        (DataLf, b'\n') => Start,
        (Trailer, b'\r') => TrailerLf,
        (Trailer, _) => Trailer,
        (TrailerLf, b'\n') => EndCr,
        (EndCr, b'\r') => EndLf,
        (EndCr, _) => Trailer,
        (EndLf, b'\n') => return Step::End,
        _ => return Step::Refused,
    };
    Step::Next(next)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Whether the bytes from `before` on (with the three before them) hold
/// the blank line that ends a head: hyper's own test before it parses an
/// incomplete head again.
fn may_end_head(bytes: &[u8], before: usize) -> bool {
    let bytes = &bytes[before.saturating_sub(3).min(bytes.len())..];
    bytes.iter().enumerate().any(|(i, &b)| {
        let rest = &bytes[i + 1..];
        match b {
            b'\r' => rest.starts_with(b"\n\r\n"),
            b'\n' => rest.starts_with(b"\n") || rest.starts_with(b"\r\n"),
            _ => false,
        }
    })
}

/// Reads a request head: where it ends, and its framing.
///
/// On every head httparse (hyper's parser) accepts, this finds the same
/// end and the same header names and values: the head ends at its first
/// empty line once leading empty lines are skipped, a header's name is what
/// precedes its first colon, and its value is the rest without surrounding
/// spaces and tabs. On a head httparse refuses it may conclude anything,
/// since hyper closes the connection there. It is a plain scan of lines
/// because it runs on every request head a second time: it costs a third
/// of a full parse. `tests::agrees_with_httparse` holds it to that.
fn parse(bytes: &[u8]) -> Parsed {
    let mut at = 0;
    // httparse skips empty lines before the request line.
    loop {
        match (bytes.get(at), bytes.get(at + 1)) {
            (Some(b'\r'), Some(b'\n')) => at += 2,
            (Some(b'\n'), _) => at += 1,
            (Some(b'\r'), Some(_)) => return Parsed::Invalid,
            (Some(b'\r'), None) | (None, _) => return Parsed::Partial,
            (Some(_), _) => break,
        }
    }
    let Some(line) = next_line(bytes, &mut at) else {
        return Parsed::Partial;
    };
    let http11 = match line.len().checked_sub(8).map(|v| &line[v..]) {
        Some(b"HTTP/1.1") => true,
        Some(b"HTTP/1.0") => false,
        _ => return Parsed::Invalid,
    };
    let mut framing = Framing::new(line.starts_with(b"CONNECT "), http11);
    for _ in 0..=MAX_HEADERS {
        let Some(line) = next_line(bytes, &mut at) else {
            return Parsed::Partial;
        };
        if line.is_empty() {
            return Parsed::Complete(at, framing.head());
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            return Parsed::Invalid;
        };
        let value = line[colon + 1..].trim_ascii_start();
        let value = value.trim_ascii_end();
        framing.header(&line[..colon], value);
    }
    // More lines than hyper takes: it answers 431.
    Parsed::Invalid
}

/// The next line from `at`, without its CRLF or LF; `at` moves past it.
fn next_line<'a>(bytes: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
    let rest = bytes.get(*at..)?;
    let end = memchr::memchr(b'\n', rest)?;
    *at += end + 1;
    let line = &rest[..end];
    Some(line.strip_suffix(b"\r").unwrap_or(line))
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

    fn header(&mut self, name: &[u8], value: &[u8]) {
        // The length first: most names are ruled out by it alone.
        match name.len() {
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                self.refused |= !self.http11;
                self.te = true;
                self.chunked = ends_in_chunked(value);
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                self.cl = true;
                if self.te {
                    return;
                }
                match (digits(value), self.length) {
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

    const MAX: usize = 64 * 1024;

    /// Feeds `reads` one after another; returns the flagged indices.
    fn flagged(reads: &[&[u8]]) -> (Vec<u64>, Tracker) {
        let mut t = Tracker::new(MAX);
        let flags = reads.iter().filter_map(|r| t.feed(r)).collect();
        (flags, t)
    }

    /// The same bytes cut at every position, and one byte at a time.
    fn every_split(bytes: &[u8]) -> Vec<Vec<u64>> {
        let mut all = vec![flagged(&[bytes]).0];
        for cut in 1..bytes.len() {
            all.push(flagged(&[&bytes[..cut], &bytes[cut..]]).0);
        }
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        all.push(flagged(&singles).0);
        all
    }

    fn assert_flags(bytes: &[u8], want: &[u64]) {
        for (i, got) in every_split(bytes).into_iter().enumerate() {
            assert_eq!(got, want, "split #{i} of {:?}", String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn both_framings_are_flagged_in_either_order() {
        assert_flags(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            &[0],
        );
        assert_flags(
            b"POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: chunked\r\nCONTENT-LENGTH: 5\r\n\r\n0\r\n\r\n",
            &[0],
        );
    }

    #[test]
    fn a_later_request_is_flagged_with_its_own_index() {
        let bytes = [
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".as_slice(),
            b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
            b"POST /y HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nTrailer: t\r\n\r\n",
            b"POST /z HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        ]
        .concat();
        assert_flags(&bytes, &[3]);
    }

    #[test]
    fn header_lines_inside_bodies_are_not_heads() {
        let fake = b"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n";
        let by_length = [
            format!(
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
                fake.len()
            )
            .as_bytes(),
            fake,
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        ]
        .concat();
        assert_flags(&by_length, &[]);
        let by_chunks = [
            format!(
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
                fake.len()
            )
            .as_bytes(),
            fake,
            b"\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        ]
        .concat();
        assert_flags(&by_chunks, &[]);
    }

    #[test]
    fn leading_blank_lines_before_a_head_are_skipped_as_hyper_does() {
        assert_flags(
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
            &[1],
        );
    }

    #[test]
    fn following_stops_at_an_upgrade() {
        let (flags, t) = flagged(&[
            b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ]);
        assert!(flags.is_empty());
        assert!(t.is_off());
    }

    #[test]
    fn following_stops_where_hyper_refuses() {
        for bad in [
            b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n".as_slice(),
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nz\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;a\nb\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111\r\n",
        ] {
            let (flags, t) = flagged(&[bad]);
            assert!(flags.is_empty(), "{:?}", String::from_utf8_lossy(bad));
            assert!(t.is_off(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn a_head_longer_than_the_limit_stops_following_without_holding_it() {
        let mut t = Tracker::new(64);
        let long = [b"GET /".as_slice(), &[b'a'; 100]].concat();
        assert_eq!(t.feed(&long[..40]), None);
        assert!(!t.is_off());
        assert_eq!(t.feed(&long[40..]), None);
        assert!(t.is_off());
        assert_eq!(t.partial.capacity(), 0);
    }

    #[test]
    fn the_chunk_size_grammar_is_hypers() {
        // Whitespace after the size and extensions are allowed; a size
        // followed by whitespace and another digit is not.
        assert_flags(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1 \t;a=b\r\nx\r\n0\r\n\r\n\
              POST / HTTP/1.1\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
            &[1],
        );
        let (_, t) = flagged(&[b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1 1\r\n"]);
        assert!(t.is_off());
    }

    #[test]
    fn a_content_length_repeated_with_the_same_value_is_one_length() {
        assert_flags(
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc\
              GET / HTTP/1.1\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
            &[1],
        );
    }

    /// A head as httparse reads it, by hyper's rules: what [`parse`] must
    /// agree with.
    fn oracle(bytes: &[u8]) -> Option<(usize, Head)> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let Ok(httparse::Status::Complete(len)) = req.parse(bytes) else {
            return None;
        };
        let mut framing = Framing::new(req.method == Some("CONNECT"), req.version == Some(1));
        for h in req.headers.iter() {
            framing.header(h.name.as_bytes(), h.value);
        }
        Some((len, framing.head()))
    }

    #[test]
    fn agrees_with_httparse() {
        const PIECES: [&[u8]; 24] = [
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
            if let Some(want) = oracle(&bytes) {
                agreed += 1;
                let got = match parse(&bytes) {
                    Parsed::Complete(len, head) => Some((len, head)),
                    _ => None,
                };
                assert_eq!(got, Some(want), "{:?}", String::from_utf8_lossy(&bytes));
            } else if let Ok(httparse::Status::Partial) =
                httparse::Request::new(&mut [httparse::EMPTY_HEADER; MAX_HEADERS]).parse(&bytes)
            {
                assert!(
                    matches!(parse(&bytes), Parsed::Partial),
                    "{:?}",
                    String::from_utf8_lossy(&bytes)
                );
            }
        }
        assert!(agreed > 1_000, "only {agreed} heads were complete and valid");
    }
}
