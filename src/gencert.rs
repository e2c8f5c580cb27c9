//! `portcullis gen-cert`: a development CA, and a server and a client
//! certificate it signed, written to a directory, so that a local setup
//! (including one with client certificates) works with verification on
//! instead of `curl -k`.
//!
//! Layout under the chosen directory:
//!
//! ```text
//! ca/ca.crt        the CA certificate: what clients are told to trust
//! ca/ca.key        the CA key (0600), kept to issue more certificates
//! server/tls.crt   server certificate followed by the CA (like certbot's fullchain.pem)
//! server/tls.key   its key (0600)
//! client/tls.crt   client certificate (CN portcullis-client, clientAuth) followed by the CA
//! client/tls.key   its key (0600)
//! ```
//!
//! Everything is generated in memory and checked before the first byte is
//! written; existing files are only replaced with `force`, and then by an
//! atomic rename, so a running proxy that watches `server/` never reads a
//! half-written file.

use std::fmt::Write as _;
use std::fs::{self, OpenOptions, Permissions};
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SerialNumber, PKCS_ECDSA_P256_SHA256,
};

use crate::tls::{certs, selfsigned::BASE_NAMES};

/// The default validity, in days.
pub const DEFAULT_DAYS: u32 = 365;
/// The longest validity accepted, in days (ten years).
pub const MAX_DAYS: u32 = 3650;
/// The common name of the client certificate.
pub const CLIENT_CN: &str = "portcullis-client";

/// Backdating absorbs clock skew between this host and its clients.
const BACKDATE: Duration = Duration::from_secs(3600);
const KEY_MODE: u32 = 0o600;
const CERT_MODE: u32 = 0o644;

/// What to generate and where.
#[derive(Clone, Debug)]
pub struct Options {
    /// The output directory; `ca/`, `server/` and `client/` are made in it.
    pub dir: PathBuf,
    /// Extra names for the server certificate, as given on the command
    /// line: each value may hold several names separated by commas.
    pub names: Vec<String>,
    /// Validity in days, `1..=MAX_DAYS`.
    pub days: u32,
    /// Replace existing files.
    pub force: bool,
}

/// Why nothing (or not everything) was written.
#[derive(Debug, thiserror::Error)]
pub enum GenCertError {
    /// A bad argument: a name, the number of days, the output directory.
    #[error("{0}")]
    Usage(String),
    /// Output files exist and `force` was not given; nothing was written.
    #[error("{}", exists_message(.0))]
    Exists(Vec<PathBuf>),
    /// Reading or writing the filesystem failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Key generation or signing failed.
    #[error("{0}")]
    Generate(String),
}

impl GenCertError {
    /// The process exit code: 2 for what the caller must change (arguments,
    /// existing files), 1 for failures of the system.
    pub fn exit_code(&self) -> u8 {
        match self {
            GenCertError::Usage(_) | GenCertError::Exists(_) => 2,
            GenCertError::Io { .. } | GenCertError::Generate(_) => 1,
        }
    }
}

fn exists_message(paths: &[PathBuf]) -> String {
    let mut msg = String::new();
    if let [one] = paths {
        let _ = write!(
            msg,
            "{} already exists; nothing was written. Pass --force to overwrite it",
            one.display()
        );
    } else {
        msg.push_str("these files already exist; nothing was written:");
        for p in paths {
            let _ = write!(msg, "\n  {}", p.display());
        }
        msg.push_str("\nPass --force to overwrite them");
    }
    msg
}

/// The six output paths under a directory.
#[derive(Clone, Debug)]
pub struct Layout {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Layout {
    pub fn new(dir: &Path) -> Layout {
        Layout {
            ca_cert: dir.join("ca").join("ca.crt"),
            ca_key: dir.join("ca").join("ca.key"),
            server_cert: dir.join("server").join("tls.crt"),
            server_key: dir.join("server").join("tls.key"),
            client_cert: dir.join("client").join("tls.crt"),
            client_key: dir.join("client").join("tls.key"),
        }
    }

