//! Mutual TLS from the client's side: client certificates issued by a test
//! CA, TLS clients (HTTP/1.1 or HTTP/2) that present one or none, and the
//! error that ended a refused connection.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::ClientConfig;
use tokio::net::TcpStream;

use super::{Body, TestCa};

/// A client certificate and its key.
pub struct ClientCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub leaf_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl ClientCert {
    /// SHA-256 of the certificate, lowercase hex, as the proxy forwards it.
    pub fn sha256(&self) -> String {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, self.leaf_der.as_ref());
        digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The fingerprint as `openssl x509 -fingerprint -sha256` prints it:
    /// upper case, colons between bytes.
    pub fn openssl_fingerprint(&self) -> String {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, self.leaf_der.as_ref());
        digest
            .as_ref()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    }
}

impl TestCa {
    /// A client certificate (extended key usage clientAuth) with subject
    /// `O=portcullis tests, CN=<cn>`, signed by this CA.
    pub fn issue_client(&self, cn: &str) -> ClientCert {
        self.issue_leaf(cn, ExtendedKeyUsagePurpose::ClientAuth)
    }

    /// `issue_client`, but for TLS servers only (serverAuth).
    pub fn issue_server_only(&self, cn: &str) -> ClientCert {
        self.issue_leaf(cn, ExtendedKeyUsagePurpose::ServerAuth)
    }

    fn issue_leaf(&self, cn: &str, usage: ExtendedKeyUsagePurpose) -> ClientCert {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "portcullis tests");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        ClientCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            leaf_der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }

    /// A client configuration that trusts this CA (the server's), offers
    /// `alpn`, speaks only `version` when given, and presents `client`
    /// when asked for a certificate.
    pub fn mtls_client(
        &self,
        client: Option<&ClientCert>,
        alpn: &[&[u8]],
        version: Option<&'static rustls::SupportedProtocolVersion>,
    ) -> Arc<ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider);
        let builder = match version {
            Some(v) => builder.with_protocol_versions(&[v]).unwrap(),
            None => builder.with_safe_default_protocol_versions().unwrap(),
        };
        let builder = builder.with_root_certificates(roots);
        let mut config = match client {
            Some(c) => builder
                .with_client_auth_cert(
                    vec![c.leaf_der.clone()],
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(c.key_der.clone())),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

/// A response, or what ended the attempt.
pub type Outcome = Result<(StatusCode, String), Box<dyn std::error::Error + Send + Sync>>;

/// Sends `req` on a new connection made with `config`, over HTTP/2 when
/// `config` offers only h2, else HTTP/1.1, and reads the whole response.
/// With TLS 1.3 a client learns that its certificate was refused only
/// when it reads, so a refusal may come from any step.
pub async fn send(addr: SocketAddr, config: Arc<ClientConfig>, req: Request<Body>) -> Outcome {
    let h2 = config.alpn_protocols == [b"h2".to_vec()];
    let tcp = TcpStream::connect(addr).await?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    // The connection task holds the real error (a TLS alert, say); the
    // request only learns that the connection is gone.
    let (sent, conn) = if h2 {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await?;
        let conn = tokio::spawn(conn);
        (send.send_request(req).await, conn)
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        let conn = tokio::spawn(conn);
        (send.send_request(req).await, conn)
    };
    let response = match sent {
        Ok(response) => response,
        Err(e) => {
            return Err(match conn.await {
                Ok(Err(conn_error)) => conn_error.into(),
                _ => e.into(),
            })
        }
    };
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
