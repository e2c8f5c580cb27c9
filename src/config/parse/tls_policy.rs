//! `[tls] cipher_suites`, `groups` and `session_resumption`: the names
//! portcullis accepts for each, and the combinations that would leave a
//! protocol version with nothing to negotiate.
//!
//! Names are the ones rustls and the IANA registry use. The OpenSSL
//! spellings people copy from nginx configurations are recognised only to
//! say which name to write instead.

use std::ops::Range;

use rustls::{CipherSuite, NamedGroup};
use toml::de::DeValue;

use super::checker::{Checker, Table};
use crate::config::TlsVersion;

/// Every suite the aws-lc-rs provider implements, in the default order of
/// preference (the server's order wins). All are AEAD with forward
/// secrecy; there is nothing weaker to turn on.
const SUITES: &[(&str, CipherSuite)] = &[
    ("TLS13_AES_256_GCM_SHA384", CipherSuite::TLS13_AES_256_GCM_SHA384),
    ("TLS13_AES_128_GCM_SHA256", CipherSuite::TLS13_AES_128_GCM_SHA256),
    (
        "TLS13_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// OpenSSL's names for the same suites (`ssl_ciphers` in nginx), and the
/// registry's TLS 1.3 names, which lack rustls's `13`.
const SUITE_ALIASES: &[(&str, &str)] = &[
    ("TLS_AES_256_GCM_SHA384", "TLS13_AES_256_GCM_SHA384"),
    ("TLS_AES_128_GCM_SHA256", "TLS13_AES_128_GCM_SHA256"),
    ("TLS_CHACHA20_POLY1305_SHA256", "TLS13_CHACHA20_POLY1305_SHA256"),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    ),
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
];

/// Every key-exchange group the provider implements, with the name the
/// IANA registry gives it. The default order puts the post-quantum
/// hybrid first; the ML-KEM-only groups are there for those who ask.
const GROUPS: &[(&str, NamedGroup, Kind)] = &[
    ("X25519MLKEM768", NamedGroup::X25519MLKEM768, Kind::Tls13Only),
    ("X25519", NamedGroup::X25519, Kind::Classical),
    ("secp256r1", NamedGroup::secp256r1, Kind::Classical),
    ("secp384r1", NamedGroup::secp384r1, Kind::Classical),
    (
        "SecP256r1MLKEM768",
        NamedGroup::secp256r1MLKEM768,
        Kind::Tls13Only,
    ),
    ("MLKEM768", NamedGroup::MLKEM768, Kind::Tls13Only),
    ("MLKEM1024", NamedGroup::MLKEM1024, Kind::Tls13Only),
];

/// How many of [`GROUPS`] are offered when `groups` is not set.
const DEFAULT_GROUPS: usize = 4;

/// The names OpenSSL and the NIST documents use for the same curves.
const GROUP_ALIASES: &[(&str, &str)] = &[
    ("prime256v1", "secp256r1"),
    ("P-256", "secp256r1"),
    ("P256", "secp256r1"),
    ("P-384", "secp384r1"),
    ("P384", "secp384r1"),
    ("X25519Kyber768Draft00", "X25519MLKEM768"),
];

/// A string of a list, and where it was written.
type Written<'a> = (&'a str, Range<usize>);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Usable by TLS 1.2's ECDHE as well as TLS 1.3.
    Classical,
    /// A key encapsulation: TLS 1.3 only.
    Tls13Only,
}

/// The suites offered when `cipher_suites` is not set.
pub fn default_cipher_suites() -> Vec<CipherSuite> {
    SUITES.iter().map(|(_, suite)| *suite).collect()
}

/// The groups offered when `groups` is not set.
pub fn default_groups() -> Vec<NamedGroup> {
    GROUPS[..DEFAULT_GROUPS]
        .iter()
        .map(|(_, group, _)| *group)
        .collect()
}

