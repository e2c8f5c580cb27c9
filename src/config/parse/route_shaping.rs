//! A route's path matching and rewriting keys: one of `path` (prefix),
//! `path_exact` and `path_regex`; `prefix_wins`, `ports`; `strip_prefix`,
//! `rewrite_prefix` (prefix routes) and `rewrite` (regex routes). Each key
//! written where it cannot apply is an error that says where it can.

use std::net::SocketAddr;
use std::ops::Range;

use toml::de::DeValue;

use super::checker::{Checker, Table};
use super::route::check_path;
use crate::config::{PathKind, PathRewrite, RouteShaping};

/// The keys that say how a route's path is matched, in the order named in
/// messages.
const PATH_KEYS: [&str; 3] = ["path", "path_exact", "path_regex"];

/// A route's path text, where it was written, and how it is matched.
pub(super) type RoutePath = (String, Range<usize>, PathKind);

impl Checker<'_> {
    /// The route's one path key: `path`, `path_exact` or `path_regex`.
    pub(super) fn route_path(&mut self, table: &Table<'_, '_>) -> Option<RoutePath> {
        let written = self.one_of(table, &PATH_KEYS, "a route matches its path one way");
        let [key] = written[..] else {
            if written.is_empty() {
                self.missing(
                    &table.span,
                    table.key_path("path"),
                    "this route has no `path`",
                    "add path = \"/\" to match every request, or a prefix such as path = \"/api\"",
                );
            }
            return None;
        };
        let (text, span) = self.string(table, key, "\"/ws\"")?;
        if let Err(invalid) = check_path_or_regex(key, text) {
            self.error(&span, table.key_path(key), invalid.0, invalid.1);
            return None;
        }
        let kind = match key {
            "path_exact" => PathKind::Exact,
            "path_regex" => match regex::Regex::new(text) {
                Ok(regex) => PathKind::Regex(regex),
                Err(e) => {
                    self.error(
                        &span,
                        table.key_path(key),
                        format!("invalid regex: {e}"),
                        "the syntax is the regex crate's (no look-around, no back-references); \
                         (?i) at the start makes it case-insensitive, as nginx's `location ~*`",
                    );
                    return None;
                }
            },
            _ => PathKind::Prefix,
        };
        Some((text.to_string(), span, kind))
    }

    /// Which of `keys` the route writes, each after the first reported as
    /// one too many, saying `why`.
    pub(super) fn one_of(
        &mut self,
        table: &Table<'_, '_>,
        keys: &[&'static str],
        why: &str,
    ) -> Vec<&'static str> {
        let written: Vec<&'static str> = keys
            .iter()
            .copied()
            .filter(|key| table.get(key).is_some())
            .collect();
        for extra in written.iter().skip(1) {
            if let Some(value) = table.get(extra) {
                self.error(
                    &value.span(),
                    table.key_path(extra),
                    format!("`{}` and `{extra}` in one route: {why}", written[0]),
                    "keep one of them, and write another [[route]] for the other",
                );
            }
        }
        written
    }

    /// The keys that shape a route whose path is matched as `kind`.
    pub(super) fn route_shaping(&mut self, table: &Table<'_, '_>, kind: Option<&PathKind>) -> RouteShaping {
        let ports = self.ports(table);
        let prefix = matches!(kind, Some(PathKind::Prefix));
        let prefix_wins = self.boolean(table, "prefix_wins", false);
        let strip_prefix = self.boolean(table, "strip_prefix", false);
        let rewrite_prefix = self.string(table, "rewrite_prefix", "\"/api/\"");
        for key in ["prefix_wins", "strip_prefix", "rewrite_prefix"] {
            if let (Some(value), Some(false)) = (table.get(key), kind.map(|_| prefix)) {
                self.error(
                    &value.span(),
                    table.key_path(key),
                    format!("`{key}` applies to a prefix route (`path`), and this route has none"),
                    "match the path with `path`, or remove the key (a regex route rewrites with `rewrite`)",
                );
            }
        }
        let mut rewrite = PathRewrite::Keep;
        match (strip_prefix, rewrite_prefix) {
            (true, Some((_, span))) => self.error(
                &span,
                table.key_path("rewrite_prefix"),
                "`strip_prefix` and `rewrite_prefix` in one route",
                "keep one: strip_prefix = true is rewrite_prefix = \"/\"",
            ),
            (true, None) => rewrite = PathRewrite::Prefix("/".to_string()),
            (false, Some((text, span))) => match check_path(text) {
                Ok(()) => rewrite = PathRewrite::Prefix(text.to_string()),
                Err(invalid) => self.error(
                    &span,
                    table.key_path("rewrite_prefix"),
                    invalid.message,
                    invalid.hint,
                ),
            },
            (false, None) => {}
        }
        if let Some((text, span)) = self.string(table, "rewrite", "\"/static/$1\"") {
            match kind {
                Some(PathKind::Regex(regex)) => match check_rewrite(regex, text) {
                    Ok(()) => rewrite = PathRewrite::Regex(text.to_string()),
                    Err((message, hint)) => self.error(&span, table.key_path("rewrite"), message, hint),
                },
                Some(_) => self.error(
                    &span,
                    table.key_path("rewrite"),
                    "`rewrite` applies to a regex route (`path_regex`), and this route has none",
                    "for a prefix route write strip_prefix = true or rewrite_prefix = \"/new/\"",
                ),
                None => {}
            }
        }
        RouteShaping {
            kind: kind.cloned().unwrap_or_default(),
            ports,
            prefix_wins: prefix_wins && prefix,
            rewrite,
            // Set by the route from `methods` and its action keys.
            methods: Vec::new(),
            action: crate::config::RouteAction::Proxy,
            headers: crate::config::RouteHeaders::default(),
            upstream_urls: crate::config::UpstreamUrls::default(),
        }
    }

    /// `ports`: a non-empty list of listening ports.
    fn ports(&mut self, table: &Table<'_, '_>) -> Vec<u16> {
        const EXAMPLE: &str = "ports = [9001]";
        let Some(value) = table.get("ports") else {
            return Vec::new();
        };
        let key = table.key_path("ports");
        let items = match value.get_ref() {
            DeValue::Array(items) if !items.is_empty() => items,
            DeValue::Array(_) => {
                self.error(
                    &value.span(),
                    key,
                    "an empty list would match no request",
                    "remove `ports` to answer on every listening port, or list some: ports = [9001]",
                );
                return Vec::new();
            }
            _ => {
                self.type_error(value, key, "a list of ports", format!("for example: {EXAMPLE}"));
                return Vec::new();
            }
        };
        let mut ports = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let port = match item.get_ref() {
                DeValue::Integer(n) => i128::from_str_radix(n.as_str(), n.radix())
                    .ok()
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|n| *n != 0),
                _ => None,
            };
            match port {
                Some(port) => ports.push(port),
                None => self.error(
                    &item.span(),
                    format!("{key}[{index}]"),
                    "a listening port is a number from 1 to 65535",
                    format!("for example: {EXAMPLE}"),
                ),
            }
        }
        ports
    }
}

