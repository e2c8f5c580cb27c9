//! Certificate loading, validation, SNI selection and a real handshake,
//! exercised through the library's public API on files written to a
//! temporary directory.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use portcullis::tls::certs::{self, CertError, LoadedCert};
use portcullis::tls::selfsigned;
use portcullis::tls::store::CertStore;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
    PublicKeyData, SignatureAlgorithm,
};
use rustls_pki_types::{CertificateDer, ServerName};
use tempfile::TempDir;

// ---------------------------------------------------------------------------
// Fixtures

/// A root CA and an intermediate under it, like a public CA's hierarchy.
struct Pki {
    root: CertifiedIssuer<'static, KeyPair>,
    inter: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Self {
        let root =
            CertifiedIssuer::self_signed(ca_params("Test Root"), KeyPair::generate().unwrap()).unwrap();
        let inter = CertifiedIssuer::signed_by(
            ca_params("Test Intermediate"),
            KeyPair::generate().unwrap(),
            &root,
        )
        .unwrap();
        Pki { root, inter }
    }

    /// A leaf for `sans`, signed by the intermediate; `tweak` adjusts it.
    fn leaf_with(
        &self,
        sans: &[&str],
        key: &impl PublicKeyData,
        tweak: impl FnOnce(&mut CertificateParams),
    ) -> String {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, sans.first().copied().unwrap_or("leaf"));
        tweak(&mut params);
        params.signed_by(key, &self.inter).unwrap().pem()
    }

    /// A leaf with a fresh P-256 key: (fullchain PEM, PKCS#8 key PEM).
    fn leaf(&self, sans: &[&str]) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let leaf = self.leaf_with(sans, &key, |_| {});
        (format!("{leaf}{}", self.inter.pem()), key.serialize_pem())
    }
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// An RSA public key for rcgen to certify; rcgen (built on ring here) cannot
/// generate RSA keys itself.
struct RsaPublic(Vec<u8>);

impl PublicKeyData for RsaPublic {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &rcgen::PKCS_RSA_SHA256
    }
}

fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn pem_block(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// One DER tag-length-value: (tag, contents, rest).
fn der_tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = input[0];
    let (len, header) = match input[1] {
        n if n < 0x80 => (n as usize, 2),
        n => {
            let count = (n & 0x7f) as usize;
            let len = input[2..2 + count]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | *b as usize);
            (len, 2 + count)
        }
    };
    (tag, &input[header..header + len], &input[header + len..])
}

/// The algorithm-specific key inside a PKCS#8 PrivateKeyInfo: for RSA this
/// is exactly the PKCS#1 RSAPrivateKey.
fn pkcs8_inner(pkcs8: &[u8]) -> Vec<u8> {
    let (_, info, _) = der_tlv(pkcs8);
    let (_, _version, rest) = der_tlv(info);
    let (_, _algorithm, rest) = der_tlv(rest);
    let (tag, key, _) = der_tlv(rest);
    assert_eq!(tag, 0x04, "PKCS#8 privateKey is an OCTET STRING");
    key.to_vec()
}

fn load_err(cert: &Path, key: &Path, names: &[&str]) -> CertError {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    certs::load(cert, key, &names).expect_err("load should fail")
}

fn assert_mentions(err: &CertError, needles: &[&str]) {
    let msg = err.to_string();
    for needle in needles {
        assert!(msg.contains(needle), "{needle:?} missing from: {msg}");
    }
}

// ---------------------------------------------------------------------------
// Loading what should load

#[test]
fn full_chain_loads_with_facts() {
    let pki = Pki::new();
    let dir = TempDir::new().unwrap();
    let (chain, key) = pki.leaf(&["WWW.Example.test", "example.test", "192.0.2.7"]);
    let cert_path = write(dir.path(), "fullchain.pem", &chain);
    let key_path = write(dir.path(), "privkey.pem", &key);

    let loaded = certs::load(&cert_path, &key_path, &[]).unwrap();
    assert_eq!(loaded.certified.cert.len(), 2);
    assert_eq!(loaded.names, ["www.example.test", "example.test"]);
    assert_eq!(
        loaded.facts.sans,
        ["WWW.Example.test", "example.test", "192.0.2.7"]
    );
    assert_eq!(loaded.facts.subject, "CN=WWW.Example.test");

    let leaf_der = loaded.certified.cert[0].as_ref();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, leaf_der);
    let expected: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(loaded.facts.sha256, expected);
    assert!(loaded
        .facts
        .serial
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    assert!(loaded.facts.not_before < std::time::SystemTime::now());
    assert!(loaded.facts.not_after > std::time::SystemTime::now());
    assert!(!format!("{loaded:?}").contains("PRIVATE"));
}

