//! `portcullis gen-cert`: the built binary writes a development CA, a
//! server and a client certificate into a directory; openssl verifies
//! them, x509-parser reads their names, usages, serials and validity, and
//! the proxy serves the server certificate to clients that trust only the
//! generated CA.

mod support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{parse_x509_certificate, X509Certificate};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// The six files, relative to the output directory, with their modes.
const FILES: [(&str, u32); 6] = [
    ("ca/ca.crt", 0o644),
    ("ca/ca.key", 0o600),
    ("server/tls.crt", 0o644),
    ("server/tls.key", 0o600),
    ("client/tls.crt", 0o644),
    ("client/tls.key", 0o600),
];

// ---------------------------------------------------------------- helpers

fn gen_cert(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("gen-cert")
        .arg("--dir")
        .arg(dir)
        .args(args)
        .env_remove("PORTCULLIS_CONFIG")
        .output()
        .expect("run the portcullis binary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs gen-cert, asserts success, returns stdout.
fn gen_ok(dir: &Path, args: &[&str]) -> String {
    let o = gen_cert(dir, args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "gen-cert {args:?} failed\nstdout:\n{}\nstderr:\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

/// Runs gen-cert, asserts it fails with `code` and that stderr holds every
/// needle; returns stderr.
fn gen_fails(dir: &Path, args: &[&str], code: i32, needles: &[&str]) -> String {
    let o = gen_cert(dir, args);
    let err = text(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(code),
        "gen-cert {args:?}: exit code; stderr:\n{err}"
    );
    for n in needles {
        assert!(err.contains(n), "gen-cert {args:?}: stderr lacks {n:?}:\n{err}");
    }
    err
}

/// The DER certificates of a PEM file, in order.
fn certs_in(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()))
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()))
}

fn parse(der: &[u8]) -> X509Certificate<'_> {
    parse_x509_certificate(der).expect("an X.509 certificate").1
}

fn sans(cert: &X509Certificate<'_>) -> (Vec<String>, Vec<IpAddr>) {
    let ext = cert
        .subject_alternative_name()
        .expect("a well-formed SAN extension")
        .expect("a SAN extension");
    let (mut dns, mut ips) = (Vec::new(), Vec::new());
    for name in &ext.value.general_names {
        match name {
            GeneralName::DNSName(d) => dns.push(d.to_string()),
            GeneralName::IPAddress(b) => ips.push(match b.len() {
                4 => IpAddr::from(<[u8; 4]>::try_from(*b).unwrap()),
                16 => IpAddr::from(<[u8; 16]>::try_from(*b).unwrap()),
                n => panic!("an IP SAN of {n} bytes"),
            }),
            other => panic!("unexpected SAN {other:?}"),
        }
    }
    (dns, ips)
}