impl Checker<'_> {
    /// Each route's `ports` names a port something listens on, unless a
    /// listener's port is chosen at start (`:0`), which could be any.
    pub(super) fn route_ports_listened(
        &mut self,
        top: &Table<'_, '_>,
        listeners: &[&[(SocketAddr, String)]],
    ) {
        let listening: Vec<u16> = listeners
            .iter()
            .flat_map(|l| l.iter().map(|(address, _)| address.port()))
            .collect();
        if listening.contains(&0) {
            return;
        }
        let Some(DeValue::Array(routes)) = top.get("route").map(|v| v.get_ref()) else {
            return;
        };
        let list = listening
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        for (index, route) in routes.iter().enumerate() {
            let DeValue::Table(route) = route.get_ref() else {
                continue;
            };
            let Some(DeValue::Array(ports)) = route.get("ports").map(|v| v.get_ref()) else {
                continue;
            };
            for (at, port) in ports.iter().enumerate() {
                let DeValue::Integer(n) = port.get_ref() else {
                    continue;
                };
                let Some(n) = u16::from_str_radix(n.as_str(), n.radix())
                    .ok()
                    .filter(|n| *n != 0)
                else {
                    continue;
                };
                if !listening.contains(&n) {
                    self.error(
                        &port.span(),
                        format!("route[{index}].ports[{at}]"),
                        format!("nothing listens on port {n}: this route would never be matched"),
                        format!("add an address with port {n} to [server] listen (or [http] listen), or write a port listened on: {list}"),
                    );
                }
            }
        }
    }
}