// ---------------------------------------------------------------------------
// Chains without the leaf's issuer: loaded, and flagged

#[test]
fn a_file_without_the_leafs_issuer_loads_flagged_as_an_incomplete_chain() {
    let pki = Pki::new();
    let dir = TempDir::new().unwrap();
    let key = KeyPair::generate().unwrap();
    // With an authority key identifier, as public CAs issue them.
    let leaf = pki.leaf_with(&["a.example.test"], &key, |p| {
        p.use_authority_key_identifier_extension = true;
    });
    let key_path = write(dir.path(), "privkey.pem", key.serialize_pem());
    let load = |name: &str, pem: String| {
        let path = write(dir.path(), name, pem);
        let loaded = certs::load(&path, &key_path, &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
        (path, loaded.incomplete_chain)
    };

    // The intermediate after the leaf, with or without the root after it.
    let inter = pki.inter.pem();
    assert_eq!(load("fullchain.pem", format!("{leaf}{inter}")).1, None);
    let root = pki.root.pem();
    assert_eq!(load("with-root.pem", format!("{leaf}{inter}{root}")).1, None);

    // The leaf alone.
    let (path, gap) = load("leaf.pem", leaf.clone());
    let gap = gap.expect("a leaf alone is not flagged");
    assert_eq!((gap.path.as_path(), gap.others), (path.as_path(), 0));
    assert_eq!(gap.issuer, "CN=Test Intermediate");
    let text = gap.to_string();
    for needle in [
        &format!("certificate file {}", path.display()),
        "the chain is incomplete",
        "CN=Test Intermediate",
        "unable to get local issuer certificate",
        "append the intermediate certificate(s)",
        "use fullchain.pem instead of cert.pem",
    ] {
        assert!(text.contains(needle), "{needle:?} not in {text}");
    }

    // The root, which did not issue it, without the intermediate.
    let (_, gap) = load("leaf-root.pem", format!("{leaf}{root}"));
    assert_eq!(gap.map(|g| g.others), Some(1));

    // An intermediate with the issuer's name and another key.
    let impostor = CertifiedIssuer::signed_by(
        ca_params("Test Intermediate"),
        KeyPair::generate().unwrap(),
        &pki.root,
    )
    .unwrap();
    let (_, gap) = load("leaf-impostor.pem", format!("{leaf}{}", impostor.pem()));
    assert!(
        gap.is_some(),
        "an intermediate of the same name and another key passed"
    );
}

#[test]
fn a_self_signed_certificate_is_not_an_incomplete_chain() {
    let dir = TempDir::new().unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["a.example.test".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "a.example.test");
    let cert = write(dir.path(), "cert.pem", params.self_signed(&key).unwrap().pem());
    let key_path = write(dir.path(), "key.pem", key.serialize_pem());
    assert_eq!(certs::load(&cert, &key_path, &[]).unwrap().incomplete_chain, None);
    // Nor the one made in memory when none is configured.
    assert_eq!(selfsigned::generate(&[]).unwrap().incomplete_chain, None);
}

#[test]
fn certbots_cert_pem_is_answered_with_its_fullchain_pem() {
    let pki = Pki::new();
    let dir = TempDir::new().unwrap();
    let live = dir.path().join("live/example.com");
    std::fs::create_dir_all(&live).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = write(&live, "cert.pem", pki.leaf_with(&["example.com"], &key, |_| {}));
    let key_path = write(&live, "privkey.pem", key.serialize_pem());
    let gap = certs::load(&cert, &key_path, &[])
        .unwrap()
        .incomplete_chain
        .expect("certbot's cert.pem is not flagged");
    let text = gap.to_string();
    let fullchain = live.join("fullchain.pem");
    assert!(
        text.contains("the chain is incomplete")
            && text.contains(&format!(
                "this is certbot's cert.pem, which holds no chain: use {} instead",
                fullchain.display()
            )),
        "{text}"
    );
}

#[test]
fn pkcs8_pkcs1_and_sec1_keys_are_accepted() {
    let pki = Pki::new();
    let dir = TempDir::new().unwrap();

    // EC key, PKCS#8 (what rcgen and certbot write) and SEC1 (openssl ecparam).
    let ec = KeyPair::generate().unwrap();
    let ec_chain = write(
        dir.path(),
        "ec.pem",
        pki.leaf_with(&["ec.example.test"], &ec, |_| {}),
    );
    let ec_pkcs8 = write(dir.path(), "ec-pkcs8.pem", ec.serialize_pem());
    let parsed = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        ec.serialized_der(),
    )
    .unwrap();
    let sec1 = AsDer::<aws_lc_rs::encoding::EcPrivateKeyRfc5915Der>::as_der(&parsed.private_key()).unwrap();
    let sec1_pem = pem_block("EC PRIVATE KEY", sec1.as_ref());
    let ec_sec1 = write(dir.path(), "ec-sec1.pem", &sec1_pem);

    // RSA key, PKCS#8 and PKCS#1 (older certbot and `openssl genrsa -traditional`).
    let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let rsa_pkcs8_der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&rsa).unwrap();
    let rsa_public = {
        use aws_lc_rs::signature::KeyPair as _;
        RsaPublic(rsa.public_key().as_ref().to_vec())
    };
    let rsa_chain = write(
        dir.path(),
        "rsa.pem",
        pki.leaf_with(&["rsa.example.test"], &rsa_public, |_| {}),
    );
    let rsa_pkcs8 = write(
        dir.path(),
        "rsa-pkcs8.pem",
        pem_block("PRIVATE KEY", rsa_pkcs8_der.as_ref()),
    );
    let rsa_pkcs1 = write(
        dir.path(),
        "rsa-pkcs1.pem",
        pem_block("RSA PRIVATE KEY", &pkcs8_inner(rsa_pkcs8_der.as_ref())),
    );

    for (chain, key, label) in [
        (&ec_chain, &ec_pkcs8, "-----BEGIN PRIVATE KEY-----"),
        (&ec_chain, &ec_sec1, "-----BEGIN EC PRIVATE KEY-----"),
        (&rsa_chain, &rsa_pkcs8, "-----BEGIN PRIVATE KEY-----"),
        (&rsa_chain, &rsa_pkcs1, "-----BEGIN RSA PRIVATE KEY-----"),
    ] {
        assert!(std::fs::read_to_string(key).unwrap().starts_with(label));
        let loaded =
            certs::load(chain, key, &[]).unwrap_or_else(|e| panic!("{} should load: {e}", key.display()));
        assert_eq!(loaded.certified.cert.len(), 1);
    }

    // The SEC1 form openssl writes, with an EC PARAMETERS block in front.
    let with_params =
        format!("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n{sec1_pem}");
    let key = write(dir.path(), "ec-openssl.pem", with_params);
    certs::load(&ec_chain, &key, &[]).unwrap();
}