    fn all(&self) -> [&Path; 6] {
        [
            &self.ca_cert,
            &self.ca_key,
            &self.server_cert,
            &self.server_key,
            &self.client_cert,
            &self.client_key,
        ]
    }
}

/// What was written, for the summary the command prints.
#[derive(Clone, Debug)]
pub struct Written {
    /// The output directory as given.
    pub dir: PathBuf,
    pub layout: Layout,
    /// The subject alternative names of the server certificate, in order.
    pub server_names: Vec<String>,
    /// The common name of the CA.
    pub ca_name: String,
    pub not_after: SystemTime,
    pub days: u32,
}

/// Validates the options, generates the CA and both certificates, and
/// writes them. Nothing is written when an argument is bad or, without
/// `force`, when any output file exists.
pub fn run(opts: &Options) -> Result<Written, GenCertError> {
    if !(1..=MAX_DAYS).contains(&opts.days) {
        return Err(GenCertError::Usage(format!(
            "--days must be between 1 and {MAX_DAYS} (ten years); got {}",
            opts.days
        )));
    }
    let server_names = parse_names(&opts.names)?;
    let layout = Layout::new(&opts.dir);
    precheck(&opts.dir, &layout, opts.force)?;

    let validity = Validity::from_now(opts.days)?;
    let pki = generate(&server_names, &validity)?;

    // The proxy must accept what it is told to serve: validate the server
    // pair exactly as a configured one is validated at start.
    let pseudo = Path::new("(generated server certificate)");
    certs::from_pem(
        pki.server_chain.as_bytes(),
        pki.server_key.as_bytes(),
        &server_names,
        pseudo,
        pseudo,
    )
    .map_err(|e| GenCertError::Generate(format!("the generated server certificate is unusable: {e}")))?;

    let files: [(&Path, &str, u32); 6] = [
        (&layout.ca_cert, &pki.ca_cert, CERT_MODE),
        (&layout.ca_key, &pki.ca_key, KEY_MODE),
        (&layout.server_cert, &pki.server_chain, CERT_MODE),
        (&layout.server_key, &pki.server_key, KEY_MODE),
        (&layout.client_cert, &pki.client_chain, CERT_MODE),
        (&layout.client_key, &pki.client_key, KEY_MODE),
    ];
    write_all(&files)?;

    Ok(Written {
        dir: opts.dir.clone(),
        layout,
        server_names,
        ca_name: pki.ca_name,
        not_after: validity.not_after,
        days: opts.days,
    })
}

// ---------------------------------------------------------------- names

/// The server certificate's names: localhost, 127.0.0.1 and ::1, then the
/// given ones (comma-separated within each value), normalized (lower case,
/// no trailing dot, IP addresses in canonical form) and without repeats.
pub fn parse_names(values: &[String]) -> Result<Vec<String>, GenCertError> {
    let mut names: Vec<String> = BASE_NAMES.iter().map(|s| (*s).to_owned()).collect();
    for value in values {
        if value.chars().any(char::is_whitespace) {
            return Err(GenCertError::Usage(format!(
                "--names: {value:?} contains whitespace; separate names with commas only, \
                 as in --names a.example,b.example"
            )));
        }
        for raw in value.split(',') {
            let name = parse_name(raw)?;
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    Ok(names)
}

fn parse_name(raw: &str) -> Result<String, GenCertError> {
    let bad = |why: String| GenCertError::Usage(format!("--names: {why}"));
    if raw.is_empty() {
        return Err(bad(
            "an empty name (a doubled, leading or trailing comma?); write names as --names a.example,b.example"
                .to_owned(),
        ));
    }
    let unbracketed = raw
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(raw);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    if !raw.is_ascii() {
        return Err(bad(format!(
            "{raw:?} is not ASCII; write an internationalized name in its xn-- (punycode) form"
        )));
    }
    let name = certs::normalize_name(raw);
    if name.len() > 253 {
        return Err(bad(format!("{raw:?} is longer than 253 characters")));
    }
    let (wildcard, rest) = match name.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, name.as_str()),
    };
    let not_a_name = |why: &str| {
        bad(format!(
            "{raw:?} is not a DNS name or IP address: {why} (give the bare host name, without scheme, port or path)"
        ))
    };
    if wildcard && !rest.contains('.') {
        return Err(not_a_name("a wildcard needs at least two labels after `*.`"));
    }
    for label in rest.split('.') {
        if label.is_empty() {
            return Err(not_a_name("it has an empty label"));
        }
        if label.len() > 63 {
            return Err(not_a_name("a label is longer than 63 characters"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(not_a_name(&format!("{c:?} is not allowed")));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(not_a_name("a label starts or ends with '-'"));
        }
    }
    Ok(name)
}

// ---------------------------------------------------------------- generation

struct Validity {
    /// Both ends as durations since the Unix epoch.
    not_before: Duration,
    not_after_epoch: Duration,
    not_after: SystemTime,
}

impl Validity {
    /// From an hour ago until `days` days from now.
    fn from_now(days: u32) -> Result<Validity, GenCertError> {
        let now = SystemTime::now();
        let since_epoch = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| GenCertError::Generate("the system clock is before 1970".to_owned()))?;
        let lifetime = Duration::from_secs(u64::from(days) * 24 * 3600);
        Ok(Validity {
            not_before: since_epoch.saturating_sub(BACKDATE),
            not_after_epoch: since_epoch + lifetime,
            not_after: now + lifetime,
        })
    }

    /// Sets the validity and a fresh serial number.
    fn apply(&self, params: &mut CertificateParams) -> Result<(), GenCertError> {
        // rcgen wants the `time` crate's type; counting from its epoch avoids
        // a direct dependency on that crate just to say "now".
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        params.not_before = epoch + self.not_before;
        params.not_after = epoch + self.not_after_epoch;
        params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
        Ok(())
    }
}

/// The generated PEM texts.
struct Pki {
    ca_name: String,
    ca_cert: String,
    ca_key: String,
    server_chain: String,
    server_key: String,
    client_chain: String,
    client_key: String,
}

fn generate(server_names: &[String], validity: &Validity) -> Result<Pki, GenCertError> {
    let failed = |what: &str, e: rcgen::Error| GenCertError::Generate(format!("{what}: {e}"));

    // A short random tag keeps the subjects of CAs made on different runs
    // apart, for stores that hold more than one.
    let mut tag = [0u8; 4];
    aws_lc_rs::rand::fill(&mut tag)
        .map_err(|_| GenCertError::Generate("the system random number generator failed".to_owned()))?;
    let tag: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    let ca_name = format!("portcullis development CA {tag}");

    let mut ca = CertificateParams::default();
    ca.distinguished_name = rcgen::DistinguishedName::new();
    ca.distinguished_name.push(DnType::CommonName, ca_name.as_str());
    ca.distinguished_name
        .push(DnType::OrganizationName, "portcullis gen-cert");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity.apply(&mut ca)?;
    let ca_key = new_key()?;
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = CertifiedIssuer::self_signed(ca, ca_key).map_err(|e| failed("signing the CA", e))?;
    let ca_pem = issuer.pem();

    let mut server = CertificateParams::new(server_names.to_vec())
        .map_err(|e| failed("a server name is not usable", e))?;
    let server_cn = server_names
        .get(BASE_NAMES.len())
        .filter(|n| n.parse::<IpAddr>().is_err())
        .map_or("localhost", String::as_str);
    server.distinguished_name = rcgen::DistinguishedName::new();
    server.distinguished_name.push(DnType::CommonName, server_cn);
    leaf(&mut server, ExtendedKeyUsagePurpose::ServerAuth, validity)?;
    let server_key = new_key()?;
    let server_cert = server
        .signed_by(&server_key, &issuer)
        .map_err(|e| failed("signing the server certificate", e))?;

    let mut client = CertificateParams::default();
    client.distinguished_name = rcgen::DistinguishedName::new();
    client.distinguished_name.push(DnType::CommonName, CLIENT_CN);
    leaf(&mut client, ExtendedKeyUsagePurpose::ClientAuth, validity)?;
    let client_key = new_key()?;
    let client_cert = client
        .signed_by(&client_key, &issuer)
        .map_err(|e| failed("signing the client certificate", e))?;

    Ok(Pki {
        ca_name,
        server_chain: format!("{}{ca_pem}", server_cert.pem()),
        server_key: server_key.serialize_pem(),
        client_chain: format!("{}{ca_pem}", client_cert.pem()),
        client_key: client_key.serialize_pem(),
        ca_cert: ca_pem,
        ca_key: ca_key_pem,
    })
}

/// An end-entity certificate: CA:FALSE, digitalSignature (ECDSA needs no
/// more), one extended key usage, and the issuer's key identifier.
fn leaf(
    params: &mut CertificateParams,
    usage: ExtendedKeyUsagePurpose,
    validity: &Validity,
) -> Result<(), GenCertError> {
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    validity.apply(params)
}

/// An EC P-256 key; rcgen serializes it as PKCS#8.
fn new_key() -> Result<KeyPair, GenCertError> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|e| GenCertError::Generate(format!("key generation failed: {e}")))
}

