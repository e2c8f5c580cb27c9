//! The TLS policy as clients see it: the configured cipher suites and
//! key-exchange groups are the ones negotiated (and nothing else is), the
//! post-quantum hybrid is preferred by default, and session resumption
//! survives a certificate reload, or is off when configured so.

mod support;

use std::sync::Arc;

use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::pki_types::ServerName;
use rustls::{CipherSuite, HandshakeKind, NamedGroup, ProtocolVersion};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A client trusting `ca`, offering `versions`, and only the suites and
/// groups `narrow` keeps of the provider's.
fn client(
    ca: &TestCa,
    versions: &[&'static rustls::SupportedProtocolVersion],
    narrow: impl FnOnce(&mut CryptoProvider),
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der.clone()).unwrap();
    let mut provider = aws_lc_rs::default_provider();
    narrow(&mut provider);
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

fn all_of_them(_: &mut CryptoProvider) {}

const BOTH: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];
const TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];

struct Negotiated {
    suite: CipherSuite,
    group: Option<NamedGroup>,
    version: ProtocolVersion,
    kind: HandshakeKind,
}

/// Connects, makes one request (which also delivers TLS 1.3 session
/// tickets to the client), and reports what the handshake settled.
async fn exchange(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<Negotiated> {
    let tcp = TcpStream::connect(addr).await?;
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut response = Vec::new();
    tls.read_to_end(&mut response).await?;
    assert!(
        response.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&response)
    );
    let conn = tls.get_ref().1;
    Ok(Negotiated {
        suite: conn.negotiated_cipher_suite().unwrap().suite(),
        group: conn.negotiated_key_exchange_group().map(|g| g.name()),
        version: conn.protocol_version().unwrap(),
        kind: conn.handshake_kind().unwrap(),
    })
}

async fn start(site: &Site, origin: &Origin, extra_tls: &str) -> ProxyHandle {
    let toml = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n\n\
         [tls]\ncert = \"fullchain.pem\"\nkey = \"privkey.pem\"\nwatch = false\npoll_interval = \"0s\"\n{extra_tls}\n\n{}",
        route("/", &origin.url(), "")
    );
    ProxyHandle::start(&toml, site.dir.path()).await
}

#[tokio::test]
async fn configured_cipher_suites_are_the_only_ones() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let proxy = start(
        &site,
        &origin,
        "cipher_suites = [\"TLS13_CHACHA20_POLY1305_SHA256\", \"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256\"]",
    )
    .await;

    // A client offering everything gets the configured suite, over each version.
    let got = exchange(proxy.addr, client(&site.ca, BOTH, all_of_them))
        .await
        .unwrap();
    assert_eq!(got.suite, CipherSuite::TLS13_CHACHA20_POLY1305_SHA256);
    let got = exchange(proxy.addr, client(&site.ca, TLS12, all_of_them))
        .await
        .unwrap();
    assert_eq!(
        got.suite,
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
    );

    // One offering only AES gets no handshake at all.
    let aes_only = |p: &mut CryptoProvider| {
        p.cipher_suites
            .retain(|s| !format!("{:?}", s.suite()).contains("CHACHA20"));
    };
    assert!(exchange(proxy.addr, client(&site.ca, BOTH, aes_only))
        .await
        .is_err());
    proxy.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_default_policy_prefers_the_post_quantum_hybrid() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let proxy = start(&site, &origin, "").await;
    let got = exchange(proxy.addr, client(&site.ca, BOTH, all_of_them))
        .await
        .unwrap();
    assert_eq!(got.version, ProtocolVersion::TLSv1_3);
    assert_eq!(got.group, Some(NamedGroup::X25519MLKEM768));
    // The server's order wins: AES-256 first, whatever the client prefers.
    let chacha_first = |p: &mut CryptoProvider| p.cipher_suites.reverse();
    let got = exchange(proxy.addr, client(&site.ca, BOTH, chacha_first))
        .await
        .unwrap();
    assert_eq!(got.suite, CipherSuite::TLS13_AES_256_GCM_SHA384);
    proxy.shutdown().await.unwrap();
}

#[tokio::test]
async fn configured_groups_are_the_only_ones() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let proxy = start(&site, &origin, "groups = [\"secp384r1\", \"X25519\"]").await;
    // TLS 1.3: a key share the client already sent for an allowed group
    // is taken (as OpenSSL does, saving a round trip)...
    let got = exchange(proxy.addr, client(&site.ca, BOTH, all_of_them))
        .await
        .unwrap();
    assert_eq!(got.group, Some(NamedGroup::X25519));
    // ...and a client whose shares are all for groups not allowed is asked
    // for an allowed one.
    let hybrid_then_p384 = |p: &mut CryptoProvider| {
        p.kx_groups
            .retain(|g| matches!(g.name(), NamedGroup::X25519MLKEM768 | NamedGroup::secp384r1))
    };
    let got = exchange(proxy.addr, client(&site.ca, BOTH, hybrid_then_p384))
        .await
        .unwrap();
    assert_eq!(got.group, Some(NamedGroup::secp384r1));
    // TLS 1.2: the client's first allowed group.
    let nist = |p: &mut CryptoProvider| {
        p.kx_groups
            .retain(|g| matches!(g.name(), NamedGroup::secp256r1 | NamedGroup::secp384r1))
    };
    let got = exchange(proxy.addr, client(&site.ca, TLS12, nist)).await.unwrap();
    assert_eq!(got.group, Some(NamedGroup::secp384r1));
    let p256_only = |p: &mut CryptoProvider| p.kx_groups.retain(|g| g.name() == NamedGroup::secp256r1);
    assert!(exchange(proxy.addr, client(&site.ca, BOTH, p256_only))
        .await
        .is_err());
    proxy.shutdown().await.unwrap();
}

