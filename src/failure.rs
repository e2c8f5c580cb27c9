//! Why a client connection failed, in the words of the metrics that count
//! it: the reason a TLS handshake failed, and the connection errors worth a
//! count of their own (a GOAWAY with an error code the proxy sent, which is
//! how h2 ends a rapid-reset flood, and an HTTP/1.1 request head hyper
//! refused for its size).
//!
//! A flood is visible here even though its log lines are rate-limited (see
//! `log_limit`): every connection is counted.

use std::error::Error;
use std::io;

use crate::tls::client_auth;

/// Why a TLS handshake failed, for `portcullis_tls_handshake_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandshakeFailure {
    /// Not finished within `handshake_timeout`.
    Timeout = 0,
    /// The client closed the connection before the handshake ended
    /// (scanners, health checks, a client that gave up).
    Eof = 1,
    /// The connection was reset.
    Reset = 2,
    /// The client ended it with an alert, typically because it does not
    /// trust the certificate (unknown_ca, bad_certificate).
    Alert = 3,
    /// Nothing in common: no protocol version, cipher suite, group or ALPN
    /// protocol that both sides accept.
    Incompatible = 4,
    /// Bytes that are not the TLS the client started, such as plain HTTP.
    Protocol = 5,
    /// The client's certificate was missing or refused (mutual TLS).
    ClientCert = 6,
    Other = 7,
}

impl HandshakeFailure {
    pub(crate) const ALL: [HandshakeFailure; 8] = [
        HandshakeFailure::Timeout,
        HandshakeFailure::Eof,
        HandshakeFailure::Reset,
        HandshakeFailure::Alert,
        HandshakeFailure::Incompatible,
        HandshakeFailure::Protocol,
        HandshakeFailure::ClientCert,
        HandshakeFailure::Other,
    ];

    /// The `reason` label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::Eof => "eof",
            HandshakeFailure::Reset => "reset",
            HandshakeFailure::Alert => "alert",
            HandshakeFailure::Incompatible => "incompatible",
            HandshakeFailure::Protocol => "protocol",
            HandshakeFailure::ClientCert => "client_cert",
            HandshakeFailure::Other => "other",
        }
    }

    /// The reason of a handshake that ended with `error` (tokio-rustls
    /// hands rustls' own error over inside an `io::Error`).
    pub(crate) fn of(error: &io::Error) -> Self {
        if client_auth::rejection(error).is_some() {
            return HandshakeFailure::ClientCert;
        }
        let tls = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        match tls {
            Some(rustls::Error::AlertReceived(_)) => HandshakeFailure::Alert,
            Some(rustls::Error::PeerIncompatible(_) | rustls::Error::NoApplicationProtocol) => {
                HandshakeFailure::Incompatible
            }
            Some(
                rustls::Error::InvalidMessage(_)
                | rustls::Error::PeerMisbehaved(_)
                | rustls::Error::InappropriateMessage { .. }
                | rustls::Error::InappropriateHandshakeMessage { .. }
                | rustls::Error::DecryptError,
            ) => HandshakeFailure::Protocol,
            Some(_) => HandshakeFailure::Other,
            None => match error.kind() {
                io::ErrorKind::UnexpectedEof => HandshakeFailure::Eof,
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe => HandshakeFailure::Reset,
                _ => HandshakeFailure::Other,
            },
        }
    }
}

/// A connection error with a count of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnError {
    /// The proxy's HTTP/2 side sent GOAWAY with this error code: h2 found
    /// the client breaking a rule or a limit (ENHANCE_YOUR_CALM for too
    /// many reset streams, a header list far over the limit, too many
    /// CONTINUATION frames; PROTOCOL_ERROR and the like for broken frames).
    GoAway(h2::Reason),
    /// hyper answered an HTTP/1.1 request head with 431: over
    /// `max_header_size`, or too many header fields.
    HeadTooLarge,
    /// hyper answered 414: a request target over 64 KiB.
    UriTooLong,
}

