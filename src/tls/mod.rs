//! TLS for the listeners: the rustls server configuration (versions, ALPN,
//! session resumption) and loading the configured certificates into the
//! store that answers each handshake.

pub mod certs;
pub mod client_auth;
pub(crate) mod ocsp;
pub mod peer;
pub mod pieces;
pub mod policy;
pub mod reload;
pub mod selfsigned;
pub mod store;
mod unknown_sni;

use std::sync::Arc;

use rustls::server::danger::ClientCertVerifier;
use rustls::version::{TLS12, TLS13};
use rustls::{ServerConfig, SupportedProtocolVersion};

use crate::config::{Bootstrap, ConfigError, ConfigErrors, TlsConfig, TlsVersion, UnknownSni};
use certs::{CertError, LoadedCert};
use reload::Slot;
use store::CertStore;

static ALL_VERSIONS: &[&SupportedProtocolVersion] = &[&TLS13, &TLS12];
static ONLY_TLS13: &[&SupportedProtocolVersion] = &[&TLS13];

/// The rustls configuration of the listeners. Certificates are not part of
/// it: they come from `store` at every handshake, which is what lets a
/// renewed certificate take effect without rebuilding anything.
/// `client_auth` asks clients for certificates (see [`client_auth`]);
/// `None` asks for none.
pub fn server_config(
    tls: &TlsConfig,
    store: Arc<CertStore>,
    client_auth: Option<Arc<dyn ClientCertVerifier>>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let provider = Arc::new(policy::provider(tls));
    let versions = match tls.min_version {
        TlsVersion::V1_2 => ALL_VERSIONS,
        TlsVersion::V1_3 => ONLY_TLS13,
    };
    let builder = ServerConfig::builder_with_provider(provider).with_protocol_versions(versions)?;
    let builder = match client_auth {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = match tls.unknown_sni {
        UnknownSni::Default => builder.with_cert_resolver(store),
        UnknownSni::Reject => builder.with_cert_resolver(Arc::new(unknown_sni::RejectUnknown(store))),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // The server's order of cipher suites wins (strongest first), as
    // testssl.sh and most audit checklists expect of an edge proxy.
    config.ignore_client_order = true;
    let resumption = policy::resumption(tls.session_resumption)?;
    config.ticketer = resumption.ticketer;
    config.session_storage = resumption.storage;
    config.send_tls13_tickets = resumption.tls13_tickets;
    Ok(Arc::new(config))
}

/// The certificates to serve at start.
pub struct Initial {
    pub certs: Vec<Arc<LoadedCert>>,
    /// True when no certificate was configured and a temporary one was made.
    pub self_signed: bool,
    /// The configured pairs, for the reloader.
    pub slots: Vec<Slot>,
    /// Indexes of the slots served by a bootstrap certificate because their
    /// files do not exist yet.
    pub bootstrapped: Vec<usize>,
}

/// Loads every configured pair, or reports every reason they cannot be
/// served. With `bootstrap = "self-signed"`, a pair whose files do not
/// exist yet is served by a temporary certificate instead.
pub fn load_initial(tls: &TlsConfig) -> Result<Initial, ConfigErrors> {
    if tls.certificates.is_empty() {
        let cert = selfsigned::generate(&[]).map_err(|e| {
            ConfigErrors::from(vec![ConfigError::new(
                crate::config::Origin::whole_file("embedded default configuration"),
                "tls",
                format!("cannot make the temporary self-signed certificate: {e}"),
                "configure [tls] cert and key",
            )])
        })?;
        return Ok(Initial {
            certs: vec![Arc::new(cert)],
            self_signed: true,
            slots: Vec::new(),
            bootstrapped: Vec::new(),
        });
    }
    let mut initial = Initial {
        certs: Vec::new(),
        self_signed: false,
        slots: Vec::new(),
        bootstrapped: Vec::new(),
    };
    let mut errors = Vec::new();
    for (index, source) in tls.certificates.iter().enumerate() {
        let loaded = match reload::read_pair(source, &source.names) {
            Ok((cert, hash)) => Ok((cert, Some(hash))),
            Err(CertError::NotFound { .. }) if tls.bootstrap == Bootstrap::SelfSigned => {
                initial.bootstrapped.push(index);
                selfsigned::generate(&source.names).map(|cert| (cert, None))
            }
            Err(e) => Err(e),
        };
        match loaded {
            Ok((cert, served)) => {
                initial.certs.push(Arc::new(cert));
                initial.slots.push(Slot {
                    source: source.clone(),
                    served,
                });
            }
            Err(e) => {
                let (origin, key) = if e.is_key_problem() {
                    (&source.key_origin, format!("{}.key", source.config_key))
                } else {
                    (&source.cert_origin, format!("{}.cert", source.config_key))
                };
                errors.push(ConfigError::new(origin.clone(), key, e.to_string(), ""));
            }
        }
    }
    if errors.is_empty() {
        Ok(initial)
    } else {
        Err(ConfigErrors::from(errors))
    }
}
