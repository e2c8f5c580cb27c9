//! The ClientHello of a TLS connection, read from the bytes a client sent
//! first, for passthrough: the server name it asks for (SNI), and nothing
//! else. The bytes themselves are kept by the caller and replayed to the
//! upstream, which does the handshake.
//!
//! The hello may come in several TLS records, and each record in several
//! TCP segments: [`parse`] is given everything read so far and answers
//! that it needs more until the whole handshake message is there. Anything
//! that is not a well-formed ClientHello is refused rather than guessed
//! at: the proxy routes on what it reads, and the upstream must never be
//! able to read the same bytes another way (two `server_name` extensions,
//! say, one for each).

/// The largest ClientHello handshake message taken, header included. A
/// hello with a post-quantum key share is about 1.8 KiB; 16 KiB leaves
/// room for many extensions and is what one TLS record can carry.
pub(crate) const MAX_HELLO: usize = 16 * 1024;

/// The most bytes read while looking for the hello: the hello itself, and
/// the headers of the records it is cut into (one byte per record would be
/// absurd, but not forbidden).
pub(crate) const MAX_READ: usize = 2 * MAX_HELLO;

const RECORD_HEADER: usize = 5;
/// RFC 8446 section 5.1: a record's plaintext is at most 2^14 bytes.
const MAX_RECORD: usize = 1 << 14;
const HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;
const SERVER_NAME: u16 = 0;
const HOST_NAME: u8 = 0;

/// What the ClientHello says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hello {
    /// The `host_name` of the `server_name` extension, in lower case
    /// without a trailing dot; `None` when the client sent none.
    pub(crate) sni: Option<String>,
}

/// Why the bytes are not a ClientHello the proxy routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Malformed {
    /// The first byte is not a TLS handshake record's: not TLS at all, or
    /// SSL 2.
    NotTls,
    /// The first handshake message is not a ClientHello.
    NotClientHello,
    /// The hello is larger than [`MAX_HELLO`].
    TooLarge,
    /// A rule of the record or hello layout is broken; the rule.
    Invalid(&'static str),
}

impl Malformed {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Malformed::NotTls => "not a TLS handshake",
            Malformed::NotClientHello => "the first handshake message is not a ClientHello",
            Malformed::TooLarge => "the ClientHello is larger than 16 KiB",
            Malformed::Invalid(rule) => rule,
        }
    }
}

/// The ClientHello in `bytes`, `Ok(None)` while more bytes are needed.
pub(crate) fn parse(bytes: &[u8]) -> Result<Option<Hello>, Malformed> {
    let mut message: Vec<u8> = Vec::new();
    let mut rest = bytes;
    loop {
        // The message as far as the records read so far carry it.
        if message.len() >= 4 {
            if message[0] != CLIENT_HELLO {
                return Err(Malformed::NotClientHello);
            }
            let length = u24(&message[1..4]);
            if 4 + length > MAX_HELLO {
                return Err(Malformed::TooLarge);
            }
            if message.len() >= 4 + length {
                return body(&message[4..4 + length]).map(Some);
            }
        }
        if rest.len() < RECORD_HEADER {
            check_header_start(rest, message.is_empty())?;
            return Ok(None);
        }
        let (header, after) = rest.split_at(RECORD_HEADER);
        check_header_start(header, message.is_empty())?;
        let length = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if length == 0 || length > MAX_RECORD {
            return Err(Malformed::Invalid("a TLS record's length is 0 or over 16 KiB"));
        }
        if after.len() < length {
            return Ok(None);
        }
        message.extend_from_slice(&after[..length]);
        rest = &after[length..];
    }
}

/// The part of a record header in `header` (maybe fewer than five bytes):
/// a handshake record of TLS (major version 3).
fn check_header_start(header: &[u8], first: bool) -> Result<(), Malformed> {
    match header.first() {
        Some(&HANDSHAKE) | None => {}
        Some(_) if first => return Err(Malformed::NotTls),
        Some(_) => {
            return Err(Malformed::Invalid(
                "a record inside the ClientHello is not a handshake record",
            ))
        }
    }
    match header.get(1) {
        Some(3) | None => Ok(()),
        Some(_) if first => Err(Malformed::NotTls),
        Some(_) => Err(Malformed::Invalid("a record version is not TLS")),
    }
}

fn u24(b: &[u8]) -> usize {
    (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2])
}

/// Reads a ClientHello body in order, every length checked against what
/// is left.
struct Reader<'a>(&'a [u8]);

const SHORT: Malformed = Malformed::Invalid("the ClientHello is shorter than its lengths say");

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.0.len() < n {
            return Err(SHORT);
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(taken)
    }

    fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Malformed> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A vector with a one-byte length.
    fn vec8(&mut self) -> Result<&'a [u8], Malformed> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }

    /// A vector with a two-byte length.
    fn vec16(&mut self) -> Result<&'a [u8], Malformed> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

