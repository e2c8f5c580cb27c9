//! Checking an OCSP response before it is stapled (RFC 6960 4.2 and 3.2):
//! a staple that does not verify would make careful clients refuse the
//! handshake, so one that fails any check here is never served.
//!
//! The response must be successful and basic, name the certificate by its
//! issuer and serial, say `good`, be current, and be signed by the issuer
//! or by a responder certificate that the issuer signed for OCSP signing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use x509_parser::time::ASN1Time;

use super::der::{self, Element, Malformed, Reader};
use super::request::{self, Target};

/// id-pkix-ocsp-basic.
const BASIC: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01];
const SHA1: &[u8] = &[0x2b, 0x0e, 0x03, 0x02, 0x1a];
const SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
/// How far in the future a thisUpdate may lie: the responder's clock and
/// ours differ a little.
const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// A response that verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Good {
    pub(crate) this_update: SystemTime,
    pub(crate) next_update: Option<SystemTime>,
}

/// Why a response is not stapled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    Malformed,
    /// responseStatus other than successful (RFC 6960 4.2.1).
    Status(u8),
    NotBasic,
    /// No SingleResponse names this certificate.
    OtherCertificate,
    Revoked,
    Unknown,
    NotYetValid,
    Expired,
    BadSignature,
}

impl From<Malformed> for Refused {
    fn from(_: Malformed) -> Self {
        Refused::Malformed
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Malformed => f.write_str("the response is not DER-encoded OCSP"),
            Refused::Status(status) => {
                let name = match status {
                    1 => "malformedRequest",
                    2 => "internalError",
                    3 => "tryLater",
                    5 => "sigRequired",
                    6 => "unauthorized",
                    _ => "an unknown status",
                };
                write!(f, "the responder answered {name} ({status})")
            }
            Refused::NotBasic => f.write_str("the response is not a basic OCSP response"),
            Refused::OtherCertificate => f.write_str("the response is about another certificate"),
            Refused::Revoked => f.write_str("the responder says the certificate is REVOKED"),
            Refused::Unknown => f.write_str("the responder does not know the certificate"),
            Refused::NotYetValid => f.write_str("the response is not valid yet (check the clock)"),
            Refused::Expired => f.write_str("the response has expired (its nextUpdate has passed)"),
            Refused::BadSignature => f.write_str(
                "the response is not signed by the certificate's issuer nor by a responder it authorised",
            ),
        }
    }
}

/// Checks `response` (the DER an OCSP responder sent) for `target` at `now`.
pub(crate) fn verify(response: &[u8], target: &Target, now: SystemTime) -> Result<Good, Refused> {
    let mut top = Reader::new(response);
    let mut outer = top.expect(der::SEQUENCE)?.inner();
    if !top.is_empty() {
        return Err(Refused::Malformed);
    }
    match outer.expect(der::ENUMERATED)?.contents {
        [0] => {}
        [status] => return Err(Refused::Status(*status)),
        _ => return Err(Refused::Malformed),
    }
    let mut bytes = outer
        .expect(der::explicit(0))?
        .inner()
        .expect(der::SEQUENCE)?
        .inner();
    if bytes.expect(der::OID)?.contents != BASIC {
        return Err(Refused::NotBasic);
    }
    let basic = bytes.expect(der::OCTET_STRING)?.contents;
    let mut basic = Reader::new(basic).expect(der::SEQUENCE)?.inner();
    let tbs = basic.expect(der::SEQUENCE)?;
    let signature_algorithm = basic.expect(der::SEQUENCE)?.contents;
    let signature = basic.expect(der::BIT_STRING)?.bits()?;
    let certs = basic.optional(der::explicit(0))?;

    let good = single_response(tbs, target, now)?;
    let signed_by_issuer = check_signature(&target.issuer.spki, signature_algorithm, tbs.whole, signature);
    if !signed_by_issuer
        && !signed_by_delegate(certs, target, signature_algorithm, tbs.whole, signature, now)?
    {
        return Err(Refused::BadSignature);
    }
    Ok(good)
}

