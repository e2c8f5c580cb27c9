//! What the listeners answer before any route: `[tls] unknown_sni` and
//! `[http] unknown_host`.

/// `[tls] unknown_sni`: a TLS client naming a host no certificate covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownSni {
    /// `"default"`: it gets the first certificate (the default).
    #[default]
    Default,
    /// `"reject"`: the handshake is refused, as nginx's
    /// `ssl_reject_handshake on`; a client sending no name is refused too.
    Reject,
}

/// `[http] unknown_host`: a plain-HTTP request for a host the proxy does
/// not serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownHost {
    /// `"answer"`: answered as any other request (the default).
    #[default]
    Answer,
    /// `"close"`: the connection is closed without a byte, as nginx's
    /// `return 444`.
    Close,
}
