//! `proxy_pass` and what goes with it: the upstream (a URL or a pool), the
//! path forwarded, the Host and other request headers, timeouts, body
//! limit, Location and cookie rewriting, TLS to the upstream; and the
//! response headers of any route (`add_header`, `proxy_hide_header`,
//! `expires`).

use super::location::Match;
use super::{absolute, from, upstream, Out};
use crate::emit::{Table, Value};
use crate::inherit::Scope;
use crate::parse::Directive;
use crate::values::{self, Use};

/// Headers portcullis sets itself, as nginx's usual lines set them.
const OWNED: &[(&str, &[&str], &str)] = &[
    (
        "x-real-ip",
        &["$remote_addr"],
        "X-Real-IP is always the client's address",
    ),
    (
        "x-forwarded-proto",
        &["$scheme", "https"],
        "X-Forwarded-Proto is always sent",
    ),
    (
        "x-forwarded-host",
        &["$host", "$http_host", "$server_name"],
        "X-Forwarded-Host is always the client's host",
    ),
    (
        "upgrade",
        &["$http_upgrade"],
        "WebSocket handshakes are always forwarded",
    ),
    (
        "connection",
        &["$connection_upgrade", "upgrade", "Upgrade", "\"upgrade\"", ""],
        "WebSocket handshakes are always forwarded",
    ),
    (
        "x-request-id",
        &["$request_id"],
        "X-Request-Id is always sent upstream",
    ),
];

/// A `proxy_pass` location's keys; false when it cannot be proxied.
pub(crate) fn proxy(
    out: &mut Out<'_>,
    t: &mut Table,
    scope: &Scope<'_>,
    m: &Match,
    pass: &Directive,
    rewritten: bool,
) -> bool {
    let url = pass.arg(0);
    if url.contains('$') {
        out.report.decision(
            pass,
            "an upstream chosen by variables: write one route per upstream",
        );
        return false;
    }
    let (scheme, rest) = match url.split_once("://") {
        Some((s @ ("http" | "https"), rest)) => (s, rest),
        _ => {
            out.report
                .decision(pass, "portcullis proxies to http:// and https:// upstreams");
            return false;
        }
    };
    let (target, uri, pool, host_default) = if let Some(sock) = rest.strip_prefix("unix:") {
        let (path, uri) = match sock.split_once(':') {
            Some((p, u)) => (p, Some(u.to_string())),
            None => (sock, None),
        };
        let name = upstream::socket_pool(out, path, pass);
        (name, uri, true, Value::from("localhost"))
    } else {
        let (hostport, uri) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(rest[i..].to_string())),
            None => (rest, None),
        };
        if upstream::use_pool(out, hostport, scheme) {
            (hostport.to_string(), uri, true, Value::from(hostport))
        } else {
            let default = if scheme == "https" { 443 } else { 80 };
            let with_port = if hostport
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            {
                hostport.to_string()
            } else {
                format!("{hostport}:{default}")
            };
            (
                format!("{scheme}://{with_port}"),
                uri,
                false,
                Value::from("upstream"),
            )
        }
    };
    t.set("upstream", target, from(pass));
    if !rewritten {
        path_forwarded(out, t, m, pass, uri.as_deref());
    }
    let stripped = t.get("strip_prefix").is_some() || t.get("rewrite_prefix").is_some();
    request_headers(out, t, scope, pass, host_default, pool);
    limits(out, t, scope);
    redirects_and_cookies(out, t, scope, stripped, uri.as_deref(), m);
    if scheme == "https" {
        upstream_tls(out, t, scope, pass);
    }
    if let Some(d) = scope.get("proxy_intercept_errors") {
        if d.arg(0) == "on" {
            t.set("intercept_errors", true, from(d));
        }
    }
    true
}

/// The URI part of `proxy_pass`: it replaces the location's prefix.
fn path_forwarded(out: &mut Out<'_>, t: &mut Table, m: &Match, pass: &Directive, uri: Option<&str>) {
    let Some(uri) = uri else { return };
    match m {
        Match::Prefix(p) | Match::PrefixWins(p) => {
            if uri == p {
            } else if uri == "/" && p.ends_with('/') {
                t.set("strip_prefix", true, from(pass));
            } else if p.ends_with('/') == uri.ends_with('/') {
                t.set("rewrite_prefix", uri, from(pass));
            } else if uri == "/" {
                t.set("strip_prefix", true, from(pass));
                out.report.approximated(
                    pass,
                    format!("{p}/x is forwarded as /x, where nginx sends //x"),
                    true,
                );
            } else {
                out.report.decision(pass, format!("nginx joins {uri} and the rest of the path without a slash; give both a trailing / and write rewrite_prefix"));
            }
        }
        Match::Exact(p) if uri == p => {}
        _ => out.report.decision(
            pass,
            "a URI in proxy_pass here has no translation: the path is forwarded as the client sent it",
        ),
    }
}

