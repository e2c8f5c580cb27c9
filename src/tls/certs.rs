//! Loading one certificate chain and its private key, and refusing them with a
//! precise, actionable error when they could not serve TLS.
//!
//! Everything that can be checked before a handshake is checked here, so that
//! a bad file is reported once, at startup or reload, naming the file and the
//! fix, instead of as an opaque handshake failure on every connection.

use std::fmt;
use std::io::{self, Read};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::time::ASN1Time;
use x509_parser::x509::X509Version;

/// Real certificate and key files are a few kilobytes; the cap only exists so
/// that a path pointing at something like a device or a log cannot make a
/// reload read without end.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// What the leaf certificate says about itself, for logs and status output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    /// Serial number as lowercase hex without separators.
    pub serial: String,
    pub subject: String,
    /// DNS names and IP addresses from subjectAltName, as text.
    pub sans: Vec<String>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// SHA-256 of the leaf's DER, lowercase hex without separators.
    pub sha256: String,
}

/// A certificate chain with its key, checked and ready to hand to rustls.
#[derive(Clone)]
pub struct LoadedCert {
    pub certified: Arc<CertifiedKey>,
    pub facts: CertFacts,
    /// Lowercase names this certificate answers for in SNI: the configured
    /// names, or if none were configured, the DNS names in subjectAltName.
    pub names: Vec<String>,
    /// Set when the file lacks the certificate that issued the server's
    /// own: a warning, not an error (see [`IncompleteChain`]).
    pub incomplete_chain: Option<IncompleteChain>,
}

/// A certificate file whose server certificate is not self-signed and was
/// issued by none of the certificates after it, such as certbot's
/// `cert.pem` given where `fullchain.pem` belongs.
///
/// Browsers often get by (they cache intermediates, or fetch them), so
/// such a file looks fine from a browser; curl, Python, Go and Java
/// clients hold only roots and fail with "unable to get local issuer
/// certificate". It is still served: a leaf issued directly by a root
/// that every client holds needs nothing more, and refusing a file that
/// worked yesterday would take a site down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncompleteChain {
    pub path: PathBuf,
    /// The issuer the server certificate names, as RFC 4514 text.
    pub issuer: String,
    /// How many other certificates the file holds.
    pub others: usize,
}

impl IncompleteChain {
    /// certbot's fullchain.pem next to its cert.pem (`live/<name>/cert.pem`).
    fn certbot_fullchain(&self) -> Option<PathBuf> {
        let dir = self.path.parent()?;
        let is_live = dir.parent()?.file_name()? == "live";
        (self.path.file_name()? == "cert.pem" && is_live).then(|| dir.join("fullchain.pem"))
    }
}

impl fmt::Display for IncompleteChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "certificate file {}: the chain is incomplete: ",
            self.path.display()
        )?;
        match self.others {
            0 => f.write_str("it holds the server certificate alone")?,
            n => write!(
                f,
                "none of the {n} certificate(s) after the server certificate issued it"
            )?,
        }
        write!(
            f,
            ", and its issuer ({}) is missing, so clients that hold only root certificates \
             (curl, Python, Go) fail with \"unable to get local issuer certificate\"; ",
            self.issuer
        )?;
        match self.certbot_fullchain() {
            Some(fullchain) => write!(
                f,
                "this is certbot's cert.pem, which holds no chain: use {} instead",
                fullchain.display()
            ),
            None => f.write_str(
                "append the intermediate certificate(s) after the server certificate \
                 (for certbot, use fullchain.pem instead of cert.pem)",
            ),
        }
    }
}

impl fmt::Debug for LoadedCert {
    // The key is deliberately left out: it has no business in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedCert")
            .field("names", &self.names)
            .field("chain_len", &self.certified.cert.len())
            .field("facts", &self.facts)
            .finish_non_exhaustive()
    }
}

/// Which of the two configured files an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRole {
    Cert,
    Key,
}

impl FileRole {
    fn certbot_name(self) -> &'static str {
        match self {
            FileRole::Cert => "fullchain.pem",
            FileRole::Key => "privkey.pem",
        }
    }
}