/// 128 random bits with the top bit cleared, so the DER integer is positive
/// without a sign byte.
fn random_serial() -> Result<[u8; 16], GenCertError> {
    let mut serial = [0u8; 16];
    aws_lc_rs::rand::fill(&mut serial)
        .map_err(|_| GenCertError::Generate("the system random number generator failed".to_owned()))?;
    serial[0] &= 0x7f;
    Ok(serial)
}

// ---------------------------------------------------------------- files

/// Refuses before anything is generated or written: a `--dir` that is not
/// a directory, an output path that is a directory, and, without `force`,
/// every output file that exists (all of them are named at once).
fn precheck(dir: &Path, layout: &Layout, force: bool) -> Result<(), GenCertError> {
    if let Ok(meta) = fs::metadata(dir) {
        if !meta.is_dir() {
            return Err(GenCertError::Usage(format!(
                "--dir {} exists and is not a directory",
                dir.display()
            )));
        }
    }
    let mut existing = Vec::new();
    for path in layout.all() {
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() => {
                return Err(GenCertError::Usage(format!(
                    "{} is a directory; remove it or choose another --dir",
                    path.display()
                )));
            }
            Ok(_) => existing.push(path.to_path_buf()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            // NotADirectory and the like: creating the directories will
            // report it with the path.
            Err(_) => {}
        }
    }
    if !force && !existing.is_empty() {
        return Err(GenCertError::Exists(existing));
    }
    Ok(())
}

