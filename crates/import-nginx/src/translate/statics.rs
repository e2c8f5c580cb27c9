//! Files: `root`, `alias`, `try_files` (its `@name` a pool made from the
//! named location), `index`, `gzip_static`; and `error_page`s as files.

use super::location::Match;
use super::{absolute, from, upstream, Out};
use crate::emit::{Table, Value};
use crate::inherit::Scope;

/// A route that serves files; false when the location has no root.
pub(crate) fn files(
    out: &mut Out<'_>,
    t: &mut Table,
    scope: &Scope<'_>,
    server: &Scope<'_>,
    m: &Match,
) -> bool {
    if let Some(alias) = scope.own().iter().find(|d| d.name == "alias") {
        if matches!(m, Match::Regex(_)) {
            out.report.decision(
                alias,
                "alias in a regex location takes the regex's groups: use root (the whole path) instead",
            );
            return false;
        }
        t.set("alias", absolute(&out.prefix, alias.arg(0)), from(alias));
    } else if t.get("root").is_some() {
    } else if let Some(root) = scope.get("root") {
        if root.arg(0).contains('$') {
            out.report
                .decision(root, "a root made of variables has no translation");
            return false;
        }
        t.set("root", absolute(&out.prefix, root.arg(0)), from(root));
    } else {
        return false;
    }
    if let Some(d) = scope.get("try_files") {
        let mut entries = Vec::new();
        for arg in &d.args {
            let entry = if let Some(name) = arg.strip_prefix('@') {
                match named(out, t, server, name) {
                    Some(pool) => format!("@{pool}"),
                    None => return true,
                }
            } else if arg.starts_with('=') {
                arg.clone()
            } else if arg.contains('$') {
                let e = arg.replace("$uri", "{path}").replace("${uri}", "{path}");
                if e.contains('$') {
                    out.report
                        .decision(d, format!("{arg}: try_files entries take {{path}} only"));
                    return true;
                }
                e
            } else {
                arg.clone()
            };
            entries.push(Value::from(entry));
        }
        t.set("try_files", Value::List(entries), from(d));
        if d.args.iter().any(|a| a.starts_with('@')) {
            super::proxy::body_limit(out, t, scope);
        }
    }
    if let Some(d) = scope.get("index") {
        let list: Vec<Value> = d.args.iter().map(|a| Value::from(a.as_str())).collect();
        if d.args != ["index.html"] {
            t.set("index", Value::List(list), from(d));
        }
    }
    let mut pre = Vec::new();
    for (name, enc) in [("brotli_static", "br"), ("gzip_static", "gzip")] {
        if let Some(d) = scope
            .get(name)
            .filter(|d| d.arg(0) == "on" || d.arg(0) == "always")
        {
            pre.push(Value::from(enc));
            t.set("precompressed", Value::List(pre.clone()), from(d));
        }
    }
    true
}

/// The pool a `try_files ... @name` forwards to: the named location's
/// upstream.
fn named(out: &mut Out<'_>, t: &mut Table, server: &Scope<'_>, name: &str) -> Option<String> {
    let loc = server
        .own()
        .iter()
        .find(|d| d.name == "location" && d.arg(0) == format!("@{name}"))?;
    let Some(pass) = loc.children().iter().find(|d| d.name == "proxy_pass") else {
        out.report
            .decision(loc, "try_files forwards only to a named location with proxy_pass");
        return None;
    };
    let url = pass.arg(0);
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let hostport = rest.split('/').next().unwrap_or(rest);
    let benign = |d: &&crate::parse::Directive| {
        let header = (d.arg(0).to_ascii_lowercase(), d.arg(1));
        matches!(d.name.as_str(), "proxy_pass" | "proxy_http_version")
            || (d.name == "proxy_set_header"
                && matches!(
                    (header.0.as_str(), header.1),
                    ("host", "$host" | "$http_host")
                        | ("x-real-ip", "$remote_addr")
                        | ("x-forwarded-for", "$proxy_add_x_forwarded_for")
                        | ("x-forwarded-proto", "$scheme")
                        | ("upgrade", "$http_upgrade")
                        | ("connection", _)
                ))
    };
    let sends_host = loc
        .children()
        .iter()
        .any(|d| d.name == "proxy_set_header" && d.arg(0).eq_ignore_ascii_case("host"));
    if loc.children().iter().any(|d| !benign(&d)) {
        out.report.approximated(
            loc,
            "the request goes to the pool with this route's settings; the named location's own are not applied",
            true,
        );
    }
    if loc
        .children()
        .iter()
        .all(|d| d.name != "proxy_redirect" || d.arg(0) != "off")
    {
        out.report.approximated(
            loc,
            "the pool's own URLs in Location are not rewritten to the client's (nginx's proxy_redirect default)",
            true,
        );
    }
    let pool = upstream::use_pool(out, hostport, scheme);
    if !sends_host {
        let (host, why) = if pool {
            (hostport, "nginx sends the pool's name as Host")
        } else {
            ("upstream", "nginx sends the upstream's host:port as Host")
        };
        t.set(
            "upstream_host",
            host,
            format!("{why} (proxy_set_header Host $proxy_host, its default)"),
        );
    }
    if pool {
        return Some(hostport.to_string());
    }
    let url = if let Some(sock) = rest.strip_prefix("unix:") {
        format!("unix:{}", sock.split(':').next().unwrap_or(sock))
    } else if hostport.contains(':') {
        format!("{scheme}://{hostport}")
    } else {
        format!(
            "{scheme}://{hostport}:{}",
            if scheme == "https" { 443 } else { 80 }
        )
    };
    Some(upstream::one_server_pool(out, name, &url, pass))
}

/// `error_page`s in effect: files read at load, by status.
pub(crate) fn error_pages(out: &mut Out<'_>, t: &mut Table, scope: &Scope<'_>) {
    for d in scope.list("error_page") {
        let uri = d.args.last().map_or("", String::as_str);
        let codes: Vec<&String> = d.args.iter().take(d.args.len().saturating_sub(1)).collect();
        if codes.iter().any(|c| c.starts_with('=')) || !uri.starts_with('/') {
            out.report.decision(
                d,
                "error pages are files answered with the error's status; this one has no translation",
            );
            continue;
        }
        let Some(file) = page_file(out, scope, uri) else {
            out.report.decision(
                d,
                format!("no root serves {uri}: write the file's path in error_pages"),
            );
            continue;
        };
        for code in codes {
            if code.parse::<u16>().is_ok_and(|c| (400..=599).contains(&c)) {
                t.insert("error_pages", code, file.as_str(), from(d));
            }
        }
    }
}

/// The file nginx would answer `uri` with: the root of the server's
/// `location = uri` (or of a prefix of it), else the root in effect.
fn page_file(out: &Out<'_>, scope: &Scope<'_>, uri: &str) -> Option<String> {
    let server = scope.level(1);
    let exact = server
        .iter()
        .find(|d| d.name == "location" && d.arg(0) == "=" && d.arg(1) == uri);
    let prefix = server
        .iter()
        .filter(|d| d.name == "location" && d.args.len() == 1 && uri.starts_with(d.arg(0)))
        .max_by_key(|d| d.arg(0).len());
    let root = exact
        .or(prefix)
        .and_then(|l| l.children().iter().find(|c| c.name == "root"))
        .or_else(|| Scope::default().with(scope.level(0)).with(server).get("root"))?;
    let root = absolute(&out.prefix, root.arg(0));
    Some(format!("{}{uri}", root.trim_end_matches('/')))
}