impl fmt::Display for FileRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileRole::Cert => "certificate file",
            FileRole::Key => "key file",
        })
    }
}

/// Why a certificate/key pair cannot be put into service.
///
/// Each message names the file and says what to do about it, because it is
/// usually read by an operator who did not write the configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    NotFound {
        role: FileRole,
        path: PathBuf,
    },
    PermissionDenied {
        role: FileRole,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    IsDirectory {
        role: FileRole,
        path: PathBuf,
    },
    TooLarge {
        role: FileRole,
        path: PathBuf,
        limit: u64,
    },
    Read {
        role: FileRole,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file is not PEM text, or its PEM is damaged.
    NotPem {
        role: FileRole,
        path: PathBuf,
        detail: String,
        /// No PEM block at all, as with a binary DER file.
        no_pem_at_all: bool,
    },
    /// PEM, but without a CERTIFICATE block.
    NoCertificate {
        path: PathBuf,
        holds_private_key: bool,
    },
    /// PEM, but without an unencrypted private key block.
    NoPrivateKey {
        path: PathBuf,
        encrypted: bool,
        holds_certificate: bool,
    },
    /// A private key block that cannot be parsed or is of an unsupported kind.
    UnusableKey {
        path: PathBuf,
        detail: String,
    },
    /// The key is not the leaf certificate's key. `matches_chain_index` is the
    /// 1-based position of another certificate in the file that the key does
    /// belong to, which means the chain is out of order.
    KeyMismatch {
        cert_path: PathBuf,
        key_path: PathBuf,
        matches_chain_index: Option<usize>,
    },
    /// Certificate number `index` (1-based; 1 is the leaf) is not usable X.509.
    ChainUnparsable {
        path: PathBuf,
        index: usize,
        detail: String,
    },
    /// The leaf is X.509 v1 or v2, which has no extensions and so no SANs.
    NotV3 {
        path: PathBuf,
        version: u32,
    },
    Expired {
        path: PathBuf,
        not_after: SystemTime,
        now: SystemTime,
    },
    NotYetValid {
        path: PathBuf,
        not_before: SystemTime,
        now: SystemTime,
    },
    NamesNotCovered {
        path: PathBuf,
        missing: Vec<String>,
        sans: Vec<String>,
    },
    /// Making the in-memory self-signed certificate failed.
    Generate {
        detail: String,
    },
}

impl CertError {
    /// The file the operator should look at, if the error is about a file.
    pub fn path(&self) -> Option<&Path> {
        use CertError::*;
        match self {
            NotFound { path, .. }
            | PermissionDenied { path, .. }
            | IsDirectory { path, .. }
            | TooLarge { path, .. }
            | Read { path, .. }
            | NotPem { path, .. }
            | NoCertificate { path, .. }
            | NoPrivateKey { path, .. }
            | UnusableKey { path, .. }
            | ChainUnparsable { path, .. }
            | NotV3 { path, .. }
            | Expired { path, .. }
            | NotYetValid { path, .. }
            | NamesNotCovered { path, .. } => Some(path),
            KeyMismatch {
                cert_path,
                key_path,
                matches_chain_index,
            } => Some(if matches_chain_index.is_some() {
                cert_path
            } else {
                key_path
            }),
            Generate { .. } => None,
        }
    }

    /// True when the fix belongs on the `key` configuration line rather than
    /// the `cert` line.
    pub fn is_key_problem(&self) -> bool {
        use CertError::*;
        match self {
            NotFound { role, .. }
            | PermissionDenied { role, .. }
            | IsDirectory { role, .. }
            | TooLarge { role, .. }
            | Read { role, .. }
            | NotPem { role, .. } => *role == FileRole::Key,
            NoPrivateKey { .. } | UnusableKey { .. } => true,
            // A key that matches another certificate in the chain is fine; the
            // certificate file is in the wrong order.
            KeyMismatch {
                matches_chain_index, ..
            } => matches_chain_index.is_none(),
            _ => false,
        }
    }

    /// Classifies an I/O failure on `path`, so that the two failures operators
    /// meet most (missing file, wrong permissions) get their own advice.
    pub fn from_io(role: FileRole, path: &Path, err: io::Error) -> Self {
        let path = path.to_path_buf();
        match err.kind() {
            io::ErrorKind::NotFound => CertError::NotFound { role, path },
            io::ErrorKind::PermissionDenied => CertError::PermissionDenied {
                role,
                path,
                source: err,
            },
            _ => CertError::Read {
                role,
                path,
                source: err,
            },
        }
    }
}

impl fmt::Display for CertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use CertError::*;
        match self {
            NotFound { role, path } => write!(
                f,
                "{role} {} does not exist; check the path, and if it is a symlink \
                 (as certbot's live/ files are), check that its target exists",
                path.display()
            ),
            PermissionDenied { role, path, .. } => write!(
                f,
                "cannot read {role} {}: permission denied; check the ownership and \
                 permissions of the file and of every directory above it, so that the \
                 user portcullis runs as can read it (certbot's archive/ and live/ \
                 directories are readable by root only by default)",
                path.display()
            ),
            IsDirectory { role, path } => write!(
                f,
                "{role} {} is a directory; point it at the PEM file inside \
                 (for certbot, {})",
                path.display(),
                role.certbot_name()
            ),
            TooLarge { role, path, limit } => write!(
                f,
                "{role} {} is larger than {limit} bytes, far more than any certificate \
                 or key; check that the path names the right file",
                path.display()
            ),
            Read { role, path, source } => write!(
                f,
                "cannot read {role} {}: {source}; check that the path names a regular, \
                 readable file",
                path.display()
            ),
            NotPem {
                role,
                path,
                detail,
                no_pem_at_all,
            } => {
                write!(
                    f,
                    "{role} {} is not PEM ({detail}); expected text with \
                     '-----BEGIN ...-----' blocks",
                    path.display()
                )?;
                if !*no_pem_at_all {
                    return f.write_str("; the file may be truncated or edited: copy it again");
                }
                let tool = match role {
                    FileRole::Cert => "x509",
                    FileRole::Key => "pkey",
                };
                write!(
                    f,
                    "; if it is binary DER, convert it with \
                     `openssl {tool} -inform der -in {} -out <new>.pem`",
                    path.display()
                )
            }
            NoCertificate {
                path,
                holds_private_key,
            } => {
                write!(
                    f,
                    "certificate file {} contains no CERTIFICATE block",
                    path.display()
                )?;
                if *holds_private_key {
                    f.write_str("; it holds a private key instead: are `cert` and `key` swapped?")
                } else {
                    f.write_str("; point `cert` at the certificate chain (for certbot, fullchain.pem)")
                }
            }
            NoPrivateKey {
                path,
                encrypted,
                holds_certificate,
            } => {
                write!(f, "key file {} contains no usable private key", path.display())?;
                if *encrypted {
                    write!(
                        f,
                        "; the key is encrypted with a passphrase, which portcullis cannot \
                         prompt for: write an unencrypted copy with \
                         `openssl pkey -in {} -out <new>.pem` and keep it readable only \
                         by the proxy's user",
                        path.display()
                    )
                } else if *holds_certificate {
                    f.write_str("; it holds a certificate instead: are `cert` and `key` swapped?")
                } else {
                    f.write_str(
                        "; expected a PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block \
                         (for certbot, privkey.pem)",
                    )
                }
            }
            UnusableKey { path, detail } => write!(
                f,
                "the private key in {} cannot be used ({detail}); supported keys are RSA \
                 (2048 bits or more), ECDSA on P-256, P-384 or P-521, and Ed25519, in \
                 PKCS#8, PKCS#1 or SEC1 PEM",
                path.display()
            ),
            KeyMismatch {
                cert_path,
                key_path,
                matches_chain_index: Some(index),
            } => write!(
                f,
                "the key in {} belongs to certificate #{index} in {}, not to the first \
                 one; the server's own certificate must come first, followed by its \
                 intermediates",
                key_path.display(),
                cert_path.display()
            ),
            KeyMismatch {
                cert_path,
                key_path,
                matches_chain_index: None,
            } => write!(
                f,
                "the key in {} does not belong to the certificate in {}; certbot's pair \
                 is fullchain.pem + privkey.pem from the same live/ directory",
                key_path.display(),
                cert_path.display()
            ),
            ChainUnparsable { path, index, detail } => {
                let which = if *index == 1 {
                    "the server certificate"
                } else {
                    "an intermediate"
                };
                write!(
                    f,
                    "certificate #{index} ({which}) in {} is not valid X.509 ({detail}); \
                     the file may be truncated or corrupted: copy it again from its source",
                    path.display()
                )
            }
            NotV3 { path, version } => write!(
                f,
                "the certificate in {} is X.509 v{version}, which cannot carry \
                 subjectAltName and which TLS clients reject; re-issue it as v3 with the \
                 server's names as SANs (with openssl: \
                 `-addext subjectAltName=DNS:<name>` or an -extfile)",
                path.display()
            ),
            Expired { path, not_after, now } => write!(
                f,
                "the certificate in {} expired at {} ({} ago); renew it (for certbot, \
                 `certbot renew`) and reload",
                path.display(),
                humantime::format_rfc3339_seconds(*not_after),
                approx_duration(now.duration_since(*not_after).unwrap_or_default())
            ),
            NotYetValid {
                path,
                not_before,
                now,
            } => write!(
                f,
                "the certificate in {} is not valid until {} ({} from now); check that \
                 this machine's clock is right, or wait",
                path.display(),
                humantime::format_rfc3339_seconds(*not_before),
                approx_duration(not_before.duration_since(*now).unwrap_or_default())
            ),
            NamesNotCovered { path, missing, sans } => {
                write!(
                    f,
                    "the certificate in {} does not cover {}",
                    path.display(),
                    missing.join(", ")
                )?;
                if sans.is_empty() {
                    f.write_str(" (it has no subjectAltName, and clients ignore the subject CN)")?;
                } else {
                    write!(f, " (it covers {})", sans.join(", "))?;
                }
                f.write_str(
                    "; re-issue it with those names (for certbot, `--expand -d <name>`) \
                     or correct the names configured for it",
                )
            }
            Generate { detail } => write!(
                f,
                "cannot generate a self-signed certificate: {detail}; check the extra \
                 names given for it"
            ),
        }
    }
}