#[test]
fn configured_names_are_used_and_wildcards_cover_one_label() {
    let pki = Pki::new();
    let dir = TempDir::new().unwrap();
    let (chain, key) = pki.leaf(&["*.example.test", "example.test"]);
    let cert = write(dir.path(), "c.pem", chain);
    let key = write(dir.path(), "k.pem", key);

    let names = vec!["Example.test.".to_string(), "API.example.test".to_string()];
    let loaded = certs::load(&cert, &key, &names).unwrap();
    assert_eq!(loaded.names, ["example.test", "api.example.test"]);

    let err = load_err(&cert, &key, &["a.b.example.test", "example.test"]);
    assert!(
        matches!(err, CertError::NamesNotCovered { ref missing, .. } if missing == &["a.b.example.test"])
    );
    assert!(!err.is_key_problem());
    assert_mentions(
        &err,
        &[
            "does not cover a.b.example.test",
            "*.example.test, example.test",
            cert.to_str().unwrap(),
            "re-issue",
        ],
    );
}

#[test]
fn names_on_a_cert_without_sans_are_not_covered() {
    let pki = Pki::new();
    let dir = TempDir::new().unwrap();
    let key = KeyPair::generate().unwrap();
    let chain = pki.leaf_with(&[], &key, |p| {
        p.distinguished_name
            .push(DnType::CommonName, "cn-only.example.test");
    });
    let cert = write(dir.path(), "c.pem", chain);
    let keyp = write(dir.path(), "k.pem", key.serialize_pem());
    assert!(certs::load(&cert, &keyp, &[]).unwrap().names.is_empty());
    let err = load_err(&cert, &keyp, &["cn-only.example.test"]);
    assert_mentions(&err, &["has no subjectAltName", "ignore the subject CN"]);
}