/// Replaces the site's certificate and waits until new handshakes get it.
async fn renew(site: &Site, proxy: &ProxyHandle) {
    let renewed = site.ca.issue(&["localhost", "127.0.0.1"]);
    std::fs::write(site.path("privkey.pem"), &renewed.key_pem).unwrap();
    std::fs::write(site.path("fullchain.pem"), &renewed.chain_pem).unwrap();
    proxy.reload.reload_now();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let tls = tls_connect(proxy.addr, &site.ca, &[b"http/1.1"]).await;
        if tls.get_ref().1.peer_certificates().unwrap()[0] == renewed.leaf_der {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the renewed certificate is not served"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn sessions_resume_across_a_certificate_reload() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let proxy = start(&site, &origin, "").await;
    for versions in [BOTH, TLS12] {
        let returning = client(&site.ca, versions, all_of_them);
        assert_eq!(
            exchange(proxy.addr, returning.clone()).await.unwrap().kind,
            HandshakeKind::Full
        );
        assert_eq!(
            exchange(proxy.addr, returning.clone()).await.unwrap().kind,
            HandshakeKind::Resumed
        );
        renew(&site, &proxy).await;
        let after = exchange(proxy.addr, returning).await.unwrap();
        assert_eq!(
            after.kind,
            HandshakeKind::Resumed,
            "resumption was reset by the reload ({versions:?})"
        );
    }
    proxy.shutdown().await.unwrap();
}

#[tokio::test]
async fn session_resumption_can_be_turned_off() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let proxy = start(&site, &origin, "session_resumption = false").await;
    for versions in [BOTH, TLS12] {
        let returning = client(&site.ca, versions, all_of_them);
        for _ in 0..2 {
            let got = exchange(proxy.addr, returning.clone()).await.unwrap();
            assert_eq!(got.kind, HandshakeKind::Full, "{versions:?}");
        }
    }
    proxy.shutdown().await.unwrap();
}

/// The one configuration error `tls` (the body of a `[tls]` table) has.
fn tls_error(tls: &str) -> portcullis::config::ConfigError {
    let text = format!("[tls]\n{tls}\n\n[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:8080\"\n");
    match portcullis::config::from_str(&text, std::path::Path::new("proxy.toml")) {
        Ok(_) => panic!("expected an error for {tls}"),
        Err(errors) => {
            assert_eq!(errors.len(), 1, "expected one error, got:\n{errors}");
            errors.0[0].clone()
        }
    }
}

#[test]
fn policy_names_are_checked_and_explained() {
    let e = tls_error("cipher_suites = [\"TLS13_AES_128_GCM_SHA256\", \"RC4-SHA\"]");
    assert_eq!(e.key, "tls.cipher_suites[1]");
    assert_eq!((e.origin.line, e.origin.column), (2, 46));
    assert!(e.message.contains("not a cipher suite"), "{}", e.message);
    assert!(
        e.hint.contains("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
        "{}",
        e.hint
    );

    // nginx's OpenSSL spelling points at the name to write.
    let e = tls_error("cipher_suites = [\"TLS13_AES_128_GCM_SHA256\", \"ECDHE-RSA-AES128-GCM-SHA256\"]");
    assert_eq!(e.hint, "write \"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\"");
    let e = tls_error("cipher_suites = [\"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256\"]");
    assert!(e.message.contains("one cipher suite per string"), "{}", e.message);

    let e = tls_error("groups = [\"X25519\", \"brainpoolP256r1\"]");
    assert_eq!(e.key, "tls.groups[1]");
    assert!(
        e.hint.contains("X25519MLKEM768") && e.hint.contains("secp384r1"),
        "{}",
        e.hint
    );
    let e = tls_error("groups = [\"prime256v1\"]");
    assert_eq!(e.hint, "write \"secp256r1\"");

    let e = tls_error("ssl_ciphers = \"HIGH:!aNULL\"");
    assert!(e.hint.contains("cipher_suites"), "{}", e.hint);
}

#[test]
fn policies_that_leave_a_version_without_a_choice_are_refused() {
    let e = tls_error("cipher_suites = [\"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\"]");
    assert!(e.message.contains("no TLS 1.3 cipher suite"), "{}", e.message);
    let e = tls_error("cipher_suites = [\"TLS13_AES_128_GCM_SHA256\"]");
    assert!(
        e.message.contains("TLS 1.2 clients could not connect"),
        "{}",
        e.message
    );
    assert!(e.hint.contains("min_version = \"1.3\""), "{}", e.hint);
    let e = tls_error("groups = [\"X25519MLKEM768\"]");
    assert!(e.message.contains("TLS 1.2 cannot use them"), "{}", e.message);
    let e = tls_error("groups = []");
    assert!(e.message.contains("empty"), "{}", e.message);

    // With TLS 1.3 only, both are fine.
    let text = "[tls]\nmin_version = \"1.3\"\ncipher_suites = [\"TLS13_AES_128_GCM_SHA256\"]\n\
                groups = [\"X25519MLKEM768\"]\n\n[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:8080\"\n";
    let config = portcullis::config::from_str(text, std::path::Path::new("proxy.toml")).unwrap();
    assert_eq!(config.tls.cipher_suites, [CipherSuite::TLS13_AES_128_GCM_SHA256]);
    assert_eq!(config.tls.groups, [NamedGroup::X25519MLKEM768]);
}
