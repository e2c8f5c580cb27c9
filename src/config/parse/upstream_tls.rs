//! A route's keys for TLS to its upstream: `upstream_ca`,
//! `upstream_server_name` and `upstream_insecure_skip_verify`, and the rules
//! between them and the upstream's scheme.
//!
//! The CA file is only named here: it is read when the proxy starts, and by
//! `portcullis check`, so that a file replaced between a check and a start
//! is judged as it is at start.

use std::net::IpAddr;

use rustls_pki_types::ServerName;

use super::checker::{Checker, Table};
use super::route::check_host;
use crate::config::error::Invalid;
use crate::config::{Scheme, Upstream, UpstreamTls, UpstreamTrust};

const CA: &str = "upstream_ca";
const SERVER_NAME: &str = "upstream_server_name";
const SKIP_VERIFY: &str = "upstream_insecure_skip_verify";

impl Checker<'_> {
    /// How the route in `table` verifies its upstream, which is `upstream`
    /// (`None` when it is invalid): `Some` exactly for an `https://` one.
    pub(super) fn upstream_tls(
        &mut self,
        table: &Table<'_, '_>,
        upstream: Option<&Upstream>,
    ) -> Option<UpstreamTls> {
        const FULL: &str = "/etc/portcullis/upstream-ca.pem";
        let ca = self.file_path(table, CA, "\"/etc/portcullis/upstream-ca.pem\"", FULL);
        let server_name = self.server_name(table);
        let skip_verify = self.boolean(table, SKIP_VERIFY, false);
        let upstream = upstream?;
        if upstream.scheme == Scheme::Http {
            for key in [CA, SERVER_NAME, SKIP_VERIFY] {
                if let Some(value) = table.get(key) {
                    self.error(
                        &value.span(),
                        table.key_path(key),
                        format!("`{key}` is for https:// upstreams, and {upstream} is plain HTTP"),
                        format!(
                            "write upstream = \"https://{}\" if the application serves TLS there, or remove {key}",
                            upstream.authority()
                        ),
                    );
                }
            }
            return None;
        }
        if skip_verify && table.get(CA).is_some() {
            if let Some(value) = table.get(SKIP_VERIFY) {
                self.error(
                    &value.span(),
                    table.key_path(SKIP_VERIFY),
                    "`upstream_insecure_skip_verify = true` would ignore `upstream_ca`: the two contradict each other",
                    "remove upstream_insecure_skip_verify to verify the upstream against upstream_ca (recommended), or remove upstream_ca",
                );
            }
        }
        let upstream_span = table
            .get("upstream")
            .map_or(table.span.clone(), |value| value.span());
        if server_name.is_none()
            && table.get(SERVER_NAME).is_none()
            && ServerName::try_from(upstream.host.as_str()).is_err()
        {
            self.error(
                &upstream_span,
                table.key_path("upstream"),
                format!(
                    "`{}` is not a name a certificate can be checked against",
                    upstream.host
                ),
                "set upstream_server_name to a name the upstream's certificate covers, for example: upstream_server_name = \"api.internal\"",
            );
        }
        let trust = match ca {
            Some((path, span)) => UpstreamTrust::CaFile {
                path,
                origin: self.origin(&span),
            },
            None if skip_verify => UpstreamTrust::InsecureSkipVerify,
            None => UpstreamTrust::System,
        };
        Some(UpstreamTls {
            trust,
            server_name,
            route_key: table.path.clone(),
            upstream_origin: self.origin(&upstream_span),
        })
    }

    /// `upstream_server_name`, checked.
    fn server_name(&mut self, table: &Table<'_, '_>) -> Option<String> {
        let (text, span) = self.string(table, SERVER_NAME, "\"api.internal\"")?;
        match check_server_name(text) {
            Ok(name) => Some(name),
            Err(invalid) => {
                self.error(&span, table.key_path(SERVER_NAME), invalid.message, invalid.hint);
                None
            }
        }
    }
}

/// A name to send in SNI and to check a certificate against: a DNS name
/// (returned in lower case) or an IP literal (IPv6 without brackets).
fn check_server_name(raw: &str) -> Result<String, Invalid> {
    // The common mistakes (a URL, a path, a port, stray characters) are
    // explained as they are for certificate names.
    let name = check_host(raw, true)?;
    if name.starts_with("*.") {
        return Err(Invalid::new(
            format!("`{name}` is a wildcard; the proxy asks the upstream for one name"),
            "write one name the upstream's certificate covers, such as \"api.internal\"",
        ));
    }
    let bare = name
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(&name);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    match ServerName::try_from(bare) {
        Ok(_) => Ok(bare.to_owned()),
        Err(_) => Err(Invalid::new(
            format!("`{bare}` is not a valid DNS name"),
            "write a DNS name such as \"api.internal\", or an IP address",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::check_server_name;

    #[test]
    fn server_names() {
        assert_eq!(check_server_name(" API.internal ").unwrap(), "api.internal");
        assert_eq!(check_server_name("10.0.0.7").unwrap(), "10.0.0.7");
        assert_eq!(check_server_name("[::1]").unwrap(), "::1");
        assert_eq!(check_server_name("::1").unwrap(), "::1");
        assert!(check_server_name("api.internal:8443")
            .unwrap_err()
            .hint
            .contains("\"api.internal\""));
        assert!(check_server_name("https://api.internal/").is_err());
        assert!(check_server_name("*.internal")
            .unwrap_err()
            .message
            .contains("wildcard"));
        assert!(check_server_name("").is_err());
        assert!(check_server_name("a b").is_err());
    }
}