/// RFC 8446 section 4.1.2 (and RFC 5246 7.4.1.2, the same layout).
fn body(body: &[u8]) -> Result<Hello, Malformed> {
    let mut r = Reader(body);
    let version = r.u16()?;
    if version >> 8 != 3 {
        return Err(Malformed::Invalid("the ClientHello's version is not TLS"));
    }
    r.take(32)?; // random
    if r.vec8()?.len() > 32 {
        return Err(Malformed::Invalid("the session id is longer than 32 bytes"));
    }
    let suites = r.vec16()?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return Err(Malformed::Invalid("the cipher suite list is empty or odd"));
    }
    if r.vec8()?.is_empty() {
        return Err(Malformed::Invalid("the compression method list is empty"));
    }
    if r.0.is_empty() {
        // A hello without extensions (TLS 1.2 allows it) names no server.
        return Ok(Hello { sni: None });
    }
    let mut extensions = Reader(r.vec16()?);
    if !r.0.is_empty() {
        return Err(Malformed::Invalid("bytes follow the ClientHello's extensions"));
    }
    let mut seen: Vec<u16> = Vec::new();
    let mut sni = None;
    while !extensions.0.is_empty() {
        let kind = extensions.u16()?;
        let data = extensions.vec16()?;
        // RFC 8446 section 4.2: each extension at most once. A second
        // server_name is what a routing bypass would look like.
        if seen.contains(&kind) {
            return Err(Malformed::Invalid("an extension appears twice"));
        }
        seen.push(kind);
        if kind == SERVER_NAME {
            sni = server_name(data)?;
        }
    }
    Ok(Hello { sni })
}

/// RFC 6066 section 3: a list with one `host_name`.
fn server_name(data: &[u8]) -> Result<Option<String>, Malformed> {
    let mut r = Reader(data);
    let mut list = Reader(r.vec16()?);
    if !r.0.is_empty() {
        return Err(Malformed::Invalid("bytes follow the server name list"));
    }
    let mut host = None;
    while !list.0.is_empty() {
        let kind = list.u8()?;
        let name = list.vec16()?;
        if kind != HOST_NAME {
            continue;
        }
        if host.is_some() {
            return Err(Malformed::Invalid("the server name list has two host names"));
        }
        host = Some(host_name(name)?);
    }
    Ok(host)
}

