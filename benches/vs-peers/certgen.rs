//! `loadgen certs`: many server certificates at once for the certificate
//! scaling scenario of benches/vs-peers (one CA, ECDSA P-256 leaves), much
//! faster than an `openssl` process per certificate.
//!
//! Writes into `--dir`: `ca.pem`; for each i below `--count`, the leaf for
//! `{prefix}{i}.{domain}` as `certs/{prefix}{i}.pem` and its key as
//! `certs/{prefix}{i}.key`, and with `--combined`, certificate and key in one
//! file, `combined/{prefix}{i}.pem` (what HAProxy's `crt DIR` reads). With
//! `--only I`, just leaf I is (re)written, with a new key: the file that
//! replaces one certificate among many.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};

use crate::BoxError;

#[derive(Args)]
pub(crate) struct CertsArgs {
    /// Where the files go.
    #[arg(long)]
    dir: PathBuf,
    /// How many leaf certificates.
    #[arg(long, default_value_t = 1)]
    count: usize,
    /// Leaf i is for `{prefix}{i}.{domain}`.
    #[arg(long, default_value = "c")]
    prefix: String,
    #[arg(long, default_value = "bench.test")]
    domain: String,
    /// Also write certificate and key in one file each, under combined/.
    #[arg(long)]
    combined: bool,
    /// Rewrite only leaf I (the CA must be there already).
    #[arg(long)]
    only: Option<usize>,
}

const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca.key";

fn ca(dir: &Path, fresh: bool) -> Result<Issuer<'static, KeyPair>, BoxError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "portcullis bench CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key_path = dir.join(CA_KEY);
    let key = if fresh {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = params.self_signed(&key)?;
        std::fs::write(dir.join(CA_CERT), cert.pem())?;
        std::fs::write(&key_path, key.serialize_pem())?;
        key
    } else {
        let pem = std::fs::read_to_string(&key_path).map_err(|e| format!("{}: {e}", key_path.display()))?;
        KeyPair::from_pem(&pem)?
    };
    Ok(Issuer::new(params, key))
}

fn leaf(dir: &Path, args: &CertsArgs, issuer: &Issuer<'_, KeyPair>, i: usize) -> Result<(), BoxError> {
    let name = format!("{}{i}.{}", args.prefix, args.domain);
    let mut params = CertificateParams::new(vec![name.clone()])?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let cert = params.signed_by(&key, issuer)?;
    let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
    let stem = format!("{}{i}", args.prefix);
    // Written aside and renamed, so a server watching the directory never
    // reads half a file.
    let put = |sub: &str, file: String, text: &str| -> Result<(), BoxError> {
        let path = dir.join(sub).join(&file);
        let tmp = dir.join(sub).join(format!(".{file}.tmp"));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    };
    put("certs", format!("{stem}.key"), &key_pem)?;
    put("certs", format!("{stem}.pem"), &cert_pem)?;
    if args.combined {
        put("combined", format!("{stem}.pem"), &format!("{cert_pem}{key_pem}"))?;
    }
    Ok(())
}

pub(crate) fn certs(args: CertsArgs) -> Result<String, BoxError> {
    let t0 = Instant::now();
    let dir = args.dir.clone();
    std::fs::create_dir_all(dir.join("certs"))?;
    if args.combined {
        std::fs::create_dir_all(dir.join("combined"))?;
    }
    let issuer = ca(&dir, args.only.is_none())?;
    let range = match args.only {
        Some(i) => i..i + 1,
        None => 0..args.count,
    };
    let n = range.len();
    for i in range {
        leaf(&dir, &args, &issuer, i)?;
    }
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "loadgen certs: {n} certificates in {secs:.2}s into {}",
        dir.display()
    );
    Ok(format!(
        "{{\"mode\":\"certs\",\"written\":{n},\"seconds\":{secs:.3}}}"
    ))
}
