//! Where each HTTP/1.1 request begins in the bytes a client sends, and
//! which heads declare both Content-Length and Transfer-Encoding.
//!
//! hyper reads such a request by its Transfer-Encoding and removes the
//! Content-Length before the proxy sees the head, so the proxy cannot tell
//! it from a plain chunked request. This tracker reads the same bytes the
//! way hyper does: a head is read to the same end with the same limits
//! (see [`super::head`]), its body is followed by the same framing rules (a fixed length,
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

use super::head::{Body, Head, HeadReader, Step as HeadStep};

pub struct Tracker {
    state: State,
    /// The head being read, in `State::Head`.
    reader: HeadReader,
    /// `max_header_size`: hyper refuses a longer head, so the tracker
    /// stops following rather than buffer more.
    max_head: usize,
    /// The index the next head gets: 0 for the connection's first request.
    heads: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At a message start, or inside a head.
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

impl Tracker {
    pub fn new(max_head: usize) -> Self {
        Tracker {
            state: State::Head,
            reader: HeadReader::new(),
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
        self.reader = HeadReader::new();
    }

    /// Reads from a message start; returns how many bytes the head took.
    fn head(&mut self, bytes: &[u8], both: &mut Option<u64>) -> usize {
        let (used, step) = self.reader.feed(bytes, self.max_head);
        match step {
            HeadStep::Partial => {}
            HeadStep::Complete(head) => self.begin(head, both),
            HeadStep::Invalid => self.off(),
        }
        used
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
    if let (Start | Size(_), Some(digit)) = (chunk, char::from(byte).to_digit(16)) {
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
    fn a_head_longer_than_the_limit_stops_following() {
        let mut t = Tracker::new(64);
        let long = [b"GET /".as_slice(), &[b'a'; 100]].concat();
        assert_eq!(t.feed(&long[..40]), None);
        assert!(!t.is_off());
        assert_eq!(t.feed(&long[40..]), None);
        assert!(t.is_off());
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
}