fn request_headers(
    out: &mut Out<'_>,
    t: &mut Table,
    scope: &Scope<'_>,
    pass: &Directive,
    host_default: Value,
    pool: bool,
) {
    let headers = scope.list("proxy_set_header");
    let host = headers.iter().find(|h| h.arg(0).eq_ignore_ascii_case("host"));
    match host.map(|h| h.arg(1)) {
        None | Some("$proxy_host") => {
            let why = if pool {
                "nginx sends the pool's name as Host"
            } else {
                "nginx sends the upstream's host:port as Host"
            };
            t.set(
                "upstream_host",
                host_default,
                format!("{why} (proxy_set_header Host $proxy_host, its default)"),
            );
        }
        Some("$host" | "$http_host") => {}
        Some(literal) if !literal.contains('$') && !literal.is_empty() => {
            if let Some(h) = host {
                t.set("upstream_host", literal, from(h));
            }
        }
        Some(_) => {
            if let Some(h) = host {
                out.report
                    .decision(h, "upstream_host is \"client\", \"upstream\" or a name");
            }
        }
    }
    let mut forwarded_for = false;
    for h in &headers {
        let (name, value) = (h.arg(0), h.arg(1));
        let lower = name.to_ascii_lowercase();
        if lower == "host" {
            continue;
        }
        if lower == "x-forwarded-for" {
            forwarded_for = true;
            match value {
                "$proxy_add_x_forwarded_for" => out
                    .report
                    .not_needed(h, "X-Forwarded-For is appended to by default"),
                "$remote_addr" => t.set("forwarded_for", "replace", from(h)),
                _ => out
                    .report
                    .decision(h, "forwarded_for is \"append\" or \"replace\""),
            }
            continue;
        }
        if let Some((_, values, why)) = OWNED.iter().find(|(n, _, _)| *n == lower) {
            if values.contains(&value) {
                out.report.not_needed(h, *why);
            } else {
                out.report
                    .decision(h, format!("portcullis sets {name} itself; it cannot be changed"));
            }
            continue;
        }
        if lower == "forwarded" {
            t.set("forwarded", true, from(h));
            out.report
                .approximated(h, "forwarded = true appends for=, host= and proto=", false);
            continue;
        }
        if lower == "accept-encoding" && value.is_empty() {
            t.push("request.remove", name, from(h));
            continue;
        }
        if value.is_empty() {
            t.push("request.remove", name, from(h));
            continue;
        }
        match values::template(value, "", Use::Header) {
            Ok(v) => t.insert("request.set", name, v, from(h)),
            Err(var) => out.report.decision(h, format!("{var} has no placeholder")),
        }
    }
    if !forwarded_for && !out.forwarded_note {
        out.forwarded_note = true;
        out.report.approximated(
            pass,
            "portcullis always sends X-Forwarded-For, X-Real-IP, X-Forwarded-Proto and X-Forwarded-Host, which nginx sends only when told",
            false,
        );
    }
    if let Some(d) = scope.get("proxy_pass_header") {
        out.report
            .not_needed(d, "upstream headers pass unless response.remove names them");
    }
}

/// `client_max_body_size` in effect, nginx's 1m when none is written.
pub(crate) fn body_limit(out: &mut Out<'_>, t: &mut Table, scope: &Scope<'_>) {
    match scope.get("client_max_body_size") {
        None => t.set("max_body", "1MiB", "nginx's default client_max_body_size 1m"),
        Some(d) => match values::size(d.arg(0)) {
            Some((0, _)) => {}
            Some((_, text)) => t.set("max_body", text, from(d)),
            None => out.report.decision(d, "not a size"),
        },
    }
}

fn limits(out: &mut Out<'_>, t: &mut Table, scope: &Scope<'_>) {
    body_limit(out, t, scope);
    if let Some(d) = scope.get("proxy_read_timeout") {
        match values::millis(d.arg(0)) {
            Some(60_000) => {}
            Some(ms) if ms > 0 => t.set("read_timeout", values::duration(ms), from(d)),
            _ => out.report.decision(d, "not a time"),
        }
    }
    if let Some(d) = scope.get("proxy_connect_timeout") {
        match values::millis(d.arg(0)) {
            Some(ms) if ms > 0 => t.set("connect_timeout", values::duration(ms), from(d)),
            _ => out.report.decision(d, "not a time"),
        }
    }
    if let Some(d) = scope.get("proxy_send_timeout") {
        out.report.approximated(
            d,
            "portcullis has no send timeout to the upstream; a stalled upstream is bounded by read_timeout",
            false,
        );
    }
}