impl ConnError {
    /// What, if anything, `error` (the error a client connection ended
    /// with) should be counted as. hyper wraps h2's error, and hyper-util
    /// boxes hyper's, so the whole chain of sources is searched.
    pub(crate) fn of(error: &(dyn Error + 'static)) -> Option<ConnError> {
        let mut next = Some(error);
        while let Some(error) = next {
            if let Some(h2) = error.downcast_ref::<h2::Error>() {
                // A GOAWAY the client sent, and a graceful one (NO_ERROR,
                // which ends no connection with an error), are not floods.
                return match h2.reason() {
                    Some(reason) if h2.is_go_away() && !h2.is_remote() => Some(ConnError::GoAway(reason)),
                    _ => None,
                };
            }
            if let Some(hyper) = error.downcast_ref::<hyper::Error>() {
                if hyper.is_parse_too_large() {
                    // hyper tells the two apart only in words; the rest of
                    // what `is_parse_too_large` covers is answered 431.
                    return Some(if hyper.to_string() == "URI too long" {
                        ConnError::UriTooLong
                    } else {
                        ConnError::HeadTooLarge
                    });
                }
            }
            next = error.source();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use rustls::{AlertDescription, PeerIncompatible, PeerMisbehaved};

    fn tls(error: rustls::Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, error)
    }

    #[test]
    fn handshake_failures_are_told_apart() {
        use rustls::Error as E;
        use HandshakeFailure::*;
        let from_rustls = [
            (E::AlertReceived(AlertDescription::UnknownCA), Alert),
            (
                E::PeerIncompatible(PeerIncompatible::NoCipherSuitesInCommon),
                Incompatible,
            ),
            (E::NoApplicationProtocol, Incompatible),
            (
                E::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
                Protocol,
            ),
            (E::PeerMisbehaved(PeerMisbehaved::TooManyEmptyFragments), Protocol),
            (E::NoCertificatesPresented, ClientCert),
            (
                E::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
                ClientCert,
            ),
            (E::General("x".into()), Other),
        ];
        for (error, expected) in from_rustls {
            assert_eq!(HandshakeFailure::of(&tls(error.clone())), expected, "{error}");
        }
        let from_the_socket = [
            (
                io::Error::new(io::ErrorKind::UnexpectedEof, "tls handshake eof"),
                Eof,
            ),
            (io::ErrorKind::ConnectionReset.into(), Reset),
            (io::ErrorKind::BrokenPipe.into(), Reset),
            (io::ErrorKind::OutOfMemory.into(), Other),
        ];
        for (error, expected) in from_the_socket {
            assert_eq!(HandshakeFailure::of(&error), expected, "{error}");
        }
    }

    #[test]
    fn labels_are_distinct_and_indexed_by_value() {
        for (index, failure) in HandshakeFailure::ALL.iter().enumerate() {
            assert_eq!(*failure as usize, index);
        }
        let mut labels: Vec<_> = HandshakeFailure::ALL.iter().map(|f| f.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), HandshakeFailure::ALL.len());
    }

    /// An HTTP/2 frame: its 9-byte header, then `payload`.
    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
        let mut out = vec![len[1], len[2], len[3], kind, flags];
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// hyper's HTTP/2 server, as the listeners run it, fed a rapid-reset
    /// flood: the error it ends with is found under hyper's.
    #[tokio::test]
    async fn a_goaway_for_a_rapid_reset_flood_is_found_under_hypers_error() {
        use tokio::io::AsyncWriteExt;

        let (mut client, server) = tokio::io::duplex(1 << 20);
        let service = hyper::service::service_fn(|_| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(
                http_body_util::Empty::<bytes::Bytes>::new(),
            ))
        });
        let served = tokio::spawn(
            hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .serve_connection(hyper_util::rt::TokioIo::new(server), service),
        );
        let mut flood = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        flood.extend(frame(4, 0, 0, &[]));
        // GET https://localhost/ from the static table, the authority literal.
        let head = b"\x82\x87\x84\x01\x09localhost";
        for stream in (1..200).step_by(2) {
            flood.extend(frame(1, 0x5, stream, head));
            flood.extend(frame(3, 0, stream, &8u32.to_be_bytes()));
        }
        client.write_all(&flood).await.unwrap();
        // The client stays open so that the GOAWAY can be written.
        let ended = served.await.unwrap().expect_err("the flood was served");
        assert_eq!(
            ConnError::of(&ended),
            Some(ConnError::GoAway(h2::Reason::ENHANCE_YOUR_CALM)),
            "{ended}"
        );
        drop(client);
    }

    #[test]
    fn other_errors_are_not_counted() {
        let plain: h2::Error = h2::Reason::ENHANCE_YOUR_CALM.into();
        // A reason alone is no GOAWAY.
        assert_eq!(ConnError::of(&plain), None);
        assert_eq!(ConnError::of(&io::Error::other("broken pipe")), None);
    }
}