/// Reads, parses and validates one certificate chain and key.
///
/// Both files are read through the paths as given, every time: certbot renews
/// by re-pointing the symlinks in live/, so a resolved path would go stale.
pub fn load(cert_path: &Path, key_path: &Path, names: &[String]) -> Result<LoadedCert, CertError> {
    let cert_pem = read_file(FileRole::Cert, cert_path)?;
    let key_pem = read_file(FileRole::Key, key_path)?;
    from_pem(&cert_pem, &key_pem, names, cert_path, key_path)
}

/// Validates PEM already in memory; the paths are only used in messages.
pub fn from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
    names: &[String],
    cert_path: &Path,
    key_path: &Path,
) -> Result<LoadedCert, CertError> {
    from_pem_at(cert_pem, key_pem, names, cert_path, key_path, SystemTime::now())
}

/// Reads one PEM file through `path` as given, with a size cap.
pub fn read_file(role: FileRole, path: &Path) -> Result<Vec<u8>, CertError> {
    let file = std::fs::File::open(path).map_err(|e| CertError::from_io(role, path, e))?;
    let meta = file.metadata().map_err(|e| CertError::from_io(role, path, e))?;
    if meta.is_dir() {
        return Err(CertError::IsDirectory {
            role,
            path: path.to_path_buf(),
        });
    }
    let mut buf = Vec::with_capacity(meta.len().min(MAX_FILE_BYTES) as usize);
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| CertError::from_io(role, path, e))?;
    if buf.len() as u64 > MAX_FILE_BYTES {
        return Err(CertError::TooLarge {
            role,
            path: path.to_path_buf(),
            limit: MAX_FILE_BYTES,
        });
    }
    Ok(buf)
}