fn redirects_and_cookies(
    out: &mut Out<'_>,
    t: &mut Table,
    scope: &Scope<'_>,
    stripped: bool,
    uri: Option<&str>,
    m: &Match,
) {
    match scope.get("proxy_redirect") {
        None => {
            if !stripped {
                t.set("redirect_rewrite", true, "nginx's default proxy_redirect default");
            }
        }
        Some(d) => match d.args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            ["default"] => {
                if !stripped {
                    t.set("redirect_rewrite", true, from(d));
                }
            }
            ["off"] => {
                if stripped {
                    t.set("redirect_rewrite", false, from(d));
                }
            }
            ["http://", "https://"] | ["http://", "$scheme://"] => t.set("redirect_rewrite", true, from(d)),
            _ => {
                t.set("redirect_rewrite", true, from(d));
                out.report.approximated(d, "redirect_rewrite maps the upstream's own URLs and http:// to the client's; other replacements are not made", true);
            }
        },
    }
    for d in scope.list("proxy_cookie_path") {
        let prefix = match m {
            Match::Prefix(p) | Match::PrefixWins(p) => p.as_str(),
            _ => "",
        };
        match d.args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            ["off"] => {}
            [a, b] if stripped && Some(*a) == uri && *b == prefix => t.set("cookie_path", true, from(d)),
            _ => out.report.decision(d, "cookie_path = true maps the upstream's prefix back to the route's; other mappings have no translation"),
        }
    }
    for d in scope.list("proxy_cookie_flags") {
        if d.arg(0) == "off" {
            continue;
        }
        let flags: Vec<&str> = d.args.iter().skip(1).map(String::as_str).collect();
        let known = |f: &&str| {
            matches!(
                *f,
                "secure" | "httponly" | "samesite=strict" | "samesite=lax" | "samesite=none"
            )
        };
        if d.arg(0).starts_with('~') || flags.is_empty() || !flags.iter().all(known) {
            out.report.decision(
                d,
                "cookie_flags names cookies and sets secure, httponly and samesite=",
            );
            continue;
        }
        t.insert("cookie_flags", d.arg(0), flags.join("; "), from(d));
    }
}

fn upstream_tls(out: &mut Out<'_>, t: &mut Table, scope: &Scope<'_>, pass: &Directive) {
    let verify = scope.get("proxy_ssl_verify").is_some_and(|d| d.arg(0) == "on");
    if !verify {
        out.report.decision(
            pass,
            "nginx does not verify an https upstream's certificate unless proxy_ssl_verify on; portcullis does \
             (upstream_ca names the CA; upstream_insecure_skip_verify = true keeps nginx's behaviour)",
        );
    }
    if let Some(d) = scope.get("proxy_ssl_trusted_certificate") {
        t.set("upstream_ca", absolute(&out.prefix, d.arg(0)), from(d));
    }
    if let Some(d) = scope.get("proxy_ssl_name") {
        if d.arg(0).contains('$') {
            out.report.not_needed(d, "the upstream's own name is sent in SNI");
        } else {
            t.set("upstream_server_name", d.arg(0), from(d));
        }
    }
}

/// `add_header`, `proxy_hide_header` and `expires` in effect for a route.
pub(crate) fn response_headers(out: &mut Out<'_>, t: &mut Table, scope: &Scope<'_>, server_name: &str) {
    let mut always = false;
    let mut success = false;
    for d in scope.list("add_header") {
        let (name, value) = (d.arg(0), d.arg(1));
        if value.is_empty() {
            continue;
        }
        match values::template(value, server_name, Use::Header) {
            Ok(v) => {
                if d.arg(2) == "always" {
                    always = true;
                    t.insert("response.set", name, v, from(d));
                } else {
                    success = true;
                    t.insert("response.add", name, v, from(d));
                }
            }
            Err(var) => out.report.decision(d, format!("{var} has no placeholder")),
        }
    }
    if let Some(d) = scope.get("expires") {
        match values::millis(d.arg(0)) {
            Some(ms) if d.args.len() == 1 => {
                success = true;
                t.insert(
                    "response.set",
                    "Cache-Control",
                    format!("max-age={}", ms / 1000),
                    from(d),
                );
                out.report.approximated(
                    d,
                    "Cache-Control: max-age is sent; the Expires header is not",
                    false,
                );
            }
            _ => out.report.decision(
                d,
                "only expires with one time has a translation (Cache-Control: max-age)",
            ),
        }
    }
    if success && !always {
        t.set("response.when", "success", "nginx's add_header without always");
    } else if success {
        if let Some(d) = scope
            .list("add_header")
            .into_iter()
            .find(|d| d.arg(2) != "always")
        {
            out.report
                .approximated(d, "added to every status, as the always ones beside it", true);
        }
    }
    for d in scope.list("proxy_hide_header") {
        t.push("response.remove", d.arg(0), from(d));
    }
}
