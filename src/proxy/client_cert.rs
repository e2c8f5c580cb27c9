//! The client certificate headers the upstream receives:
//! `X-Client-Cert-Subject` (RFC 4514), `X-Client-Cert-Sha256` (lowercase
//! hex) and `X-Client-Cert-Verify` (`SUCCESS` or `NONE`, nginx's
//! `$ssl_client_verify` words).
//!
//! The copies a client sends are removed from every request, on every
//! listener and whether or not client certificates are configured: an
//! upstream that trusts these headers must never see one a client wrote.

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::tls::peer::ClientCert;

pub static X_CLIENT_CERT_SUBJECT: HeaderName = HeaderName::from_static("x-client-cert-subject");
pub static X_CLIENT_CERT_SHA256: HeaderName = HeaderName::from_static("x-client-cert-sha256");
pub static X_CLIENT_CERT_VERIFY: HeaderName = HeaderName::from_static("x-client-cert-verify");
static SUCCESS: HeaderValue = HeaderValue::from_static("SUCCESS");
static NONE: HeaderValue = HeaderValue::from_static("NONE");

/// A connection's verified client certificate as header values, made once
/// per connection.
#[derive(Debug)]
pub struct Verified {
    /// `None` when the subject is empty.
    subject: Option<HeaderValue>,
    sha256: HeaderValue,
    /// The subject as text, for logs.
    pub subject_text: String,
}

impl Verified {
    /// `None` only if a value could not be a header, which
    /// [`crate::tls::peer`] rules out by escaping.
    pub fn new(cert: &ClientCert) -> Option<Verified> {
        let subject = match cert.subject.as_str() {
            "" => None,
            text => Some(HeaderValue::from_str(text).ok()?),
        };
        Some(Verified {
            subject,
            sha256: HeaderValue::from_str(&cert.sha256).ok()?,
            subject_text: cert.subject.clone(),
        })
    }

    /// The certificate's SHA-256, hex, as `X-Client-Cert-Sha256` carries it.
    pub fn sha256(&self) -> &str {
        self.sha256.to_str().unwrap_or_default()
    }
}

/// Removes every client-sent copy of the three headers, then, on a TLS
/// connection (`tls`), says what the handshake verified.
pub fn forward(headers: &mut HeaderMap, tls: bool, verified: Option<&Verified>) {
    // Names are kept in lowercase, and most requests carry none of these:
    // one look over the names costs less than three removals, each of which
    // hashes a long custom name. `remove` drops every value of a name.
    if headers
        .keys()
        .any(|name| name.as_str().starts_with("x-client-cert-"))
    {
        headers.remove(&X_CLIENT_CERT_SUBJECT);
        headers.remove(&X_CLIENT_CERT_SHA256);
        headers.remove(&X_CLIENT_CERT_VERIFY);
    }
    if !tls {
        return;
    }
    match verified {
        Some(v) => {
            if let Some(subject) = &v.subject {
                headers.insert(X_CLIENT_CERT_SUBJECT.clone(), subject.clone());
            }
            headers.insert(X_CLIENT_CERT_SHA256.clone(), v.sha256.clone());
            headers.insert(X_CLIENT_CERT_VERIFY.clone(), SUCCESS.clone());
        }
        None => {
            headers.insert(X_CLIENT_CERT_VERIFY.clone(), NONE.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spoofed() -> HeaderMap {
        let mut h = HeaderMap::new();
        for name in [
            "X-Client-Cert-Subject",
            "x-client-cert-sha256",
            "X-CLIENT-CERT-VERIFY",
        ] {
            for value in ["CN=admin", "SUCCESS"] {
                h.append(
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_static(value),
                );
            }
        }
        h
    }

    #[test]
    fn plain_requests_carry_none_of_them() {
        let mut h = spoofed();
        forward(&mut h, false, None);
        assert!(h.is_empty(), "{h:?}");
    }

    #[test]
    fn tls_requests_carry_what_the_handshake_verified() {
        let mut h = spoofed();
        forward(&mut h, true, None);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h[&X_CLIENT_CERT_VERIFY], "NONE");

        let cert = ClientCert {
            subject: "CN=alice".to_owned(),
            sha256: "ab".repeat(32),
        };
        let verified = Verified::new(&cert).unwrap();
        let mut h = spoofed();
        forward(&mut h, true, Some(&verified));
        assert_eq!(h.len(), 3, "{h:?}");
        assert_eq!(h[&X_CLIENT_CERT_SUBJECT], "CN=alice");
        assert_eq!(h[&X_CLIENT_CERT_SHA256], "ab".repeat(32).as_str());
        assert_eq!(h[&X_CLIENT_CERT_VERIFY], "SUCCESS");
    }
}