/// A subjectAltName entry that can identify a TLS server.
#[derive(Debug, Clone, PartialEq, Eq)]
enum San {
    Dns(String),
    Ip(IpAddr),
}

impl fmt::Display for San {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            San::Dns(name) => f.write_str(name),
            San::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

fn from_pem_at(
    cert_pem: &[u8],
    key_pem: &[u8],
    names: &[String],
    cert_path: &Path,
    key_path: &Path,
    now: SystemTime,
) -> Result<LoadedCert, CertError> {
    let chain = parse_chain_pem(cert_pem, cert_path)?;
    let key = parse_key_pem(key_pem, key_path)?;

    let mut parsed = Vec::with_capacity(chain.len());
    for (i, der) in chain.iter().enumerate() {
        let unparsable = |detail: String| CertError::ChainUnparsable {
            path: cert_path.to_path_buf(),
            index: i + 1,
            detail,
        };
        match X509Certificate::from_der(der.as_ref()) {
            Ok(([], cert)) => parsed.push(cert),
            Ok((rest, _)) => {
                return Err(unparsable(format!(
                    "{} unexpected bytes after the certificate",
                    rest.len()
                )))
            }
            Err(e) => return Err(unparsable(e.to_string())),
        }
    }
    let Some(leaf) = parsed.first() else {
        // parse_chain_pem never returns an empty chain; this keeps a future
        // change from turning into a panic.
        return Err(CertError::NoCertificate {
            path: cert_path.to_path_buf(),
            holds_private_key: false,
        });
    };

    // Checked before the key: rustls' own parser rejects v1 outright, and the
    // message would then be about the wrong thing.
    if leaf.version() != X509Version::V3 {
        return Err(CertError::NotV3 {
            path: cert_path.to_path_buf(),
            version: leaf.version().0 + 1,
        });
    }

    let not_before = to_system_time(leaf.validity().not_before);
    let not_after = to_system_time(leaf.validity().not_after);
    let sans = leaf_sans(leaf).map_err(|detail| CertError::ChainUnparsable {
        path: cert_path.to_path_buf(),
        index: 1,
        detail,
    })?;
    let serial = serial_hex(leaf.raw_serial());
    let subject = leaf.subject().to_string();
    let sha256 = hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, leaf.as_raw()).as_ref());
    let incomplete_chain =
        (!issued_by(leaf, leaf) && !parsed[1..].iter().any(|c| issued_by(leaf, c))).then(|| {
            IncompleteChain {
                path: cert_path.to_path_buf(),
                issuer: leaf.issuer().to_string(),
                others: parsed.len() - 1,
            }
        });
    drop(parsed);

    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| CertError::UnusableKey {
            path: key_path.to_path_buf(),
            detail: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => {}
        // The provider cannot say; a real mismatch would then fail every
        // handshake, but aws-lc-rs keys always know their public half.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(CertError::KeyMismatch {
                cert_path: cert_path.to_path_buf(),
                key_path: key_path.to_path_buf(),
                matches_chain_index: key_owner_in_chain(&certified),
            });
        }
        Err(other) => {
            return Err(CertError::ChainUnparsable {
                path: cert_path.to_path_buf(),
                index: 1,
                detail: format!("rejected by the TLS library: {other}"),
            })
        }
    }

    if now < not_before {
        return Err(CertError::NotYetValid {
            path: cert_path.to_path_buf(),
            not_before,
            now,
        });
    }
    if now > not_after {
        return Err(CertError::Expired {
            path: cert_path.to_path_buf(),
            not_after,
            now,
        });
    }

    let names = if names.is_empty() {
        let mut out: Vec<String> = Vec::new();
        for san in &sans {
            if let San::Dns(d) = san {
                let n = normalize_name(d);
                if !out.contains(&n) {
                    out.push(n);
                }
            }
        }
        out
    } else {
        let mut out: Vec<String> = Vec::new();
        let mut missing = Vec::new();
        for name in names {
            let n = normalize_name(name);
            if !sans_cover(&sans, &n) {
                missing.push(n);
            } else if !out.contains(&n) {
                out.push(n);
            }
        }
        if !missing.is_empty() {
            return Err(CertError::NamesNotCovered {
                path: cert_path.to_path_buf(),
                missing,
                sans: sans.iter().map(San::to_string).collect(),
            });
        }
        out
    };

    let facts = CertFacts {
        serial,
        subject,
        sans: sans.iter().map(San::to_string).collect(),
        not_before,
        not_after,
        sha256,
    };

    Ok(LoadedCert {
        certified: Arc::new(certified),
        facts,
        names,
        incomplete_chain,
    })
}