/// The SingleResponse about `target` in ResponseData, checked.
fn single_response(tbs: Element<'_>, target: &Target, now: SystemTime) -> Result<Good, Refused> {
    let mut data = tbs.inner();
    data.optional(der::explicit(0))?; // version
    match data.next()?.tag {
        tag if tag == der::explicit(1) || tag == der::explicit(2) => {}
        _ => return Err(Refused::Malformed),
    }
    data.expect(der::GENERALIZED_TIME)?; // producedAt
    let mut responses = data.expect(der::SEQUENCE)?.inner();
    while !responses.is_empty() {
        let mut single = responses.expect(der::SEQUENCE)?.inner();
        let cert_id = single.expect(der::SEQUENCE)?;
        if !names(cert_id, target)? {
            continue;
        }
        let status = single.next()?;
        let this_update = time(single.expect(der::GENERALIZED_TIME)?)?;
        let next_update = match single.optional(der::explicit(0))? {
            Some(explicit) => Some(time(explicit.inner().expect(der::GENERALIZED_TIME)?)?),
            None => None,
        };
        match status.tag {
            tag if tag == der::implicit(0) => {}
            tag if tag == der::explicit(1) => return Err(Refused::Revoked),
            tag if tag == der::implicit(2) => return Err(Refused::Unknown),
            _ => return Err(Refused::Malformed),
        }
        if this_update > now + CLOCK_SKEW {
            return Err(Refused::NotYetValid);
        }
        if next_update.is_some_and(|next| next <= now) {
            return Err(Refused::Expired);
        }
        return Ok(Good {
            this_update,
            next_update,
        });
    }
    Err(Refused::OtherCertificate)
}

/// Whether a CertID names `target` (issuer name and key hashed with the
/// algorithm it states, and the serial).
fn names(cert_id: Element<'_>, target: &Target) -> Result<bool, Refused> {
    let mut fields = cert_id.inner();
    let mut algorithm = fields.expect(der::SEQUENCE)?.inner();
    let digest = match algorithm.expect(der::OID)?.contents {
        SHA1 => &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        SHA256 => &aws_lc_rs::digest::SHA256,
        _ => return Ok(false),
    };
    let name_hash = fields.expect(der::OCTET_STRING)?.contents;
    let key_hash = fields.expect(der::OCTET_STRING)?.contents;
    let serial = fields.expect(der::INTEGER)?.contents;
    let Some((name, key)) = request::issuer_hashes(&target.issuer, digest) else {
        return Err(Refused::Malformed);
    };
    Ok(serial == target.serial.as_slice() && name_hash == name.as_slice() && key_hash == key.as_slice())
}

/// Whether `signature` over `message` verifies with the key of `spki`,
/// using the algorithm rustls's provider has for this pair of algorithm
/// identifiers.
fn check_signature(spki: &[u8], signature_algorithm: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let Some((key_algorithm, key)) = request::spki_parts(spki) else {
        return false;
    };
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    provider
        .signature_verification_algorithms
        .all
        .iter()
        .filter(|alg| {
            alg.signature_alg_id().as_ref() == signature_algorithm
                && alg.public_key_alg_id().as_ref() == key_algorithm
        })
        .any(|alg| alg.verify_signature(key, message, signature).is_ok())
}