/// Writes every file next to its target under a temporary name, then
/// renames each into place. A failure before the renames removes the
/// temporary files and leaves the targets as they were.
fn write_all(files: &[(&Path, &str, u32)]) -> Result<(), GenCertError> {
    let mut temps: Vec<PathBuf> = Vec::new();
    let staged = stage(files, &mut temps);
    if let Err(e) = staged {
        for t in &temps {
            let _ = fs::remove_file(t);
        }
        return Err(e);
    }
    for (i, ((target, _, _), temp)) in files.iter().zip(&temps).enumerate() {
        if let Err(source) = fs::rename(temp, target) {
            for t in &temps[i..] {
                let _ = fs::remove_file(t);
            }
            return Err(GenCertError::Io {
                action: "write",
                path: target.to_path_buf(),
                source,
            });
        }
    }
    // Make the renames durable; a failure here loses nothing that exists now.
    for (target, _, _) in files {
        if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
            let _ = fs::File::open(parent).and_then(|d| d.sync_all());
        }
    }
    Ok(())
}

fn stage(files: &[(&Path, &str, u32)], temps: &mut Vec<PathBuf>) -> Result<(), GenCertError> {
    for (target, contents, mode) in files {
        if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|source| GenCertError::Io {
                action: "create directory",
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let temp = temp_path(target)?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(*mode)
            .open(&temp)
            .map_err(|source| GenCertError::Io {
                action: "write",
                path: target.to_path_buf(),
                source,
            })?;
        temps.push(temp);
        // The mode given to open is reduced by the umask; set it exactly.
        file.set_permissions(Permissions::from_mode(*mode))
            .and_then(|()| file.write_all(contents.as_bytes()))
            .and_then(|()| file.sync_all())
            .map_err(|source| GenCertError::Io {
                action: "write",
                path: target.to_path_buf(),
                source,
            })?;
    }
    Ok(())
}

/// `.<name>.<random>.tmp` beside `target`.
fn temp_path(target: &Path) -> Result<PathBuf, GenCertError> {
    let mut r = [0u8; 6];
    aws_lc_rs::rand::fill(&mut r)
        .map_err(|_| GenCertError::Generate("the system random number generator failed".to_owned()))?;
    let r: String = r.iter().map(|b| format!("{b:02x}")).collect();
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(target.with_file_name(format!(".{name}.{r}.tmp")))
}

// ---------------------------------------------------------------- summary

impl Written {
    /// What was written and how to use it: serving the server certificate,
    /// trusting the CA (curl, openssl, the Debian/Ubuntu system store) and
    /// presenting the client certificate.
    pub fn summary(&self) -> String {
        let l = &self.layout;
        let p = |path: &Path| path.display().to_string();
        let sh = |path: &Path| shell_quote(&path.display().to_string());
        let until = humantime::format_rfc3339_seconds(self.not_after);
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Wrote a development CA and a server and a client certificate it signed, \
             valid until {until} ({} days):",
            self.days
        );
        let rows = [
            (
                p(&l.ca_cert),
                format!("CA certificate ({}): what clients trust", self.ca_name),
            ),
            (
                p(&l.ca_key),
                "CA private key (0600): keep it private; it can issue more certificates".to_owned(),
            ),
            (
                p(&l.server_cert),
                format!(
                    "server certificate, then the CA; names: {}",
                    self.server_names.join(", ")
                ),
            ),
            (p(&l.server_key), "server private key (0600)".to_owned()),
            (
                p(&l.client_cert),
                format!("client certificate (CN {CLIENT_CN}, clientAuth), then the CA"),
            ),
            (p(&l.client_key), "client private key (0600)".to_owned()),
        ];
        let width = rows.iter().map(|(path, _)| path.len()).max().unwrap_or(0);
        for (path, what) in &rows {
            let _ = writeln!(s, "  {path:<width$}  {what}");
        }

        let absolute = |path: &Path| {
            fs::canonicalize(path)
                .unwrap_or_else(|_| path.to_path_buf())
                .display()
                .to_string()
        };
        let _ = writeln!(s, "\nServe the server certificate (proxy.toml):");
        let _ = writeln!(s, "  [tls]");
        let _ = writeln!(s, "  cert = {}", toml_string(&absolute(&l.server_cert)));
        let _ = writeln!(s, "  key  = {}", toml_string(&absolute(&l.server_key)));

        let ca = sh(&l.ca_cert);
        let _ = writeln!(s, "\nTrust the CA:");
        let _ = writeln!(s, "  curl:     curl --cacert {ca} https://localhost:8443/");
        let _ = writeln!(
            s,
            "  openssl:  openssl s_client -connect localhost:8443 -CAfile {ca}"
        );
        let _ = writeln!(
            s,
            "  system store (Debian/Ubuntu):\n    \
             sudo cp {ca} /usr/local/share/ca-certificates/portcullis-dev.crt && sudo update-ca-certificates\n    \
             (undo: sudo rm /usr/local/share/ca-certificates/portcullis-dev.crt && sudo update-ca-certificates --fresh)"
        );
        let _ = writeln!(
            s,
            "\nClient certificate, for a server that asks for one (mTLS):\n  \
             curl --cacert {ca} --cert {} --key {} https://localhost:8443/",
            sh(&l.client_cert),
            sh(&l.client_key)
        );
        s
    }
}

/// Quotes `s` for a POSIX shell when it holds anything but plain path
/// characters.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:,@%=".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