/// Whether `issuer` is the certificate that issued `cert`, as TLS clients
/// build chains: its subject is the name `cert` gives as issuer, and where
/// both carry key identifiers, they agree. Signatures are left to the
/// clients; this is about what the file holds, not whether to trust it.
fn issued_by(cert: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> bool {
    let names_match = cert.issuer().as_raw() == issuer.subject().as_raw()
        || cert.issuer().to_string() == issuer.subject().to_string();
    if !names_match {
        return false;
    }
    let authority_key = cert.extensions().iter().find_map(|e| match e.parsed_extension() {
        ParsedExtension::AuthorityKeyIdentifier(aki) => aki.key_identifier.as_ref().map(|k| k.0),
        _ => None,
    });
    let subject_key = issuer
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(ski) => Some(ski.0),
            _ => None,
        });
    match (authority_key, subject_key) {
        (Some(authority), Some(subject)) => authority == subject,
        _ => true,
    }
}

/// On a mismatch, whether the key belongs to a later certificate in the file
/// (1-based position), which means the chain was written out of order.
fn key_owner_in_chain(certified: &CertifiedKey) -> Option<usize> {
    let spki = certified.key.public_key()?;
    certified.cert.iter().enumerate().skip(1).find_map(|(i, der)| {
        let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
        (cert.public_key().raw == spki.as_ref()).then_some(i + 1)
    })
}