#[test]
fn load_rereads_through_repointed_symlinks() {
    let pki = Pki::new();
    let dir = TempDir::new().unwrap();
    let archive = dir.path().join("archive");
    let live = dir.path().join("live");
    std::fs::create_dir_all(&archive).unwrap();
    std::fs::create_dir_all(&live).unwrap();

    let mut serials = Vec::new();
    for generation in 1..=2 {
        let (chain, key) = pki.leaf(&["renewed.example.test"]);
        let c = write(&archive, &format!("fullchain{generation}.pem"), chain);
        let k = write(&archive, &format!("privkey{generation}.pem"), key);
        // Re-point the way certbot does: the live/ link names never change.
        for (link, target) in [("fullchain.pem", &c), ("privkey.pem", &k)] {
            let link = live.join(link);
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(target, &link).unwrap();
        }
        let loaded = certs::load(&live.join("fullchain.pem"), &live.join("privkey.pem"), &[]).unwrap();
        serials.push(loaded.facts.serial);
    }
    assert_ne!(serials[0], serials[1]);
}

// ---------------------------------------------------------------------------
// Each way a pair can be refused

#[test]
fn missing_files_are_reported_per_role() {
    let pki = Pki::new();
    let dir = TempDir::new().unwrap();
    let (chain, key) = pki.leaf(&["a.example.test"]);
    let cert = write(dir.path(), "fullchain.pem", chain);
    let keyp = write(dir.path(), "privkey.pem", key);
    let nowhere = dir.path().join("nope.pem");

    let err = load_err(&nowhere, &keyp, &[]);
    assert!(matches!(err, CertError::NotFound { .. }));
    assert!(!err.is_key_problem());
    assert_eq!(err.path(), Some(nowhere.as_path()));
    assert_mentions(
        &err,
        &["certificate file", nowhere.to_str().unwrap(), "does not exist"],
    );

    let err = load_err(&cert, &nowhere, &[]);
    assert!(err.is_key_problem());
    assert_mentions(&err, &["key file", "does not exist"]);

    let dangling = dir.path().join("dangling.pem");
    std::os::unix::fs::symlink(dir.path().join("gone.pem"), &dangling).unwrap();
    let err = load_err(&dangling, &keyp, &[]);
    assert!(matches!(err, CertError::NotFound { .. }));
    assert_mentions(&err, &["symlink", "target exists"]);
}

#[test]
fn a_directory_is_not_a_cert_file() {
    let dir = TempDir::new().unwrap();
    let key = write(dir.path(), "k.pem", KeyPair::generate().unwrap().serialize_pem());
    let err = load_err(dir.path(), &key, &[]);
    assert!(matches!(err, CertError::IsDirectory { .. }));
    assert_mentions(&err, &["is a directory", "fullchain.pem"]);
}

#[test]
fn oversized_file_is_refused() {
    let dir = TempDir::new().unwrap();
    let big = write(
        dir.path(),
        "big.pem",
        vec![b'A'; certs::MAX_FILE_BYTES as usize + 1],
    );
    let key = write(dir.path(), "k.pem", KeyPair::generate().unwrap().serialize_pem());
    let err = load_err(&big, &key, &[]);
    assert!(matches!(err, CertError::TooLarge { .. }));
    assert_mentions(&err, &["larger than", "right file"]);
}