/// `path_exact` and `path_regex` written the way a request path is.
fn check_path_or_regex(key: &str, text: &str) -> Result<(), (String, String)> {
    match key {
        "path_regex" => Ok(()),
        "path_exact" => {
            check_path(text).map_err(|invalid| (invalid.message, invalid.hint))?;
            // Routes see the normalised path, so any other spelling would
            // never match.
            match crate::proxy::path::normalize(text) {
                Ok(normal) if normal == text => Ok(()),
                Ok(normal) => Err((
                    format!("`{text}` is never the path of a request: paths are normalised before matching"),
                    format!("write path_exact = \"{normal}\""),
                )),
                Err(_) => Err((
                    format!("`{text}` is never the path of a request: it is refused before matching"),
                    "write the path without `..` above the root or a broken `%` escape".to_string(),
                )),
            }
        }
        _ => check_path(text).map_err(|invalid| (invalid.message, invalid.hint)),
    }
}

/// A regex route's `rewrite`: a path, with `$N`, `${N}` and `${name}`
/// naming groups of the regex.
fn check_rewrite(regex: &regex::Regex, text: &str) -> Result<(), (String, String)> {
    if !text.starts_with('/') {
        return Err((
            format!("`{text}` does not start with `/`"),
            format!("write rewrite = \"/{}\"", text.trim_start_matches('/')),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '#')
    {
        return Err((
            format!(
                "`{}` contains a space, control character or `#`",
                text.escape_debug()
            ),
            "percent-encode them, as a request path would".to_string(),
        ));
    }
    let groups = regex.captures_len();
    let names: Vec<&str> = regex.capture_names().flatten().collect();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            rest = after;
            continue;
        }
        let (name, after) = match rest.strip_prefix('{') {
            Some(braced) => match braced.find('}') {
                Some(end) => (&braced[..end], &braced[end + 1..]),
                None => {
                    return Err((
                        format!("`{text}` has a `${{` without its `}}`"),
                        "write ${1} or ${name}".to_string(),
                    ))
                }
            },
            None => {
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                (&rest[..end], &rest[end..])
            }
        };
        let known = match name.parse::<usize>() {
            Ok(n) => n < groups,
            Err(_) => names.contains(&name),
        };
        if !known {
            let hint = if name.starts_with(|c: char| c.is_ascii_digit()) && name.parse::<usize>().is_err() {
                format!(
                    "`${name}` is read as a group named `{name}`; write ${{{}}} to follow a group number with text",
                    name.trim_end_matches(|c: char| !c.is_ascii_digit())
                )
            } else {
                format!(
                    "the regex has groups $1 to ${}{}; write $$ for a literal $",
                    groups.saturating_sub(1),
                    if names.is_empty() {
                        String::new()
                    } else {
                        format!(" and named {}", names.join(", "))
                    }
                )
            };
            return Err((
                format!("`{text}` names a group `{name}` the regex does not have"),
                hint,
            ));
        }
        rest = after;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_references() {
        let regex = regex::Regex::new("^/static/(?P<hash>[0-9a-f]{8})/(.*)$").unwrap();
        assert!(check_rewrite(&regex, "/static/$2").is_ok());
        assert!(check_rewrite(&regex, "/s/${hash}/${2}x$$").is_ok());
        assert!(check_rewrite(&regex, "/s/$3").is_err());
        assert!(check_rewrite(&regex, "/s/$2x").unwrap_err().1.contains("${2}"));
        assert!(check_rewrite(&regex, "static/$1").is_err());
        assert!(check_rewrite(&regex, "/s/${1").is_err());
    }
}
