//! Trust for `https://` upstreams: one rustls `ClientConfig` per route, made
//! at start from the route's `upstream_ca` file, from the system trust store
//! when it names none, or, with `upstream_insecure_skip_verify`, from a
//! verifier that accepts any certificate.
//!
//! Everything that can be wrong is found here, before the first request,
//! naming the route and the file: a CA file that is missing or holds no
//! certificate, an empty system store. `portcullis check` runs the same
//! code. Nothing falls back to another source of trust, and nothing falls
//! back to an unverified connection.

use std::path::Path;
use std::sync::Arc;

use rustls::version::{TLS12, TLS13};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

use super::insecure::AcceptAnyCertificate;
use crate::config::{ConfigError, ConfigErrors, RouteConfig, UpstreamTls, UpstreamTrust};
use crate::tls::certs::{self, FileRole};

/// What an `https://` route's connector needs.
#[derive(Debug, Clone)]
pub struct RouteTls {
    pub config: Arc<ClientConfig>,
    /// Sent in SNI and checked against the certificate.
    pub server_name: ServerName<'static>,
}

/// The TLS of every route, in the order of `routes` (`None` for plain
/// ones), or every reason it cannot be had. Logs a warning for each route
/// that skips verification, so that every start says so.
pub fn load(routes: &[RouteConfig]) -> Result<Vec<Option<RouteTls>>, ConfigErrors> {
    let mut system: Option<Result<Arc<RootCertStore>, String>> = None;
    let mut errors = Vec::new();
    let mut loaded = Vec::with_capacity(routes.len());
    for route in routes {
        let Some(tls) = &route.upstream_tls else {
            loaded.push(None);
            continue;
        };
        let roots = match &tls.trust {
            UpstreamTrust::CaFile { path, origin } => ca_file(path).map(Some).map_err(|message| {
                ConfigError::new(
                    origin.clone(),
                    format!("{}.upstream_ca", tls.route_key),
                    message,
                    "upstream_ca names a PEM file with the certificate of the CA that signed the \
                     upstream's certificate; remove upstream_ca to use the system trust store instead",
                )
            }),
            UpstreamTrust::System => match system.get_or_insert_with(system_roots) {
                Ok(roots) => Ok(Some(roots.clone())),
                Err(reason) => Err(ConfigError::new(
                    tls.upstream_origin.clone(),
                    format!("{}.upstream", tls.route_key),
                    format!(
                        "no upstream_ca is set for {}, and the system trust store to verify it \
                         against has no certificate ({reason})",
                        route.upstream
                    ),
                    "set upstream_ca to the PEM file of the CA that signed the upstream's certificate, \
                     for example: upstream_ca = \"/etc/portcullis/upstream-ca.pem\"; or install the \
                     system's CA certificates (Debian: the ca-certificates package)",
                )),
            },
            UpstreamTrust::InsecureSkipVerify => {
                tracing::warn!(
                    route = %route.path,
                    upstream = %route.upstream,
                    "upstream_insecure_skip_verify = true: the upstream's certificate is NOT verified, \
                     so anyone on the network path can impersonate it; set upstream_ca instead"
                );
                Ok(None)
            }
        };
        let made = roots.and_then(|roots| {
            client_config(roots).map_err(|e| {
                ConfigError::new(
                    tls.upstream_origin.clone(),
                    format!("{}.upstream", tls.route_key),
                    format!("cannot build the TLS configuration for {}: {e}", route.upstream),
                    "",
                )
            })
        });
        match (made, server_name(route, tls)) {
            (Ok(config), Ok(server_name)) => loaded.push(Some(RouteTls { config, server_name })),
            (made, name) => {
                errors.extend(made.err());
                errors.extend(name.err());
            }
        }
    }
    if errors.is_empty() {
        Ok(loaded)
    } else {
        Err(ConfigErrors::from(errors))
    }
}

/// The name to ask the upstream for: `upstream_server_name`, else its host.
fn server_name(route: &RouteConfig, tls: &UpstreamTls) -> Result<ServerName<'static>, ConfigError> {
    let name = tls.server_name.as_deref().unwrap_or(&route.upstream.host);
    // The configuration checked both; this only keeps a surprise from
    // becoming a panic.
    ServerName::try_from(name.to_owned()).map_err(|e| {
        ConfigError::new(
            tls.upstream_origin.clone(),
            format!("{}.upstream_server_name", tls.route_key),
            format!("`{name}` cannot be checked against a certificate: {e}"),
            "set upstream_server_name to a DNS name or IP address the upstream's certificate covers",
        )
    })
}

/// A client configuration for one upstream: TLS 1.2 and 1.3, ALPN
/// `http/1.1` only (the upstream leg is HTTP/1.1), verified against `roots`,
/// or not verified at all when `roots` is `None`.
fn client_config(roots: Option<Arc<RootCertStore>>) -> Result<Arc<ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder =
        ClientConfig::builder_with_provider(provider.clone()).with_protocol_versions(&[&TLS13, &TLS12])?;
    let builder = match roots {
        Some(roots) => builder.with_root_certificates(roots),
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate::new(&provider))),
    };
    let mut config = builder.with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The certificates of an `upstream_ca` file, every one of them a trust anchor.
fn ca_file(path: &Path) -> Result<Arc<RootCertStore>, String> {
    let pem = certs::read_file(FileRole::Cert, path).map_err(|e| e.to_string())?;
    let mut roots = RootCertStore::empty();
    for (index, der) in CertificateDer::pem_slice_iter(&pem).enumerate() {
        let der = der.map_err(|e| {
            format!(
                "CA file {} is not valid PEM ({}); copy it again from its source",
                path.display(),
                certs::pem_error_text(&e)
            )
        })?;
        roots.add(der).map_err(|e| {
            format!(
                "certificate #{} in CA file {} cannot be a trust anchor: {e}",
                index + 1,
                path.display()
            )
        })?;
    }
    if roots.is_empty() {
        return Err(format!(
            "CA file {} holds no certificate: expected PEM '-----BEGIN CERTIFICATE-----' blocks \
             (a binary DER file converts with `openssl x509 -inform der -in {0} -out ca.pem`)",
            path.display()
        ));
    }
    Ok(Arc::new(roots))
}

/// The system trust store, read once per start and only when a route
/// needs it. `SSL_CERT_FILE` and `SSL_CERT_DIR` replace it, as for OpenSSL.
fn system_roots() -> Result<Arc<RootCertStore>, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    for error in &found.errors {
        tracing::debug!(%error, "part of the system trust store could not be read");
    }
    if added > 0 {
        tracing::debug!(added, ignored, "system trust store loaded for https upstreams");
        return Ok(Arc::new(roots));
    }
    let reasons: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
    Err(match (reasons.is_empty(), ignored) {
        (true, 0) => "it holds none".to_owned(),
        (true, n) => format!("none of its {n} certificates could be parsed"),
        (false, _) => reasons.join("; "),
    })
}