fn parse_chain_pem(cert_pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::NotPem {
            role: FileRole::Cert,
            path: path.to_path_buf(),
            detail: pem_error_text(&e),
            no_pem_at_all: false,
        })?;
    if chain.is_empty() {
        if !has_pem_begin(cert_pem) {
            return Err(CertError::NotPem {
                role: FileRole::Cert,
                path: path.to_path_buf(),
                detail: "no '-----BEGIN' line".to_owned(),
                no_pem_at_all: true,
            });
        }
        return Err(CertError::NoCertificate {
            path: path.to_path_buf(),
            holds_private_key: PrivateKeyDer::from_pem_slice(cert_pem).is_ok(),
        });
    }
    Ok(chain)
}

fn parse_key_pem(key_pem: &[u8], path: &Path) -> Result<PrivateKeyDer<'static>, CertError> {
    let err = match PrivateKeyDer::from_pem_slice(key_pem) {
        Ok(key) => return Ok(key),
        Err(e) => e,
    };
    // Encrypted keys are checked first: the legacy "Proc-Type: 4,ENCRYPTED"
    // form also trips the PEM decoder, which would give a less useful message.
    let encrypted = contains(key_pem, b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || contains(key_pem, b"Proc-Type: 4,ENCRYPTED");
    match err {
        _ if encrypted => Err(CertError::NoPrivateKey {
            path: path.to_path_buf(),
            encrypted: true,
            holds_certificate: false,
        }),
        pem::Error::NoItemsFound if has_pem_begin(key_pem) => Err(CertError::NoPrivateKey {
            path: path.to_path_buf(),
            encrypted: false,
            holds_certificate: CertificateDer::from_pem_slice(key_pem).is_ok(),
        }),
        pem::Error::NoItemsFound => Err(CertError::NotPem {
            role: FileRole::Key,
            path: path.to_path_buf(),
            detail: "no '-----BEGIN' line".to_owned(),
            no_pem_at_all: true,
        }),
        other => Err(CertError::NotPem {
            role: FileRole::Key,
            path: path.to_path_buf(),
            detail: pem_error_text(&other),
            no_pem_at_all: false,
        }),
    }
}