fn common_name(cert: &X509Certificate<'_>) -> String {
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The openssl command, or a loud failure: these tests need it.
fn openssl(args: &[&str], cwd: &Path) -> Output {
    Command::new("openssl")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the openssl command is needed for this test (apt-get install openssl)")
}

fn read_all(dir: &Path) -> Vec<Vec<u8>> {
    FILES
        .iter()
        .map(|(f, _)| std::fs::read(dir.join(f)).unwrap())
        .collect()
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

// ---------------------------------------------------------------- files

#[test]
fn writes_the_layout_with_key_files_private() {
    let tmp = tempfile::tempdir().unwrap();
    // Nested and not there yet: directories are created as needed.
    let dir = tmp.path().join("nested/certs");
    let out = gen_ok(&dir, &[]);
    for (file, mode) in FILES {
        let path = dir.join(file);
        let meta = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(meta.is_file(), "{file}");
        assert_eq!(
            meta.permissions().mode() & 0o777,
            mode,
            "{file}: mode {:o}",
            meta.permissions().mode()
        );
        assert!(
            out.contains(&path.display().to_string()),
            "stdout does not name {file}:\n{out}"
        );
    }
    // Nothing else: no temporary files left behind.
    for sub in ["ca", "server", "client"] {
        let names: Vec<String> = std::fs::read_dir(dir.join(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{sub}/ holds {names:?}");
    }
    // Leaf then CA, as certbot's fullchain.pem; ca.crt is the CA alone.
    let ca = certs_in(&dir.join("ca/ca.crt"));
    assert_eq!(ca.len(), 1);
    for leaf in ["server/tls.crt", "client/tls.crt"] {
        let chain = certs_in(&dir.join(leaf));
        assert_eq!(chain.len(), 2, "{leaf} is not leaf + CA");
        assert_eq!(chain[1], ca[0], "{leaf}: the second certificate is not the CA");
        assert_ne!(chain[0], ca[0]);
    }
}

#[test]
fn prints_how_to_use_and_trust_the_certificates() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("certs");
    let out = gen_ok(&dir, &[]);
    let d = dir.display();
    let abs = std::fs::canonicalize(&dir).unwrap();
    for needle in [
        format!("curl --cacert {d}/ca/ca.crt https://localhost:8443/"),
        format!("openssl s_client -connect localhost:8443 -CAfile {d}/ca/ca.crt"),
        format!("cp {d}/ca/ca.crt /usr/local/share/ca-certificates/portcullis-dev.crt"),
        "update-ca-certificates".to_owned(),
        "[tls]".to_owned(),
        format!("cert = \"{}/server/tls.crt\"", abs.display()),
        format!("key  = \"{}/server/tls.key\"", abs.display()),
        format!("--cert {d}/client/tls.crt --key {d}/client/tls.key"),
        "localhost, 127.0.0.1, ::1".to_owned(),
    ] {
        assert!(out.contains(&needle), "stdout lacks {needle:?}:\n{out}");
    }
}

// ---------------------------------------------------------------- contents

#[test]
fn openssl_verifies_the_server_and_client_certificates_against_the_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("certs");
    gen_ok(&dir, &[]);
    for (leaf, purpose) in [("server/tls.crt", "sslserver"), ("client/tls.crt", "sslclient")] {
        let o = openssl(
            &[
                "verify",
                "-x509_strict",
                "-purpose",
                purpose,
                "-CAfile",
                "ca/ca.crt",
                leaf,
            ],
            &dir,
        );
        assert!(
            o.status.success() && text(&o.stdout).contains(": OK"),
            "openssl verify {leaf} ({purpose}):\n{}{}",
            text(&o.stdout),
            text(&o.stderr)
        );
    }
    // The usages are not interchangeable.
    let o = openssl(
        &[
            "verify",
            "-purpose",
            "sslserver",
            "-CAfile",
            "ca/ca.crt",
            "client/tls.crt",
        ],
        &dir,
    );
    assert!(
        !o.status.success(),
        "the client certificate verified as a server certificate"
    );
    // A different CA does not verify them.
    let other = tmp.path().join("other");
    gen_ok(&other, &[]);
    let o = openssl(
        &[
            "verify",
            "-CAfile",
            &format!("{}/ca/ca.crt", other.display()),
            "server/tls.crt",
        ],
        &dir,
    );
    assert!(!o.status.success(), "verified against an unrelated CA");
}

#[test]
fn ca_server_and_client_extensions() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("certs");
    gen_ok(&dir, &[]);

    let ca_der = &certs_in(&dir.join("ca/ca.crt"))[0];
    let ca = parse(ca_der);
    let bc = ca
        .basic_constraints()
        .unwrap()
        .expect("basicConstraints on the CA");
    assert!(bc.critical && bc.value.ca, "CA:TRUE");
    assert_eq!(bc.value.path_len_constraint, Some(0));
    let ku = ca.key_usage().unwrap().expect("keyUsage on the CA").value;
    assert!(ku.key_cert_sign() && ku.crl_sign(), "CA key usage {ku:?}");
    assert_eq!(ca.subject(), ca.issuer(), "the CA is self-signed");

    let server_der = &certs_in(&dir.join("server/tls.crt"))[0];
    let server = parse(server_der);
    assert_eq!(server.issuer(), ca.subject());
    let eku = server
        .extended_key_usage()
        .unwrap()
        .expect("EKU on the server")
        .value;
    assert!(eku.server_auth && !eku.client_auth, "{eku:?}");
    let bc = server.basic_constraints().unwrap().map(|b| b.value.ca);
    assert_ne!(bc, Some(true), "the server certificate must not be a CA");

    let client_der = &certs_in(&dir.join("client/tls.crt"))[0];
    let client = parse(client_der);
    assert_eq!(client.issuer(), ca.subject());
    assert_eq!(common_name(&client), "portcullis-client");
    let eku = client
        .extended_key_usage()
        .unwrap()
        .expect("EKU on the client")
        .value;
    assert!(eku.client_auth && !eku.server_auth, "{eku:?}");
}

#[test]
fn server_names_include_loopback_and_the_given_names() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("certs");
    gen_ok(
        &dir,
        &[
            "--names",
            "a.example,B.Example.,10.1.2.3,fd00::7",
            "--names",
            "*.dev.example,localhost",
        ],
    );
    let der = &certs_in(&dir.join("server/tls.crt"))[0];
    let (dns, ips) = sans(&parse(der));
    assert_eq!(dns, ["localhost", "a.example", "b.example", "*.dev.example"]);
    assert_eq!(
        ips,
        [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
            "fd00::7".parse::<IpAddr>().unwrap(),
        ]
    );

    // Without --names: exactly the loopback names.
    let plain = tmp.path().join("plain");
    gen_ok(&plain, &[]);
    let der = &certs_in(&plain.join("server/tls.crt"))[0];
    let (dns, ips) = sans(&parse(der));
    assert_eq!(dns, ["localhost"]);
    assert_eq!(
        ips,
        [IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)]
    );
}