const UNREADABLE_CERT_ENV: &str = "PORTCULLIS_TEST_UNREADABLE_CERT";
const UNREADABLE_KEY_ENV: &str = "PORTCULLIS_TEST_UNREADABLE_KEY";
const PROBE_OK: &str = "unreadable-probe: permission denied reported";

/// Root reads mode-000 files regardless, so when the suite runs as root the
/// check re-runs this test binary as `nobody` (via setpriv) for one probe
/// test, which then meets a genuine EACCES through `certs::load`.
#[test]
fn unreadable_key_is_permission_denied() {
    let pki = Pki::new();
    let dir = TempDir::new().unwrap();
    let (chain, key) = pki.leaf(&["a.example.test"]);
    let cert = write(dir.path(), "fullchain.pem", chain);
    let keyp = write(dir.path(), "privkey.pem", key);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&keyp, std::fs::Permissions::from_mode(0o000)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();

    if let Err(err) = certs::load(&cert, &keyp, &[]) {
        // Unprivileged: the direct attempt already meets EACCES.
        check_permission_denied(&err, &keyp);
        return;
    }

    let exe = std::env::current_exe().unwrap();
    if !others_can_reach(&exe, 0o005) || !others_can_reach(dir.path(), 0o001) {
        // Only the unit test of the io::ErrorKind mapping covers this case then.
        eprintln!("skipping the unprivileged re-run: the test binary or temp dir is private");
        return;
    }
    let output = match Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&exe)
        .args([
            "--exact",
            "unreadable_probe_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(UNREADABLE_CERT_ENV, &cert)
        .env(UNREADABLE_KEY_ENV, &keyp)
        .output()
    {
        Ok(output) => output,
        Err(e) => {
            // Without setpriv only the unit test of the io::ErrorKind mapping
            // covers this case.
            eprintln!("skipping the unprivileged re-run: cannot start setpriv: {e}");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(PROBE_OK),
        "probe failed: status {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
}

/// Whether a user with no relation to the owner can traverse to `path` and
/// use it with the `other` permission bits in `need`.
fn others_can_reach(path: &Path, need: u32) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode());
    let Ok(own) = mode(path) else { return false };
    own & need == need
        && path
            .ancestors()
            .skip(1)
            .all(|dir| mode(dir).is_ok_and(|m| m & 0o001 != 0))
}

/// Only does anything when started by `unreadable_key_is_permission_denied`.
#[test]
fn unreadable_probe_child() {
    let (Ok(cert), Ok(key)) = (
        std::env::var(UNREADABLE_CERT_ENV),
        std::env::var(UNREADABLE_KEY_ENV),
    ) else {
        return;
    };
    let key = PathBuf::from(key);
    let err = certs::load(Path::new(&cert), &key, &[]).expect_err("key must be unreadable");
    check_permission_denied(&err, &key);
    println!("{PROBE_OK}");
}

fn check_permission_denied(err: &CertError, key: &Path) {
    assert!(
        matches!(err, CertError::PermissionDenied { .. }),
        "wrong variant: {err:?}"
    );
    assert!(err.is_key_problem());
    assert_eq!(err.path(), Some(key));
    assert_mentions(
        err,
        &[
            "cannot read key file",
            key.to_str().unwrap(),
            "permission denied",
            "ownership and permissions",
        ],
    );
}

#[test]
fn cert_file_that_is_not_pem() {
    let pki = Pki::new();
    let dir = TempDir::new().unwrap();
    let (chain, key) = pki.leaf(&["a.example.test"]);
    let keyp = write(dir.path(), "k.pem", key);

    let der = pki.inter.der();
    let der_file = write(dir.path(), "cert.der", der.as_ref());
    let err = load_err(&der_file, &keyp, &[]);
    assert!(matches!(err, CertError::NotPem { .. }));
    assert_mentions(
        &err,
        &[
            der_file.to_str().unwrap(),
            "is not PEM",
            "openssl x509 -inform der",
        ],
    );

    let truncated = write(dir.path(), "cut.pem", &chain[..chain.len() / 3]);
    let err = load_err(&truncated, &keyp, &[]);
    assert!(matches!(err, CertError::NotPem { .. }));
    assert_mentions(&err, &["-----END CERTIFICATE-----", "copy it again"]);
}

#[test]
fn cert_file_without_certificate_block() {
    let dir = TempDir::new().unwrap();
    let key = KeyPair::generate().unwrap().serialize_pem();
    let cert = write(dir.path(), "fullchain.pem", &key);
    let keyp = write(dir.path(), "privkey.pem", &key);
    let err = load_err(&cert, &keyp, &[]);
    assert!(matches!(err, CertError::NoCertificate { .. }));
    assert!(!err.is_key_problem());
    assert_mentions(&err, &[cert.to_str().unwrap(), "no CERTIFICATE block", "swapped"]);
}

#[test]
fn key_file_without_usable_key() {
    let pki = Pki::new();
    let dir = TempDir::new().unwrap();
    let (chain, _) = pki.leaf(&["a.example.test"]);
    let cert = write(dir.path(), "fullchain.pem", &chain);

    let swapped = write(dir.path(), "swapped.pem", &chain);
    let err = load_err(&cert, &swapped, &[]);
    assert!(matches!(err, CertError::NoPrivateKey { .. }));
    assert!(err.is_key_problem());
    assert_mentions(
        &err,
        &[swapped.to_str().unwrap(), "no usable private key", "swapped"],
    );

    let encrypted = write(
        dir.path(),
        "encrypted.pem",
        pem_block("ENCRYPTED PRIVATE KEY", &[0x30, 0x03, 0x02, 0x01, 0x00]),
    );
    let err = load_err(&cert, &encrypted, &[]);
    assert_mentions(&err, &["encrypted with a passphrase", "openssl pkey"]);

    let legacy = write(
        dir.path(),
        "legacy.pem",
        "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\
         DEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\nAAAA\n\
         -----END RSA PRIVATE KEY-----\n",
    );
    let err = load_err(&cert, &legacy, &[]);
    assert_mentions(&err, &["encrypted with a passphrase"]);

    let public_only = write(
        dir.path(),
        "pub.pem",
        KeyPair::generate().unwrap().public_key_pem(),
    );
    let err = load_err(&cert, &public_only, &[]);
    assert_mentions(
        &err,
        &["expected a PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY"],
    );

    let text = write(dir.path(), "text.pem", "just some words\n");
    let err = load_err(&cert, &text, &[]);
    assert!(matches!(err, CertError::NotPem { .. }));
    assert!(err.is_key_problem());
    assert_mentions(&err, &["key file", "openssl pkey -inform der"]);
}

#[test]
fn unparsable_key_is_refused() {
    let pki = Pki::new();
    let dir = TempDir::new().unwrap();
    let (chain, _) = pki.leaf(&["a.example.test"]);
    let cert = write(dir.path(), "fullchain.pem", chain);
    let key = write(
        dir.path(),
        "privkey.pem",
        pem_block("PRIVATE KEY", b"definitely not a key"),
    );
    let err = load_err(&cert, &key, &[]);
    assert!(matches!(err, CertError::UnusableKey { .. }), "{err:?}");
    assert!(err.is_key_problem());
    assert_mentions(
        &err,
        &[key.to_str().unwrap(), "cannot be used", "supported keys are"],
    );
}

#[test]
fn key_of_another_certificate_is_a_mismatch() {
    let pki = Pki::new();
    let dir = TempDir::new().unwrap();
    let (chain, _) = pki.leaf(&["a.example.test"]);
    let (_, other_key) = pki.leaf(&["a.example.test"]);
    let cert = write(dir.path(), "fullchain.pem", chain);
    let key = write(dir.path(), "privkey.pem", other_key);
    let err = load_err(&cert, &key, &[]);
    assert!(matches!(err, CertError::KeyMismatch { .. }));
    assert!(err.is_key_problem());
    assert_eq!(err.path(), Some(key.as_path()));
    assert_mentions(
        &err,
        &[
            &format!(
                "the key in {} does not belong to the certificate in {}",
                key.display(),
                cert.display()
            ),
            "fullchain.pem + privkey.pem from the same live/ directory",
        ],
    );
}

#[test]
fn chain_in_reverse_order_is_explained() {
    let pki = Pki::new();
    let dir = TempDir::new().unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = pki.leaf_with(&["a.example.test"], &key, |_| {});
    let cert = write(dir.path(), "c.pem", format!("{}{leaf}", pki.inter.pem()));
    let keyp = write(dir.path(), "k.pem", key.serialize_pem());
    let err = load_err(&cert, &keyp, &[]);
    assert!(matches!(
        err,
        CertError::KeyMismatch {
            matches_chain_index: Some(2),
            ..
        }
    ));
    assert!(!err.is_key_problem());
    assert_mentions(&err, &["belongs to certificate #2", "must come first"]);
}

#[test]
fn unparsable_chain_member_is_refused() {
    let pki = Pki::new();
    let dir = TempDir::new().unwrap();
    let (chain, key) = pki.leaf(&["a.example.test"]);
    let broken = format!(
        "{chain}{}",
        pem_block("CERTIFICATE", b"\x30\x03\x02\x01\x05 not x509")
    );
    let cert = write(dir.path(), "c.pem", broken);
    let keyp = write(dir.path(), "k.pem", key);
    let err = load_err(&cert, &keyp, &[]);
    assert!(
        matches!(err, CertError::ChainUnparsable { index: 3, .. }),
        "{err:?}"
    );
    assert_mentions(
        &err,
        &[
            "certificate #3 (an intermediate)",
            cert.to_str().unwrap(),
            "not valid X.509",
        ],
    );

    let leaf_broken = write(
        dir.path(),
        "leaf.pem",
        pem_block("CERTIFICATE", b"\x30\x03\x02\x01\x05"),
    );
    let err = load_err(&leaf_broken, &keyp, &[]);
    assert_mentions(&err, &["certificate #1 (the server certificate)"]);
}

#[test]
fn x509_v1_certificate_is_refused() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(d)
            .output()
            .expect("this test needs the openssl command");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        "v1.key",
    ]);
    openssl(&[
        "req",
        "-new",
        "-key",
        "v1.key",
        "-subj",
        "/CN=v1.example.test",
        "-out",
        "v1.csr",
    ]);
    // `x509 -req` with no extension file writes a version 1 certificate.
    openssl(&[
        "x509", "-req", "-in", "v1.csr", "-signkey", "v1.key", "-days", "30", "-out", "v1.pem",
    ]);

    let err = load_err(&d.join("v1.pem"), &d.join("v1.key"), &[]);
    assert!(matches!(err, CertError::NotV3 { version: 1, .. }), "{err:?}");
    assert!(!err.is_key_problem());
    assert_mentions(
        &err,
        &["X.509 v1", "re-issue it as v3", "subjectAltName", "v1.pem"],
    );
}