/// Whether one of the response's certificates was issued by the target's
/// issuer for OCSP signing, is current, and signed the response.
fn signed_by_delegate(
    certs: Option<Element<'_>>,
    target: &Target,
    signature_algorithm: &[u8],
    message: &[u8],
    signature: &[u8],
    now: SystemTime,
) -> Result<bool, Refused> {
    let Some(certs) = certs else {
        return Ok(false);
    };
    let mut list = certs.inner().expect(der::SEQUENCE)?.inner();
    while !list.is_empty() {
        let cert = list.expect(der::SEQUENCE)?;
        let mut parts = cert.inner();
        let cert_tbs = parts.expect(der::SEQUENCE)?.whole;
        let cert_algorithm = parts.expect(der::SEQUENCE)?.contents;
        let cert_signature = parts.expect(der::BIT_STRING)?.bits()?;
        if !check_signature(&target.issuer.spki, cert_algorithm, cert_tbs, cert_signature) {
            continue;
        }
        let Ok((_, parsed)) = X509Certificate::from_der(cert.whole) else {
            continue;
        };
        let for_ocsp = matches!(parsed.extended_key_usage(), Ok(Some(eku)) if eku.value.ocsp_signing);
        let unix = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let current = i64::try_from(unix).is_ok_and(|t| {
            parsed.validity().not_before.timestamp() <= t && t <= parsed.validity().not_after.timestamp()
        });
        if for_ocsp
            && current
            && parsed.issuer().as_raw() == target.issuer.name.as_slice()
            && check_signature(parsed.public_key().raw, signature_algorithm, message, signature)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A GeneralizedTime, read by x509-parser as certificates' times are.
fn time(element: Element<'_>) -> Result<SystemTime, Refused> {
    let (rest, time) = ASN1Time::from_der(element.whole).map_err(|_| Refused::Malformed)?;
    let seconds = u64::try_from(time.timestamp()).map_err(|_| Refused::Malformed)?;
    if !rest.is_empty() || !time.is_generalizedtime() {
        return Err(Refused::Malformed);
    }
    Ok(UNIX_EPOCH + Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Result<SystemTime, Refused> {
        let encoded = der::wrap(der::GENERALIZED_TIME, text.as_bytes());
        time(Reader::new(&encoded).next().unwrap())
    }

    fn secs(t: SystemTime) -> u64 {
        t.duration_since(UNIX_EPOCH).unwrap().as_secs()
    }

    #[test]
    fn generalized_times() {
        assert_eq!(secs(at("19700101000000Z").unwrap()), 0);
        assert_eq!(secs(at("20000301000000Z").unwrap()), 951_868_800);
        assert_eq!(secs(at("20261207213000Z").unwrap()), 1_796_679_000);
        assert_eq!(secs(at("20261207213000.123Z").unwrap()), 1_796_679_000);
        for bad in [
            "20261207213000",
            "2026120721300Z",
            "20261307213000Z",
            "2026120721300aZ",
            "19691231235959Z",
        ] {
            assert_eq!(at(bad), Err(Refused::Malformed), "{bad}");
        }
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        let target = Target {
            url: "http://ocsp.test/".into(),
            serial: vec![1],
            issuer: request::Issuer {
                name: vec![0x30, 0],
                spki: vec![0x30, 0],
            },
        };
        let now = SystemTime::now();
        let mut inputs: Vec<Vec<u8>> = vec![Vec::new(), vec![0x30], b"<html>".to_vec()];
        inputs.push(der::wrap(der::SEQUENCE, &der::wrap(der::ENUMERATED, &[3])));
        inputs.push(der::wrap(der::SEQUENCE, &der::wrap(der::ENUMERATED, &[0])));
        for input in &inputs {
            assert!(verify(input, &target, now).is_err());
        }
        assert_eq!(verify(&inputs[3], &target, now), Err(Refused::Status(3)));
        // Every prefix of a plausible structure fails cleanly.
        let mut nested = der::wrap(der::OID, BASIC);
        nested.extend(der::wrap(
            der::OCTET_STRING,
            &der::wrap(der::SEQUENCE, &[0x30, 0x03, 0x02, 0x01]),
        ));
        let mut outer = der::wrap(der::ENUMERATED, &[0]);
        outer.extend(der::wrap(der::explicit(0), &der::wrap(der::SEQUENCE, &nested)));
        let whole = der::wrap(der::SEQUENCE, &outer);
        for end in 0..=whole.len() {
            assert!(verify(&whole[..end], &target, now).is_err());
        }
    }
}