#[test]
fn keys_are_pkcs8_p256_and_match_their_certificates() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("certs");
    gen_ok(&dir, &[]);
    for (key, cert) in [
        ("ca/ca.key", "ca/ca.crt"),
        ("server/tls.key", "server/tls.crt"),
        ("client/tls.key", "client/tls.crt"),
    ] {
        let pem = std::fs::read(dir.join(key)).unwrap();
        assert!(
            text(&pem).starts_with("-----BEGIN PRIVATE KEY-----\n"),
            "{key} is not PKCS#8 PEM:\n{}",
            text(&pem)
        );
        let PrivateKeyDer::Pkcs8(pkcs8) = PrivateKeyDer::from_pem_slice(&pem).unwrap() else {
            panic!("{key} is not PKCS#8");
        };
        let pair = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            pkcs8.secret_pkcs8_der(),
        )
        .unwrap_or_else(|e| panic!("{key} is not a P-256 key: {e}"));
        use aws_lc_rs::signature::KeyPair as _;
        let der = &certs_in(&dir.join(cert))[0];
        let x509 = parse(der);
        assert_eq!(
            x509.public_key().subject_public_key.data.as_ref(),
            pair.public_key().as_ref(),
            "{key} does not belong to {cert}"
        );
    }
}

#[test]
fn serials_are_random_positive_and_128_bits() {
    let tmp = tempfile::tempdir().unwrap();
    let mut seen: Vec<Vec<u8>> = Vec::new();
    for run in ["one", "two", "three"] {
        let dir = tmp.path().join(run);
        gen_ok(&dir, &[]);
        for file in ["ca/ca.crt", "server/tls.crt", "client/tls.crt"] {
            let der = &certs_in(&dir.join(file))[0];
            let serial = parse(der).raw_serial().to_vec();
            // 128 bits with the top one cleared: 16 bytes, fewer only when
            // leading bytes happen to be zero, never a 17th sign byte.
            assert!(
                (12..=16).contains(&serial.len()),
                "{run}/{file}: serial of {} bytes",
                serial.len()
            );
            assert_eq!(serial[0] & 0x80, 0, "{run}/{file}: negative serial");
            assert!(serial.iter().any(|&b| b != 0), "{run}/{file}: zero serial");
            assert!(!seen.contains(&serial), "{run}/{file}: serial repeated");
            seen.push(serial);
        }
    }
    // At least one of nine is a full 16 bytes (each is with probability 127/128).
    assert!(seen.iter().any(|s| s.len() == 16), "{seen:?}");
}