#[test]
fn expired_and_not_yet_valid_are_refused() {
    let pki = Pki::new();
    let dir = TempDir::new().unwrap();
    let key = KeyPair::generate().unwrap();
    let keyp = write(dir.path(), "k.pem", key.serialize_pem());

    let expired = write(
        dir.path(),
        "expired.pem",
        pki.leaf_with(&["old.example.test"], &key, |p| {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2020, 4, 1);
        }),
    );
    let err = load_err(&expired, &keyp, &[]);
    assert!(matches!(err, CertError::Expired { .. }));
    assert_mentions(
        &err,
        &[
            "expired at 2020-04-01T00:00:00Z",
            "days ago",
            "certbot renew",
            expired.to_str().unwrap(),
        ],
    );

    let future = write(
        dir.path(),
        "future.pem",
        pki.leaf_with(&["new.example.test"], &key, |p| {
            p.not_before = rcgen::date_time_ymd(2200, 1, 1);
            p.not_after = rcgen::date_time_ymd(2201, 1, 1);
        }),
    );
    let err = load_err(&future, &keyp, &[]);
    assert!(matches!(err, CertError::NotYetValid { .. }));
    assert_mentions(&err, &["not valid until 2200-01-01T00:00:00Z", "clock"]);
}

// ---------------------------------------------------------------------------
// Choosing a certificate