/// A DNS name as SNI carries it: ASCII letters, digits, `-`, `_` and dots,
/// at most 253 bytes without the trailing dot some clients add.
fn host_name(raw: &[u8]) -> Result<String, Malformed> {
    let name = raw.strip_suffix(b".").unwrap_or(raw);
    let fits = !name.is_empty()
        && name.len() <= 253
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !name.starts_with(b".")
        && !name.windows(2).any(|w| w == b"..");
    if !fits {
        return Err(Malformed::Invalid("the server name is not a DNS name"));
    }
    // Only ASCII was let through, so this never replaces anything.
    Ok(String::from_utf8_lossy(name).to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// The first flight of a real rustls client offering `sni`: one or
    /// more TLS records holding its ClientHello.
    fn real_hello(sni: &str) -> Vec<u8> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
        let mut client = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut out = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut out).unwrap();
        }
        out
    }

    /// `flight`'s handshake bytes cut again into records of `size` bytes.
    fn refragment(flight: &[u8], size: usize) -> Vec<u8> {
        let mut message = Vec::new();
        let mut rest = flight;
        while rest.len() >= 5 {
            let n = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
            message.extend_from_slice(&rest[5..5 + n]);
            rest = &rest[5 + n..];
        }
        let mut out = Vec::new();
        for piece in message.chunks(size) {
            out.extend_from_slice(&[HANDSHAKE, 3, 1]);
            out.extend_from_slice(&(piece.len() as u16).to_be_bytes());
            out.extend_from_slice(piece);
        }
        out
    }

    #[test]
    fn a_real_hello_names_its_server_at_every_cut() {
        let flight = real_hello("Mqtt.Example.com");
        let want = Some(Hello {
            sni: Some("mqtt.example.com".into()),
        });
        assert_eq!(parse(&flight), Ok(want.clone()));
        for end in 0..flight.len() {
            assert_eq!(parse(&flight[..end]), Ok(None), "cut at {end}");
        }
        // Early data or anything else after the hello is not looked at.
        let mut more = flight.clone();
        more.extend_from_slice(b"\x17\x03\x03\x00\x01x");
        assert_eq!(parse(&more), Ok(want.clone()));
        for size in [1, 7, 100, 512] {
            let records = refragment(&flight, size);
            assert_eq!(parse(&records), Ok(want.clone()), "records of {size}");
            for end in (0..records.len()).step_by(13) {
                assert_eq!(
                    parse(&records[..end]),
                    Ok(None),
                    "records of {size}, cut at {end}"
                );
            }
        }
    }

    #[test]
    fn a_hello_without_sni_names_nothing() {
        // rustls sends no SNI for an IP address.
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut client = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut flight = Vec::new();
        client.write_tls(&mut flight).unwrap();
        assert_eq!(parse(&flight), Ok(Some(Hello { sni: None })));
    }

    #[test]
    fn what_is_not_a_hello_is_refused() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(Malformed::NotTls));
        assert_eq!(parse(b"\x16\x02"), Err(Malformed::NotTls));
        // SSL 2's compatible hello.
        assert_eq!(parse(b"\x80\x2e\x01\x03\x01"), Err(Malformed::NotTls));
        assert_eq!(
            parse(b"\x16\x03\x01\x00\x00"),
            Err(Malformed::Invalid("a TLS record's length is 0 or over 16 KiB"))
        );
        assert_eq!(
            parse(b"\x16\x03\x01\x40\x01"),
            Err(Malformed::Invalid("a TLS record's length is 0 or over 16 KiB"))
        );
        assert_eq!(
            parse(b"\x16\x03\x01\x00\x04\x02\x00\x00\x00"),
            Err(Malformed::NotClientHello)
        );
        assert_eq!(
            parse(b"\x16\x03\x01\x00\x04\x01\xff\xff\xff"),
            Err(Malformed::TooLarge)
        );
        // A hello cut short by its own lengths.
        assert_eq!(parse(b"\x16\x03\x01\x00\x06\x01\x00\x00\x02\x03\x03"), Err(SHORT));
        // An alert record after the first handshake bytes.
        assert!(matches!(
            parse(b"\x16\x03\x01\x00\x04\x01\x00\x01\x00\x15\x03\x03\x00\x02"),
            Err(Malformed::Invalid(_))
        ));
    }

    proptest::proptest! {
        /// Whatever a client sends, parsing ends in an answer and never
        /// panics; bytes that are a real hello's with some changed either
        /// are refused, need more, or still name a server in DNS form.
        #[test]
        fn any_bytes_get_an_answer(bytes in proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..600)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn a_changed_hello_is_read_strictly(
            changes in proptest::collection::vec((0usize..4096, proptest::arbitrary::any::<u8>()), 1..8),
        ) {
            let mut flight = real_hello("a.example");
            for (at, byte) in changes {
                let at = at % flight.len();
                flight[at] = byte;
            }
            if let Ok(Some(Hello { sni: Some(name) })) = parse(&flight) {
                proptest::prop_assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b)));
            }
        }
    }

    /// A hello with `extensions` (type, data) in one record.
    fn hello_with(extensions: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend_from_slice(&[0; 32]);
        body.push(0); // session id
        body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one suite
        body.extend_from_slice(&[1, 0]); // null compression
        let mut ext = Vec::new();
        for (kind, data) in extensions {
            ext.extend_from_slice(&kind.to_be_bytes());
            ext.extend_from_slice(&(data.len() as u16).to_be_bytes());
            ext.extend_from_slice(data);
        }
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        let mut message = vec![CLIENT_HELLO, 0, (body.len() >> 8) as u8, body.len() as u8];
        message.extend_from_slice(&body);
        let mut record = vec![HANDSHAKE, 3, 1, (message.len() >> 8) as u8, message.len() as u8];
        record.extend_from_slice(&message);
        record
    }

    fn names(entries: &[(u8, &[u8])]) -> Vec<u8> {
        let mut list = Vec::new();
        for (kind, name) in entries {
            list.push(*kind);
            list.extend_from_slice(&(name.len() as u16).to_be_bytes());
            list.extend_from_slice(name);
        }
        let mut data = (list.len() as u16).to_be_bytes().to_vec();
        data.extend_from_slice(&list);
        data
    }

    #[test]
    fn server_names_are_read_strictly() {
        let sni = |entries: &[(u8, &[u8])]| parse(&hello_with(&[(SERVER_NAME, names(entries))]));
        assert_eq!(
            sni(&[(0, b"a.example.")]),
            Ok(Some(Hello {
                sni: Some("a.example".into())
            }))
        );
        assert_eq!(
            sni(&[(0, b"a.example"), (0, b"b.example")]),
            Err(Malformed::Invalid("the server name list has two host names"))
        );
        assert_eq!(
            sni(&[(0, b"a example")]),
            Err(Malformed::Invalid("the server name is not a DNS name"))
        );
        assert_eq!(
            sni(&[(0, b"a..example")]),
            Err(Malformed::Invalid("the server name is not a DNS name"))
        );
        assert_eq!(
            sni(&[(0, b"")]),
            Err(Malformed::Invalid("the server name is not a DNS name"))
        );
        assert_eq!(
            sni(&[(0, "é.example".as_bytes())]),
            Err(Malformed::Invalid("the server name is not a DNS name"))
        );
        let twice = hello_with(&[
            (SERVER_NAME, names(&[(0, b"a.example")])),
            (SERVER_NAME, names(&[(0, b"b.example")])),
        ]);
        assert_eq!(
            parse(&twice),
            Err(Malformed::Invalid("an extension appears twice"))
        );
        assert_eq!(
            parse(&hello_with(&[(16, vec![0, 3, 2, b'h', b'2'])])),
            Ok(Some(Hello { sni: None }))
        );
        let mut short = names(&[(0, b"a.example")]);
        short.pop();
        assert!(matches!(
            parse(&hello_with(&[(SERVER_NAME, short)])),
            Err(Malformed::Invalid(_))
        ));
    }
}