/// The PEM decoder's own messages print byte strings as lists of numbers.
pub(crate) fn pem_error_text(err: &pem::Error) -> String {
    match err {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "missing '-----END {}-----' line",
            String::from_utf8_lossy(end_marker).trim()
        ),
        pem::Error::IllegalSectionStart { line } => {
            format!("malformed BEGIN line '{}'", String::from_utf8_lossy(line).trim())
        }
        pem::Error::Base64Decode(e) => format!("bad base64 inside a block: {e}"),
        other => other.to_string(),
    }
}

fn has_pem_begin(data: &[u8]) -> bool {
    contains(data, b"-----BEGIN ")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn leaf_sans(leaf: &X509Certificate<'_>) -> Result<Vec<San>, String> {
    let ext = leaf
        .subject_alternative_name()
        .map_err(|e| format!("its subjectAltName extension is malformed: {e}"))?;
    let Some(ext) = ext else {
        return Ok(Vec::new());
    };
    let mut sans = Vec::new();
    for name in &ext.value.general_names {
        match name {
            GeneralName::DNSName(d) => sans.push(San::Dns((*d).to_owned())),
            GeneralName::IPAddress(bytes) => {
                if let Ok(octets) = <[u8; 4]>::try_from(*bytes) {
                    sans.push(San::Ip(IpAddr::from(octets)));
                } else if let Ok(octets) = <[u8; 16]>::try_from(*bytes) {
                    sans.push(San::Ip(IpAddr::from(octets)));
                }
            }
            // E-mail, URI and other name forms never identify a TLS server.
            _ => {}
        }
    }
    Ok(sans)
}

/// Lowercase, without surrounding blanks or the root's trailing dot: the form
/// rustls gives SNI in, so lookups can compare bytes.
pub(crate) fn normalize_name(name: &str) -> String {
    let name = name.trim();
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

fn sans_cover(sans: &[San], name: &str) -> bool {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return sans.contains(&San::Ip(ip));
    }
    sans.iter().any(|san| match san {
        San::Dns(pattern) => dns_pattern_covers(pattern, name),
        San::Ip(_) => false,
    })
}

/// Whether a SAN DNS entry covers `name`. A wildcard stands for exactly one
/// whole leftmost label, as clients apply it (RFC 6125 §6.4.3, without the
/// partial-label forms that browsers no longer honour).
fn dns_pattern_covers(pattern: &str, name: &str) -> bool {
    let pattern = pattern.strip_suffix('.').unwrap_or(pattern);
    if pattern.eq_ignore_ascii_case(name) {
        return true;
    }
    let Some(parent) = pattern.strip_prefix("*.") else {
        return false;
    };
    match name.split_once('.') {
        Some((label, rest)) => {
            !label.is_empty() && label != "*" && !parent.is_empty() && rest.eq_ignore_ascii_case(parent)
        }
        None => false,
    }
}

/// Hex of the serial's magnitude: DER adds a leading zero byte to keep large
/// serials positive, which `openssl x509 -serial` does not show either.
fn serial_hex(raw: &[u8]) -> String {
    let start = raw
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    hex(&raw[start..])
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn to_system_time(t: ASN1Time) -> SystemTime {
    let secs = t.timestamp();
    let moved = if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(secs.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))
    };
    // Only reachable on a platform whose SystemTime cannot hold X.509's range
    // (years 0-9999); the epoch then at least fails validity loudly.
    moved.unwrap_or(UNIX_EPOCH)
}

