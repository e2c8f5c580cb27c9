//! Which HTTP a client connection is served: the one ALPN chose, or, when
//! there was no ALPN, the one its first bytes begin.
//!
//! A protocol agreed in the handshake binds the client: were the first
//! bytes to decide anyway, a client could agree on one protocol and speak
//! the other, and what the proxy reports of the connection (its ALPN in
//! `/connections`) would not be what it served. So a negotiated protocol is
//! the only one served, and anything else is refused: after `h2`, as RFC
//! 9113 section 3.4 wants of an invalid preface, with a connection error of
//! type PROTOCOL_ERROR; after `http/1.1`, the HTTP/2 preface is closed on
//! without an answer. Only a client that offered no ALPN, and every client
//! of the plain listener, is served by what its first bytes begin.

/// What the TLS handshake settled about the HTTP version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alpn {
    /// `h2`: HTTP/2 only.
    H2,
    /// `http/1.1`: HTTP/1.1 only.
    Http1,
    /// No ALPN: a client that offered none, or a plain-HTTP connection.
    Unset,
}

impl Alpn {
    /// From the protocol the handshake chose.
    pub(crate) fn from_protocol(protocol: Option<&[u8]>) -> Alpn {
        match protocol {
            Some(b"h2") => Alpn::H2,
            // The listeners offer h2 and http/1.1 only, and rustls refuses
            // a handshake whose client offered neither.
            Some(_) => Alpn::Http1,
            None => Alpn::Unset,
        }
    }
}

/// How a connection is served, once its first bytes are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Serve {
    Http1,
    Http2,
    Refuse(Refusal),
}

/// A connection that sent what its ALPN does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `h2`, and the first bytes are not the HTTP/2 connection preface.
    NotH2Preface,
    /// `http/1.1`, and the first bytes are the HTTP/2 connection preface.
    H2PrefaceAfterHttp1,
}

/// The refusal of a connection that negotiated `h2`: an empty SETTINGS
/// frame first, because RFC 9113 section 3.4 makes it the first frame a
/// server sends, even on a connection it is about to end; then a GOAWAY
/// saying that nothing was processed and that the client broke the
/// protocol.
#[rustfmt::skip]
const REFUSE_H2: [u8; 26] = [
    // SETTINGS: length 0, type 0x4, no flags, stream 0.
    0, 0, 0, 0x4, 0, 0, 0, 0, 0,
    // GOAWAY: length 8, type 0x7, no flags, stream 0;
    0, 0, 8, 0x7, 0, 0, 0, 0, 0,
    // last stream 0, PROTOCOL_ERROR (0x1).
    0, 0, 0, 0, 0, 0, 0, 0x1,
];

impl Refusal {
    /// What is written before the connection is closed.
    ///
    /// After `http/1.1` nothing is: hyper's HTTP/1.1 server would answer
    /// the preface's `PRI * HTTP/2.0` request line with an error status,
    /// but an HTTP/1.1 answer to a client speaking HTTP/2 would only be
    /// taken for garbage, and a close says as much.
    pub(crate) fn reply(self) -> &'static [u8] {
        match self {
            Refusal::NotH2Preface => &REFUSE_H2,
            Refusal::H2PrefaceAfterHttp1 => &[],
        }
    }

    /// For the log.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Refusal::NotH2Preface => {
                "ALPN chose h2 but the client did not send the HTTP/2 connection preface; GOAWAY(PROTOCOL_ERROR)"
            }
            Refusal::H2PrefaceAfterHttp1 => {
                "ALPN chose http/1.1 but the client sent the HTTP/2 connection preface; closing"
            }
        }
    }
}

/// How to serve a connection with `alpn` whose first bytes are the whole
/// HTTP/2 connection preface (`h2_preface`) or not.
pub(crate) fn decide(alpn: Alpn, h2_preface: bool) -> Serve {
    match (alpn, h2_preface) {
        (Alpn::H2 | Alpn::Unset, true) => Serve::Http2,
        (Alpn::Http1 | Alpn::Unset, false) => Serve::Http1,
        (Alpn::H2, false) => Serve::Refuse(Refusal::NotH2Preface),
        (Alpn::Http1, true) => Serve::Refuse(Refusal::H2PrefaceAfterHttp1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_negotiated_protocol_is_the_only_one_served() {
        assert_eq!(decide(Alpn::H2, true), Serve::Http2);
        assert_eq!(decide(Alpn::H2, false), Serve::Refuse(Refusal::NotH2Preface));
        assert_eq!(decide(Alpn::Http1, false), Serve::Http1);
        assert_eq!(
            decide(Alpn::Http1, true),
            Serve::Refuse(Refusal::H2PrefaceAfterHttp1)
        );
    }

    #[test]
    fn without_alpn_the_first_bytes_decide() {
        assert_eq!(decide(Alpn::Unset, true), Serve::Http2);
        assert_eq!(decide(Alpn::Unset, false), Serve::Http1);
    }

    #[test]
    fn the_alpn_protocol_names() {
        assert_eq!(Alpn::from_protocol(Some(b"h2")), Alpn::H2);
        assert_eq!(Alpn::from_protocol(Some(b"http/1.1")), Alpn::Http1);
        assert_eq!(Alpn::from_protocol(None), Alpn::Unset);
    }

    #[test]
    fn the_h2_refusal_is_an_empty_settings_then_goaway_protocol_error() {
        let bytes = Refusal::NotH2Preface.reply();
        let (settings, goaway) = bytes.split_at(9);
        // Length 0, type SETTINGS, no flags (not an ACK), stream 0.
        assert_eq!(settings, [0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
        // Length 8, type GOAWAY, no flags, stream 0.
        assert_eq!(&goaway[..9], [0, 0, 8, 0x7, 0, 0, 0, 0, 0]);
        assert_eq!(goaway[9..13], 0u32.to_be_bytes(), "last stream id");
        assert_eq!(goaway[13..17], 1u32.to_be_bytes(), "PROTOCOL_ERROR");
        assert!(Refusal::H2PrefaceAfterHttp1.reply().is_empty());
    }
}
