//! What a certificate needs for stapling: the responder's URL from its
//! Authority Information Access, the certificate that issued it (from the
//! same chain file), and the OCSP request that names it (RFC 6960 4.1).

use rustls_pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use super::der;

/// id-ad-ocsp (RFC 5280 4.2.2.1).
const ID_AD_OCSP: &str = "1.3.6.1.5.5.7.48.1";
/// SHA-1 as CertID's hashAlgorithm: what every responder answers to (RFC
/// 5019 2.1.1); it only names the issuer, it protects nothing.
const SHA1_ALGORITHM: &[u8] = &[0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00];

/// The issuer's name and key, as CertID and signature checks need them.
#[derive(Clone, Debug)]
pub(crate) struct Issuer {
    /// The DER of the issuer's subject Name.
    pub(crate) name: Vec<u8>,
    /// The issuer's whole SubjectPublicKeyInfo.
    pub(crate) spki: Vec<u8>,
}

/// One certificate's stapling facts.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub(crate) url: String,
    /// The leaf's serial number, as the INTEGER's contents.
    pub(crate) serial: Vec<u8>,
    pub(crate) issuer: Issuer,
}

/// Why a certificate cannot be stapled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unstapleable {
    /// No OCSP URL in the certificate: its CA runs no responder (Let's
    /// Encrypt's certificates since 2025, self-signed ones).
    NoResponder,
    /// The responder URL is not plain `http://` (RFC 5019 and every
    /// public CA use http: the response is signed, TLS adds nothing).
    NotHttp(String),
    /// The chain file holds no certificate that issued the leaf.
    NoIssuer,
    Unreadable,
}

impl std::fmt::Display for Unstapleable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unstapleable::NoResponder => f.write_str("the certificate names no OCSP responder"),
            Unstapleable::NotHttp(url) => write!(f, "the OCSP responder {url:?} is not an http:// URL"),
            Unstapleable::NoIssuer => f.write_str(
                "the certificate file holds no issuer certificate after the server's own \
                 (use the full chain, e.g. certbot's fullchain.pem)",
            ),
            Unstapleable::Unreadable => f.write_str("the certificate could not be parsed"),
        }
    }
}

/// The stapling facts of the leaf of `chain`.
pub(crate) fn target(chain: &[CertificateDer<'_>]) -> Result<Target, Unstapleable> {
    let leaf_der = chain.first().ok_or(Unstapleable::Unreadable)?;
    let (_, leaf) = X509Certificate::from_der(leaf_der).map_err(|_| Unstapleable::Unreadable)?;
    let url = responder_url(&leaf)?;
    let issuer = chain
        .iter()
        .skip(1)
        .filter_map(|der| X509Certificate::from_der(der).ok().map(|(_, cert)| cert))
        .find(|cert| cert.subject().as_raw() == leaf.issuer().as_raw())
        .ok_or(Unstapleable::NoIssuer)?;
    Ok(Target {
        url,
        serial: leaf.raw_serial().to_vec(),
        issuer: Issuer {
            name: issuer.subject().as_raw().to_vec(),
            spki: issuer.public_key().raw.to_vec(),
        },
    })
}

fn responder_url(leaf: &X509Certificate<'_>) -> Result<String, Unstapleable> {
    let mut found = None;
    for extension in leaf.extensions() {
        let ParsedExtension::AuthorityInfoAccess(aia) = extension.parsed_extension() else {
            continue;
        };
        for access in aia.iter() {
            if access.access_method.to_id_string() != ID_AD_OCSP {
                continue;
            }
            if let GeneralName::URI(url) = access.access_location {
                if url.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("http://")) {
                    return Ok(url.to_owned());
                }
                found.get_or_insert_with(|| url.to_owned());
            }
        }
    }
    Err(found.map_or(Unstapleable::NoResponder, Unstapleable::NotHttp))
}

impl Issuer {
    /// The issuer's public key bits (the SubjectPublicKeyInfo's BIT STRING).
    pub(crate) fn key_bits(&self) -> Option<&[u8]> {
        spki_parts(&self.spki).map(|(_, bits)| bits)
    }
}

/// A SubjectPublicKeyInfo's algorithm (the AlgorithmIdentifier's contents,
/// as rustls names algorithms) and its key bits.
pub(crate) fn spki_parts(spki: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut outer = der::Reader::new(spki);
    let mut fields = outer.expect(der::SEQUENCE).ok()?.inner();
    let algorithm = fields.expect(der::SEQUENCE).ok()?.contents;
    let bits = fields.expect(der::BIT_STRING).ok()?.bits().ok()?;
    Some((algorithm, bits))
}

/// Hashes the issuer's name and key as CertID does, with `algorithm`.
pub(crate) fn issuer_hashes(
    issuer: &Issuer,
    algorithm: &'static aws_lc_rs::digest::Algorithm,
) -> Option<(Vec<u8>, Vec<u8>)> {
    let name = aws_lc_rs::digest::digest(algorithm, &issuer.name);
    let key = aws_lc_rs::digest::digest(algorithm, issuer.key_bits()?);
    Some((name.as_ref().to_vec(), key.as_ref().to_vec()))
}

/// The DER of an OCSPRequest for `target`, with a SHA-1 CertID, unsigned
/// and without a nonce (RFC 5019 2.1: responders precompute their answers).
pub(crate) fn encode(target: &Target) -> Option<Vec<u8>> {
    let (name_hash, key_hash) = issuer_hashes(&target.issuer, &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY)?;
    let mut cert_id = SHA1_ALGORITHM.to_vec();
    der::write(&mut cert_id, der::OCTET_STRING, &name_hash);
    der::write(&mut cert_id, der::OCTET_STRING, &key_hash);
    der::write(&mut cert_id, der::INTEGER, &target.serial);
    let request = der::wrap(der::SEQUENCE, &der::wrap(der::SEQUENCE, &cert_id));
    let request_list = der::wrap(der::SEQUENCE, &request);
    let tbs_request = der::wrap(der::SEQUENCE, &request_list);
    Some(der::wrap(der::SEQUENCE, &tbs_request))
}