struct Served {
    default: Arc<LoadedCert>,
    exact: Arc<LoadedCert>,
    wildcard: Arc<LoadedCert>,
}

fn served(pki: &Pki, dir: &Path) -> Served {
    let load = |name: &str, sans: &[&str]| {
        let (chain, key) = pki.leaf(sans);
        let c = write(dir, &format!("{name}.crt"), chain);
        let k = write(dir, &format!("{name}.key"), key);
        Arc::new(certs::load(&c, &k, &[]).unwrap())
    };
    Served {
        default: Arc::new(selfsigned::generate(&[]).unwrap()),
        exact: load("exact", &["www.example.test"]),
        wildcard: load("wildcard", &["*.apps.example.test"]),
    }
}

#[test]
fn sni_picks_exact_then_wildcard_then_default() {
    let pki = Pki::new();
    let dir = TempDir::new().unwrap();
    let s = served(&pki, dir.path());
    let store = CertStore::new(vec![s.default.clone(), s.exact.clone(), s.wildcard.clone()]);

    let got = |sni: Option<&str>| store.resolve_name(sni).unwrap();
    assert!(Arc::ptr_eq(&got(Some("www.example.test")), &s.exact));
    assert!(Arc::ptr_eq(&got(Some("WWW.EXAMPLE.TEST")), &s.exact));
    assert!(Arc::ptr_eq(&got(Some("x.apps.example.test")), &s.wildcard));
    assert!(Arc::ptr_eq(&got(Some("y.x.apps.example.test")), &s.default));
    assert!(Arc::ptr_eq(&got(Some("apps.example.test")), &s.default));
    assert!(Arc::ptr_eq(&got(Some("unknown.test")), &s.default));
    assert!(Arc::ptr_eq(&got(None), &s.default));

    let held = got(Some("www.example.test"));
    store.publish(vec![s.wildcard.clone()]);
    assert!(Arc::ptr_eq(&got(Some("www.example.test")), &s.wildcard));
    assert!(Arc::ptr_eq(&got(None), &s.wildcard));
    assert_eq!(store.snapshot().certs().len(), 1);
    // What a handshake already took stays valid after the swap.
    assert_eq!(held.names, ["www.example.test"]);
}

