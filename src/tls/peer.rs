//! The client certificate a connection was verified with: its subject as
//! an RFC 4514 string and its SHA-256 fingerprint, worked out once per
//! connection, after the handshake, for the upstream's headers and the
//! admin `/connections` page.
//!
//! Both strings are printable ASCII whatever the certificate holds (other
//! characters are escaped as RFC 4514 allows), so they always fit in an
//! HTTP header.

use std::fmt::Write as _;

use rustls::ServerConnection;
use x509_parser::asn1_rs::{Tag, ToDer};
use x509_parser::certificate::X509Certificate;
use x509_parser::objects::{oid2sn, oid_registry};
use x509_parser::prelude::FromDer;
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

/// A verified client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// The subject in RFC 4514 form, most significant part last, as
    /// nginx's `$ssl_client_s_dn`: `CN=alice,OU=ops,O=Example`.
    pub subject: String,
    /// SHA-256 of the leaf's DER, lowercase hex without separators.
    pub sha256: String,
}

/// The client certificate of `conn`, if the client presented one. rustls
/// only completes a handshake whose presented certificate passed the
/// configured verifier, so a certificate here is a verified one.
pub fn client_cert(conn: &ServerConnection) -> Option<ClientCert> {
    let leaf = conn.peer_certificates()?.first()?;
    let sha256 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, leaf.as_ref());
    let sha256 = sha256
        .as_ref()
        .iter()
        .fold(String::with_capacity(64), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        });
    // The verifier parsed the same bytes; a failure here would leave the
    // subject empty rather than lose the connection.
    let subject = X509Certificate::from_der(leaf.as_ref())
        .map(|(_, cert)| rfc4514(cert.subject()))
        .unwrap_or_default();
    Some(ClientCert { subject, sha256 })
}

/// The attribute types RFC 4514 section 3 names; any other is written by
/// its short name when the OID registry knows one (`emailAddress`, as
/// OpenSSL and nginx write it), else as its dotted OID.
const NAMES: [(&str, &str); 9] = [
    ("2.5.4.3", "CN"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.6", "C"),
    ("2.5.4.9", "STREET"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("0.9.2342.19200300.100.1.1", "UID"),
];

/// `name` as an RFC 4514 string: the RDNs in reverse order, separated by
/// `,`, the attributes of a multi-valued RDN joined by `+`.
pub fn rfc4514(name: &X509Name<'_>) -> String {
    let rdns: Vec<_> = name.iter_rdn().collect();
    let mut out = String::new();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, attribute) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            push_attribute(&mut out, attribute);
        }
    }
    out
}

fn push_attribute(out: &mut String, attribute: &AttributeTypeAndValue<'_>) {
    let oid = attribute.attr_type().to_id_string();
    let known = NAMES
        .iter()
        .find(|(dotted, _)| *dotted == oid)
        .map(|(_, name)| *name);
    let short = known.or_else(|| oid2sn(attribute.attr_type(), oid_registry()).ok());
    match (short, text_value(attribute)) {
        (Some(short), Some(text)) => {
            out.push_str(short);
            out.push('=');
            push_escaped(out, &text);
        }
        // A value that is not a string, or a type without a name, is the
        // `#` and hex form of its DER encoding (RFC 4514 section 2.4).
        (short, _) => {
            out.push_str(short.unwrap_or(&oid));
            out.push_str("=#");
            for b in attribute.attr_value().to_der_vec().unwrap_or_default() {
                let _ = write!(out, "{b:02x}");
            }
        }
    }
}

/// The value of a string-typed attribute.
fn text_value(attribute: &AttributeTypeAndValue<'_>) -> Option<String> {
    if let Ok(text) = attribute.as_str() {
        return Some(text.to_owned());
    }
    let value = attribute.attr_value();
    match value.tag() {
        Tag::BmpString => {
            let units: Vec<u16> = value
                .data
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        Tag::VisibleString | Tag::T61String | Tag::GeneralString | Tag::GraphicString => {
            std::str::from_utf8(value.data).ok().map(str::to_owned)
        }
        _ => None,
    }
}

/// Appends `value` escaped as RFC 4514 section 2.4 requires, and every
/// character outside printable ASCII as `\XX` per UTF-8 byte (which the
/// same section allows), so that the result is always a valid header value.
fn push_escaped(out: &mut String, value: &str) {
    let last = value.len().saturating_sub(1);
    for (i, c) in value.char_indices() {
        let edge_space = c == ' ' && (i == 0 || i == last);
        let special = matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\\') || (c == '#' && i == 0);
        if edge_space || special {
            out.push('\\');
            out.push(c);
        } else if c.is_ascii_graphic() || c == ' ' {
            out.push(c);
        } else {
            let mut bytes = [0u8; 4];
            for b in c.encode_utf8(&mut bytes).bytes() {
                let _ = write!(out, "\\{b:02X}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject_of(params: rcgen::CertificateParams) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (_, parsed) = X509Certificate::from_der(cert.der()).unwrap();
        rfc4514(parsed.subject())
    }

    #[test]
    fn most_significant_last() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CountryName, "DE");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example, Inc.");
        params.distinguished_name.push(rcgen::DnType::CommonName, "alice");
        assert_eq!(subject_of(params), "CN=alice,O=Example\\, Inc.,C=DE");
    }

    #[test]
    fn escapes_keep_the_value_a_header() {
        let mut out = String::new();
        push_escaped(&mut out, "#lead ;<x>+\"q\"\\ é\u{7}trail ");
        assert_eq!(out, "\\#lead \\;\\<x\\>\\+\\\"q\\\"\\\\ \\C3\\A9\\07trail\\ ");
        assert!(http::HeaderValue::from_str(&out).is_ok());
        let mut out = String::new();
        push_escaped(&mut out, " ");
        assert_eq!(out, "\\ ");
    }
}