#[test]
fn days_sets_the_validity_from_an_hour_ago() {
    let tmp = tempfile::tempdir().unwrap();
    for (days, args) in [
        (30i64, &["--days", "30"][..]),
        (365, &[][..]),
        (3650, &["--days", "3650"][..]),
    ] {
        let dir = tmp.path().join(format!("d{days}"));
        let before = unix_now();
        gen_ok(&dir, args);
        let after = unix_now();
        for file in ["ca/ca.crt", "server/tls.crt", "client/tls.crt"] {
            let der = &certs_in(&dir.join(file))[0];
            let cert = parse(der);
            let nb = cert.validity().not_before.timestamp();
            let na = cert.validity().not_after.timestamp();
            assert!(
                nb >= before - 3600 - 1 && nb <= after - 3600 + 1,
                "{file}: not_before {nb} is not an hour before {before}..{after}"
            );
            let want = days * 86400;
            assert!(
                na >= before + want - 1 && na <= after + want + 1,
                "{file} (--days {days}): not_after {na}, expected about {}",
                before + want
            );
        }
    }
    for bad in ["0", "3651"] {
        let dir = tmp.path().join(format!("bad{bad}"));
        gen_fails(&dir, &["--days", bad], 2, &["--days", "between 1 and 3650", bad]);
        assert!(!dir.exists(), "--days {bad} wrote something");
    }
}

// ---------------------------------------------------------------- refusals and errors

#[test]
fn refuses_to_overwrite_without_force_and_replaces_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("certs");
    gen_ok(&dir, &[]);
    let first = read_all(&dir);

    let err = gen_fails(&dir, &[], 2, &["--force", "nothing was written"]);
    for (file, _) in FILES {
        assert!(
            err.contains(&dir.join(file).display().to_string()),
            "{file} not named:\n{err}"
        );
    }
    assert_eq!(read_all(&dir), first, "files changed after a refusal");

    // One existing file is enough to write nothing at all.
    let partial = tmp.path().join("partial");
    std::fs::create_dir_all(partial.join("client")).unwrap();
    std::fs::write(partial.join("client/tls.key"), "mine").unwrap();
    let err = gen_fails(&partial, &[], 2, &["client/tls.key", "--force"]);
    assert!(!err.contains("ca.crt"), "{err}");
    assert_eq!(std::fs::read(partial.join("client/tls.key")).unwrap(), b"mine");
    assert!(!partial.join("ca").exists() && !partial.join("server").exists());

    // --force replaces everything with a new, consistent set.
    gen_ok(&dir, &["--force"]);
    let second = read_all(&dir);
    for (i, (file, mode)) in FILES.iter().enumerate() {
        assert_ne!(first[i], second[i], "{file} was not replaced");
        let m = std::fs::metadata(dir.join(file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(m, *mode, "{file}");
    }
    let o = openssl(
        &[
            "verify",
            "-CAfile",
            "ca/ca.crt",
            "server/tls.crt",
            "client/tls.crt",
        ],
        &dir,
    );
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    gen_ok(&partial, &["--force"]);
    assert_ne!(std::fs::read(partial.join("client/tls.key")).unwrap(), b"mine");
}

#[test]
fn bad_names_are_usage_errors_that_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("certs");
    for (names, needle) in [
        ("a.example,,b.example", "empty name"),
        ("a.example,", "empty name"),
        ("", "empty name"),
        ("a.example, b.example", "whitespace"),
        ("my host", "whitespace"),
        ("https://a.example", "not a DNS name or IP address"),
        ("a.example:8443", "not a DNS name or IP address"),
        ("a..example", "not a DNS name or IP address"),
        ("a.-b.example", "not a DNS name or IP address"),
        ("bücher.example", "punycode"),
    ] {
        gen_fails(&dir, &["--names", names], 2, &["--names", needle]);
        assert!(!dir.exists(), "--names {names:?} wrote something");
    }
}