/// A coarse, human reading of a span: operators want "3 days", not seconds.
fn approx_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = match secs {
        s if s >= 2 * 86_400 => (s / 86_400, "days"),
        s if s >= 2 * 3_600 => (s / 3_600, "hours"),
        s if s >= 2 * 60 => (s / 60, "minutes"),
        s => (s, "seconds"),
    };
    format!("{n} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_map_to_their_own_variants() {
        let p = Path::new("/etc/x/privkey.pem");
        let denied = CertError::from_io(FileRole::Key, p, io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(matches!(denied, CertError::PermissionDenied { .. }));
        assert!(denied.is_key_problem());
        assert_eq!(denied.path(), Some(p));
        let msg = denied.to_string();
        assert!(msg.contains("permission denied"), "{msg}");
        assert!(msg.contains("/etc/x/privkey.pem"), "{msg}");
        assert!(msg.contains("ownership and permissions"), "{msg}");

        let missing = CertError::from_io(FileRole::Cert, p, io::Error::from(io::ErrorKind::NotFound));
        assert!(matches!(missing, CertError::NotFound { .. }));
        assert!(!missing.is_key_problem());

        let other = CertError::from_io(FileRole::Cert, p, io::Error::other("disk on fire"));
        assert!(matches!(other, CertError::Read { .. }));
        assert!(other.to_string().contains("disk on fire"));
    }

    #[test]
    fn wildcard_covers_exactly_one_label() {
        assert!(dns_pattern_covers("*.example.com", "a.example.com"));
        assert!(dns_pattern_covers("*.Example.COM", "a.example.com"));
        assert!(!dns_pattern_covers("*.example.com", "a.b.example.com"));
        assert!(!dns_pattern_covers("*.example.com", "example.com"));
        assert!(!dns_pattern_covers("*.example.com", ".example.com"));
        assert!(!dns_pattern_covers("*.example.com", "a.example.org"));
        assert!(dns_pattern_covers("*.example.com", "*.example.com"));
        assert!(dns_pattern_covers("example.com.", "example.com"));
        assert!(!dns_pattern_covers("a.example.com", "*.example.com"));
    }

    #[test]
    fn ip_names_need_ip_sans() {
        let sans = vec![San::Dns("127.0.0.1".into()), San::Ip("::1".parse().unwrap())];
        assert!(!sans_cover(&sans, "127.0.0.1"));
        assert!(sans_cover(&sans, "::1"));
        assert!(sans_cover(&sans, "0:0::1"));
    }

    #[test]
    fn serials_print_without_sign_padding() {
        assert_eq!(serial_hex(&[0x00, 0x9a, 0x01]), "9a01");
        assert_eq!(serial_hex(&[0x01]), "01");
        assert_eq!(serial_hex(&[0x00]), "00");
        assert_eq!(serial_hex(&[]), "");
    }

    #[test]
    fn names_are_normalized_like_sni() {
        assert_eq!(normalize_name(" WWW.Example.com. "), "www.example.com");
    }

    #[test]
    fn times_before_1970_convert() {
        let t = ASN1Time::from_timestamp(-86_400).unwrap();
        assert_eq!(to_system_time(t), UNIX_EPOCH - Duration::from_secs(86_400));
    }

    #[test]
    fn durations_read_coarsely() {
        assert_eq!(approx_duration(Duration::from_secs(5)), "5 seconds");
        assert_eq!(approx_duration(Duration::from_secs(3 * 86_400 + 5)), "3 days");
        assert_eq!(approx_duration(Duration::from_secs(7_300)), "2 hours");
    }

    #[test]
    fn mismatch_in_chain_order_points_at_cert_file() {
        let e = CertError::KeyMismatch {
            cert_path: "c.pem".into(),
            key_path: "k.pem".into(),
            matches_chain_index: Some(2),
        };
        assert!(!e.is_key_problem());
        assert_eq!(e.path(), Some(Path::new("c.pem")));
        assert!(e.to_string().contains("must come first"));
    }

    #[test]
    fn pem_garbage_is_reported_readably() {
        let pem = b"-----BEGIN CERTIFICATE-----\nAAAA\n";
        let err = parse_chain_pem(pem, Path::new("c.pem")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("missing '-----END CERTIFICATE-----' line"), "{msg}");
        assert!(!msg.contains("DER"), "{msg}");
    }
}