fn is_tls13(suite: CipherSuite) -> bool {
    SUITES
        .iter()
        .any(|(name, s)| *s == suite && name.starts_with("TLS13_"))
}

fn suite_names() -> String {
    SUITES
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn group_names() -> String {
    GROUPS
        .iter()
        .map(|(name, ..)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Checker<'_> {
    /// The strings of a list-valued key, each with where it was written.
    /// `None` when the key is absent or is not a list of strings (the
    /// latter reported).
    fn string_list<'a>(
        &mut self,
        table: &Table<'a, '_>,
        key: &str,
        example: &str,
    ) -> Option<(Vec<Written<'a>>, Range<usize>)> {
        let value = table.get(key)?;
        let key_path = table.key_path(key);
        let DeValue::Array(items) = value.get_ref() else {
            self.type_error(
                value,
                key_path,
                "a list of strings",
                format!("for example: {example}"),
            );
            return None;
        };
        let mut strings = Vec::new();
        let mut ok = true;
        for (index, item) in items.iter().enumerate() {
            match item.get_ref() {
                DeValue::String(text) => strings.push((text.as_ref(), item.span())),
                _ => {
                    let path = format!("{key_path}[{index}]");
                    self.type_error(item, path, "a string", format!("for example: {example}"));
                    ok = false;
                }
            }
        }
        if strings.is_empty() && ok {
            self.error(
                &value.span(),
                key_path,
                "the list is empty: nothing could be negotiated".to_string(),
                format!("remove the key to use the default, or write for example: {example}"),
            );
            return None;
        }
        ok.then_some((strings, value.span()))
    }

    /// `cipher_suites`: `None` when not set (the default set applies).
    pub(super) fn cipher_suites(
        &mut self,
        table: &Table<'_, '_>,
        min_version: TlsVersion,
    ) -> Option<Vec<CipherSuite>> {
        const EXAMPLE: &str = "cipher_suites = [\"TLS13_AES_128_GCM_SHA256\", \
                               \"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\"]";
        let (names, span) = self.string_list(table, "cipher_suites", EXAMPLE)?;
        let key = table.key_path("cipher_suites");
        let mut suites = Vec::new();
        let mut ok = true;
        for (index, (name, at)) in names.into_iter().enumerate() {
            let path = format!("{key}[{index}]");
            let name = name.trim();
            match lookup(SUITES, SUITE_ALIASES, name) {
                Found::Exact(suite) if suites.contains(&suite) => {
                    self.error(
                        &at,
                        path,
                        format!("{name} is listed twice"),
                        "remove one".to_string(),
                    );
                    ok = false;
                }
                Found::Exact(suite) => suites.push(suite),
                Found::Alias(canonical) => {
                    self.error(
                        &at,
                        path,
                        format!("{name:?} is not how portcullis names this cipher suite"),
                        format!("write \"{canonical}\""),
                    );
                    ok = false;
                }
                Found::Unknown => {
                    let message = if name.contains(':') || name.contains(' ') {
                        format!("{name:?} is a list in one string: write one cipher suite per string")
                    } else {
                        format!("{name:?} is not a cipher suite portcullis supports")
                    };
                    self.error(&at, path, message, format!("valid names: {}", suite_names()));
                    ok = false;
                }
            }
        }
        if !ok {
            return None;
        }
        if !suites.iter().any(|s| is_tls13(*s)) {
            self.error(
                &span,
                key.clone(),
                "no TLS 1.3 cipher suite is listed, and TLS 1.3 is always on".to_string(),
                "add at least one, e.g. \"TLS13_AES_128_GCM_SHA256\"".to_string(),
            );
            return None;
        }
        if min_version == TlsVersion::V1_2 && suites.iter().all(|s| is_tls13(*s)) {
            self.error(
                &span,
                key,
                "no TLS 1.2 cipher suite is listed, so TLS 1.2 clients could not connect".to_string(),
                "add one such as \"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\", or set min_version = \"1.3\""
                    .to_string(),
            );
            return None;
        }
        Some(suites)
    }

    /// `groups`: `None` when not set (the default groups apply).
    pub(super) fn groups(
        &mut self,
        table: &Table<'_, '_>,
        min_version: TlsVersion,
    ) -> Option<Vec<NamedGroup>> {
        const EXAMPLE: &str = "groups = [\"X25519MLKEM768\", \"X25519\", \"secp256r1\"]";
        let (names, span) = self.string_list(table, "groups", EXAMPLE)?;
        let key = table.key_path("groups");
        let mut groups = Vec::new();
        let mut classical = false;
        let mut ok = true;
        for (index, (name, at)) in names.into_iter().enumerate() {
            let path = format!("{key}[{index}]");
            let name = name.trim();
            let found = GROUPS
                .iter()
                .find(|(canonical, ..)| canonical.eq_ignore_ascii_case(name));
            match found {
                Some((canonical, group, _)) if groups.contains(group) => {
                    self.error(
                        &at,
                        path,
                        format!("{canonical} is listed twice"),
                        "remove one".to_string(),
                    );
                    ok = false;
                }
                Some((_, group, kind)) => {
                    classical |= *kind == Kind::Classical;
                    groups.push(*group);
                }
                None => {
                    let alias = GROUP_ALIASES
                        .iter()
                        .find(|(alias, _)| alias.eq_ignore_ascii_case(name));
                    let (message, hint) = match alias {
                        Some((_, canonical)) => (
                            format!("{name:?} is not how portcullis names this group"),
                            format!("write \"{canonical}\""),
                        ),
                        None => (
                            format!("{name:?} is not a key-exchange group portcullis supports"),
                            format!("valid names: {}", group_names()),
                        ),
                    };
                    self.error(&at, path, message, hint);
                    ok = false;
                }
            }
        }
        if !ok {
            return None;
        }
        if min_version == TlsVersion::V1_2 && !classical {
            self.error(
                &span,
                key,
                "only post-quantum groups are listed, and TLS 1.2 cannot use them".to_string(),
                "add \"X25519\" or \"secp256r1\", or set min_version = \"1.3\"".to_string(),
            );
            return None;
        }
        Some(groups)
    }
}

enum Found<T> {
    Exact(T),
    /// Another spelling of the name given here.
    Alias(&'static str),
    Unknown,
}

fn lookup<T: Copy>(table: &[(&'static str, T)], aliases: &[(&str, &'static str)], name: &str) -> Found<T> {
    if let Some((_, value)) = table.iter().find(|(canonical, _)| *canonical == name) {
        return Found::Exact(*value);
    }
    let folded = |a: &str| a.eq_ignore_ascii_case(name);
    if let Some((canonical, _)) = table.iter().find(|(canonical, _)| folded(canonical)) {
        return Found::Alias(canonical);
    }
    match aliases.iter().find(|(alias, _)| folded(alias)) {
        Some((_, canonical)) => Found::Alias(canonical),
        None => Found::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_all_known_and_post_quantum_first() {
        assert_eq!(default_cipher_suites().len(), SUITES.len());
        assert_eq!(default_groups()[0], NamedGroup::X25519MLKEM768);
        assert!(default_groups().contains(&NamedGroup::X25519));
    }

    #[test]
    fn openssl_names_point_at_ours() {
        assert!(matches!(
            lookup(SUITES, SUITE_ALIASES, "ECDHE-RSA-AES128-GCM-SHA256"),
            Found::Alias("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")
        ));
        assert!(matches!(
            lookup(SUITES, SUITE_ALIASES, "tls13_aes_128_gcm_sha256"),
            Found::Alias("TLS13_AES_128_GCM_SHA256")
        ));
        assert!(matches!(lookup(SUITES, SUITE_ALIASES, "RC4-SHA"), Found::Unknown));
    }
}
