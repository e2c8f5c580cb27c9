//! Client certificates (mutual TLS): the rustls verifier the listeners use
//! when `[tls.client_auth]` is configured, and what a failed handshake says
//! about the client's certificate.
//!
//! The chain is verified by rustls' webpki verifier against the `ca`
//! bundle (extended key usage clientAuth, validity, signatures). With
//! `pinned_sha256`, the leaf's fingerprint must also be one of the pins,
//! checked only once the chain verified. A certificate that is presented
//! and fails either check ends the handshake in both modes; `optional`
//! only lets a client present none.

use std::io;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Version;

use super::certs::{self, FileRole};
use super::Initial;
use crate::config::{ClientAuthConfig, ClientAuthMode, ConfigError, ConfigErrors, TlsConfig};

/// Everything `[tls]` names, read now: the certificates to serve (see
/// [`super::load_initial`]) and, with `[tls.client_auth]`, the client
/// certificate verifier. The problems of both are reported together.
pub fn load_all(tls: &TlsConfig) -> Result<(Initial, Option<Arc<dyn ClientCertVerifier>>), ConfigErrors> {
    let initial = super::load_initial(tls);
    let client_auth = tls.client_auth.as_ref().map(verifier).transpose();
    match (initial, client_auth) {
        (Ok(initial), Ok(client_auth)) => Ok((initial, client_auth)),
        (initial, client_auth) => Err(ConfigErrors(
            initial
                .err()
                .into_iter()
                .flatten()
                .chain(client_auth.err())
                .collect(),
        )),
    }
}

/// The verifier for `config`, with the CA bundle read and checked now.
/// A problem with the bundle is a configuration error at `ca`.
pub fn verifier(config: &ClientAuthConfig) -> Result<Arc<dyn ClientCertVerifier>, ConfigError> {
    let error = |message: String, hint: &str| {
        ConfigError::new(config.ca_origin.clone(), "tls.client_auth.ca", message, hint)
    };
    let roots = roots(config).map_err(|(message, hint)| error(message, hint))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    if config.mode == ClientAuthMode::Optional {
        builder = builder.allow_unauthenticated();
    }
    let chain = builder.build().map_err(|e| {
        error(
            format!("the client CA bundle {} cannot be used: {e}", config.ca.display()),
            HINT,
        )
    })?;
    if config.pinned_sha256.is_empty() {
        return Ok(chain);
    }
    Ok(Arc::new(Pinned {
        chain,
        pins: config.pinned_sha256.clone(),
    }))
}

const HINT: &str = "point ca at the PEM file of the CA certificate(s) that issue the client certificates (`openssl x509 -in clients-ca.pem -noout -subject` shows one)";

/// The trust anchors of the `ca` bundle; errors are (message, hint).
fn roots(config: &ClientAuthConfig) -> Result<RootCertStore, (String, &'static str)> {
    let path = &config.ca;
    let bytes = certs::read_file(FileRole::Cert, path).map_err(|e| (e.to_string(), HINT))?;
    let mut roots = RootCertStore::empty();
    for (index, der) in CertificateDer::pem_slice_iter(&bytes).enumerate() {
        let number = index + 1;
        let der = der.map_err(|e| {
            (
                format!("{}: certificate {number} is not valid PEM: {e}", path.display()),
                HINT,
            )
        })?;
        // RFC 5280 4.2.1.9: a version 3 CA certificate says CA:TRUE in
        // basicConstraints. Version 1 roots have no extensions at all.
        if let Ok((_, cert)) = X509Certificate::from_der(der.as_ref()) {
            let ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
            if cert.version() == X509Version::V3 && !ca {
                return Err((
                    format!(
                        "{}: certificate {number} ({}) is not a CA certificate (its basicConstraints do not say CA:TRUE), so no client certificate can chain to it",
                        path.display(),
                        cert.subject()
                    ),
                    "ca takes the CA that signed the client certificates; to accept only some client certificates, list their fingerprints in pinned_sha256",
                ));
            }
        }
        roots.add(der).map_err(|e| {
            (
                format!(
                    "{}: certificate {number} cannot be a trust anchor: {e}",
                    path.display()
                ),
                HINT,
            )
        })?;
    }
    if roots.is_empty() {
        let holds_key = bytes.windows(11).any(|w| w == b"PRIVATE KEY");
        let what = if holds_key {
            "holds a private key but no certificate"
        } else {
            "holds no certificate (no -----BEGIN CERTIFICATE----- block)"
        };
        return Err((format!("{} {what}", path.display()), HINT));
    }
    Ok(roots)
}

/// The chain verifier, then the pins.
#[derive(Debug)]
struct Pinned {
    chain: Arc<dyn ClientCertVerifier>,
    pins: Vec<[u8; 32]>,
}

impl ClientCertVerifier for Pinned {
    fn offer_client_auth(&self) -> bool {
        self.chain.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.chain.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.chain.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.chain.verify_client_cert(end_entity, intermediates, now)?;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, end_entity.as_ref());
        if self.pins.iter().any(|pin| pin[..] == *digest.as_ref()) {
            Ok(verified)
        } else {
            // A valid certificate refused by policy: the access_denied alert.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}

/// Why a handshake failed because of the client's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// None was presented where one is required.
    Missing = 0,
    /// It did not verify against `ca` (unknown issuer, expired, wrong
    /// usage, bad signature).
    Invalid = 1,
    /// It verified, but its fingerprint is not in `pinned_sha256`.
    NotPinned = 2,
}

impl Rejection {
    /// The reason label of `portcullis_tls_client_cert_rejected_total`.
    pub fn label(self) -> &'static str {
        match self {
            Rejection::Missing => "missing",
            Rejection::Invalid => "invalid",
            Rejection::NotPinned => "not_pinned",
        }
    }
}

/// The client-certificate reason for a failed server handshake, if that
/// was the reason. A server verifies no other certificate, so any
/// certificate error in its handshake is about the client's.
pub fn rejection(error: &io::Error) -> Option<Rejection> {
    match error.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::NoCertificatesPresented => Some(Rejection::Missing),
        rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure) => {
            Some(Rejection::NotPinned)
        }
        rustls::Error::InvalidCertificate(_) => Some(Rejection::Invalid),
        _ => None,
    }
}