#[test]
fn unwritable_directory_is_an_io_error_naming_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    // Under a regular file: no directory can be made there.
    let dir = file.join("certs");
    gen_fails(
        &dir,
        &[],
        1,
        &["cannot create directory", &dir.display().to_string()],
    );
    // --dir that is itself a file is a usage error.
    gen_fails(&file, &[], 2, &["--dir", "not a directory"]);

    // A read-only directory, unless permissions do not bind us (root).
    let ro = tmp.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    if std::fs::write(ro.join("probe"), "").is_err() {
        gen_fails(
            &ro.join("certs"),
            &[],
            1,
            &["cannot", &ro.display().to_string(), "ermission denied"],
        );
    }
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
}

// ---------------------------------------------------------------- served by the proxy

/// A rustls client configuration that trusts only the certificates in `ca`.
fn trusting_only(ca: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs_in(ca) {
        roots.add(cert).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

async fn get_through_tls(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
    name: &str,
) -> Result<(http::StatusCode, String), std::io::Error> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let server_name = ServerName::try_from(name.to_owned()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(server_name, tcp)
        .await?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = send.send_request(support::get("/generated")).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Ok((status, text(&body)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_serves_the_generated_server_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().to_path_buf();
    gen_ok(&dir, &[]);
    let origin = support::Origin::hello().await;
    let toml = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nshutdown_grace = \"1s\"\n\n\
         [tls]\ncert = \"server/tls.crt\"\nkey = \"server/tls.key\"\n\n\
         [[route]]\npath = \"/\"\nupstream = \"{}\"\n",
        origin.url()
    );
    let proxy = support::ProxyHandle::start(&toml, &dir).await;
    let addr = proxy.addr;

    let ca = dir.join("ca/ca.crt");
    let (status, body) = get_through_tls(addr, trusting_only(&ca), "localhost")
        .await
        .expect("a TLS handshake verified against the generated CA");
    assert_eq!(status, 200);
    assert_eq!(body, "hello from /generated");

    // Verification is really on: a client trusting another CA refuses.
    let other = tmp.path().join("other");
    gen_ok(&other, &[]);
    let refused = get_through_tls(addr, trusting_only(&other.join("ca/ca.crt")), "localhost").await;
    assert!(refused.is_err(), "a client trusting an unrelated CA connected");

    // curl, trusting only the CA file, by name and by IP address.
    let port = addr.port();
    let curl = tokio::task::spawn_blocking(move || {
        let by_name = Command::new("curl")
            .args(["-sS", "--fail", "--cacert"])
            .arg(&ca)
            .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
            .arg(format!("https://localhost:{port}/by-name"))
            .output()
            .expect("the curl command is needed for this test (apt-get install curl)");
        let by_ip = Command::new("curl")
            .args(["-sS", "--fail", "--cacert"])
            .arg(&ca)
            .arg(format!("https://127.0.0.1:{port}/by-ip"))
            .output()
            .unwrap();
        (by_name, by_ip)
    })
    .await
    .unwrap();
    for (o, path) in [(&curl.0, "/by-name"), (&curl.1, "/by-ip")] {
        assert!(
            o.status.success() && text(&o.stdout) == format!("hello from {path}"),
            "curl {path}: {}\n{}",
            text(&o.stdout),
            text(&o.stderr)
        );
    }

    proxy.shutdown().await.unwrap();
}