async fn presented_chain(
    addr: SocketAddr,
    connector: &tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
) -> Vec<CertificateDer<'static>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = connector.connect(server_name, tcp).await.unwrap();
    tls.get_ref().1.peer_certificates().unwrap().to_vec()
}

#[tokio::test]
async fn handshake_serves_the_certificate_chosen_by_sni() {
    let pki = Pki::new();
    let dir = TempDir::new().unwrap();
    let s = served(&pki, dir.path());
    let store = Arc::new(CertStore::new(vec![
        s.default.clone(),
        s.exact.clone(),
        s.wildcard.clone(),
    ]));

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server_config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(store.clone());
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(tcp).await;
            });
        }
    });

    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.root.der().clone()).unwrap();
    // The self-signed default is its own trust anchor.
    roots.add(s.default.certified.cert[0].clone()).unwrap();
    let client_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
    let dns = |n: &str| ServerName::try_from(n.to_string()).unwrap();

    let chain = presented_chain(addr, &connector, dns("www.example.test")).await;
    assert_eq!(chain, s.exact.certified.cert);
    assert_eq!(chain.len(), 2);

    let chain = presented_chain(addr, &connector, dns("api.apps.example.test")).await;
    assert_eq!(chain, s.wildcard.certified.cert);

    // A client connecting by IP sends no SNI and gets the first certificate.
    let ip = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into());
    let chain = presented_chain(addr, &connector, ip).await;
    assert_eq!(chain, s.default.certified.cert);

    // A publish is seen by the very next handshake.
    let (renewed_chain, renewed_key) = pki.leaf(&["www.example.test"]);
    let renewed = Arc::new(
        certs::load(
            &write(dir.path(), "renewed.crt", renewed_chain),
            &write(dir.path(), "renewed.key", renewed_key),
            &[],
        )
        .unwrap(),
    );
    store.publish(vec![s.default.clone(), renewed.clone()]);
    let chain = presented_chain(addr, &connector, dns("www.example.test")).await;
    assert_eq!(chain, renewed.certified.cert);
    assert_ne!(chain, s.exact.certified.cert);

    server.abort();
}
