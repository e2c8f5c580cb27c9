//! Certificates the proxy must refuse, made outside the test CA: each is
//! returned as (certificate PEM, key PEM).

use std::path::Path;
use std::process::Command;

/// A self-signed certificate for localhost that expired on 2021-01-01.
pub fn expired_pair() -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
}

/// openssl arguments for a new P-256 key, unencrypted, in key.pem.
const NEW_KEY: [&str; 7] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    "key.pem",
];

/// A version 1 certificate for localhost, made by the openssl command in
/// `dir/v1`.
pub fn v1_pair(dir: &Path) -> (String, String) {
    let d = dir.join("v1");
    std::fs::create_dir_all(&d).unwrap();
    // openssl makes a version 1 certificate when no extensions are given.
    let ok = Command::new("openssl")
        .args(["req", "-x509"])
        .args(NEW_KEY)
        .args(["-out", "cert.pem", "-days", "30", "-subj", "/CN=localhost"])
        .args(["-config", "/dev/null", "-extensions", "none"])
        .current_dir(&d)
        .output()
        .expect("the openssl command is needed for this test");
    if !d.join("cert.pem").exists() {
        // Older openssl needs an empty config section instead.
        std::fs::write(d.join("v1.cnf"), "[req]\ndistinguished_name=dn\n[dn]\n").unwrap();
        let ok = Command::new("openssl")
            .args(["req", "-new"])
            .args(NEW_KEY)
            .args(["-out", "req.pem", "-subj", "/CN=localhost", "-config", "v1.cnf"])
            .current_dir(&d)
            .status()
            .unwrap();
        assert!(ok.success());
        let ok = Command::new("openssl")
            .args([
                "x509", "-req", "-in", "req.pem", "-signkey", "key.pem", "-out", "cert.pem", "-days", "30",
            ])
            .current_dir(&d)
            .status()
            .unwrap();
        assert!(ok.success());
    }
    let text = Command::new("openssl")
        .args(["x509", "-in", "cert.pem", "-noout", "-text"])
        .current_dir(&d)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("Version: 1"),
        "openssl did not make a v1 certificate ({}):\n{text}",
        String::from_utf8_lossy(&ok.stderr)
    );
    (
        std::fs::read_to_string(d.join("cert.pem")).unwrap(),
        std::fs::read_to_string(d.join("key.pem")).unwrap(),
    )
}
