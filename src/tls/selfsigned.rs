//! An in-memory self-signed certificate, so that the proxy can serve TLS on
//! first start or in development before real certificates exist.
//!
//! Nothing is written to disk: a fresh key on every start means there is no
//! long-lived private key lying around that nobody manages.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose, SerialNumber,
    PKCS_ECDSA_P256_SHA256,
};

use super::certs::{self, CertError, LoadedCert};

/// Names the certificate always carries, so local tools can connect by any of
/// the usual loopback spellings.
pub const BASE_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Stands in for a file path in error messages about the generated pair.
const PSEUDO_PATH: &str = "(generated self-signed certificate)";

/// Backdating absorbs clock skew between this host and its clients.
const BACKDATE: Duration = Duration::from_secs(3600);
const LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// Generates an EC P-256 self-signed certificate for localhost, 127.0.0.1,
/// ::1 and `extra_names` (DNS names or IP addresses), valid from an hour ago
/// for one year, and validates it like a loaded one.
pub fn generate(extra_names: &[String]) -> Result<LoadedCert, CertError> {
    let generate_err = |detail: String| CertError::Generate { detail };

    let mut names: Vec<String> = BASE_NAMES.iter().map(|s| (*s).to_owned()).collect();
    for name in extra_names {
        let n = certs::normalize_name(name);
        if !names.contains(&n) {
            names.push(n);
        }
    }

    let mut params = CertificateParams::new(names)
        .map_err(|e| generate_err(format!("a name is not a valid DNS name or IP: {e}")))?;
    params
        .distinguished_name
        .push(DnType::CommonName, "portcullis self-signed");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));

    // rcgen wants the `time` crate's type; counting from its epoch avoids a
    // direct dependency on that crate just to say "now".
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| generate_err("the system clock is before 1970".to_owned()))?;
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + since_epoch.saturating_sub(BACKDATE);
    params.not_after = epoch + (since_epoch + LIFETIME);

    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|e| generate_err(format!("key generation failed: {e}")))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| generate_err(format!("signing failed: {e}")))?;

    let path = Path::new(PSEUDO_PATH);
    certs::from_pem(
        cert.pem().as_bytes(),
        key.serialize_pem().as_bytes(),
        &[],
        path,
        path,
    )
}

/// 16 random bytes with the top bit cleared (so DER needs no sign padding and
/// the value is positive) and the next bit set (so it is never zero and
/// always encodes in exactly 16 bytes).
fn random_serial() -> Result<[u8; 16], CertError> {
    let mut serial = [0u8; 16];
    aws_lc_rs::rand::fill(&mut serial).map_err(|_| CertError::Generate {
        detail: "the system random number generator failed".to_owned(),
    })?;
    serial[0] = (serial[0] & 0x7f) | 0x40;
    Ok(serial)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_loopback_names_and_extras() {
        let cert = generate(&["Dev.Example.test".to_owned(), "10.0.0.7".to_owned()]).unwrap();
        assert_eq!(
            cert.facts.sans,
            ["localhost", "127.0.0.1", "::1", "dev.example.test", "10.0.0.7"]
        );
        assert_eq!(cert.names, ["localhost", "dev.example.test"]);
        assert_eq!(cert.certified.cert.len(), 1);
        assert!(cert.facts.subject.contains("portcullis self-signed"));
    }

    #[test]
    fn validity_is_an_hour_back_to_a_year_ahead() {
        let now = SystemTime::now();
        let cert = generate(&[]).unwrap();
        let back = now.duration_since(cert.facts.not_before).unwrap();
        assert!(back > Duration::from_secs(3500) && back < Duration::from_secs(3700));
        let ahead = cert.facts.not_after.duration_since(now).unwrap();
        assert!(ahead > LIFETIME - Duration::from_secs(100) && ahead <= LIFETIME);
    }

    #[test]
    fn serials_are_random_and_positive() {
        let a = generate(&[]).unwrap().facts.serial;
        let b = generate(&[]).unwrap().facts.serial;
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        let first = u8::from_str_radix(&a[..2], 16).unwrap();
        assert_eq!(first & 0xc0, 0x40);
    }

    #[test]
    fn bad_extra_name_is_a_generate_error() {
        let err = generate(&["bücher.example".to_owned()]).unwrap_err();
        assert!(matches!(err, CertError::Generate { .. }), "{err}");
        assert!(err.path().is_none());
    }
}
