//! `server` blocks: their `listen`s become `[server]` (TLS) and `[http]`
//! (plain) addresses, their names route hosts, their certificates `[tls]`;
//! the plain server that only redirects to https becomes
//! `redirect_to_https`, and the catch-all servers that refuse unknown names
//! `unknown_sni` and `unknown_host`.

use std::collections::BTreeSet;

use super::{absolute, from, global, location, misc, Out};
use crate::emit::{Table, Value};
use crate::inherit::Scope;
use crate::parse::Directive;
use crate::{Error, Options};

pub(crate) struct Listen {
    pub(crate) address: String,
    pub(crate) port: u16,
    pub(crate) ssl: bool,
    pub(crate) default: bool,
}

#[derive(PartialEq)]
enum Kind {
    Content,
    /// A plain server that sends everything to https; the directives that
    /// say so.
    HttpsRedirect,
    /// certbot's plain server: its names redirected to https, any other
    /// host answered 404.
    HostRedirect,
    /// `ssl_reject_handshake on` in a default server.
    RejectSni,
    /// `return 444` in a default server.
    Close,
}

struct Site<'a> {
    d: &'a Directive,
    scope: Scope<'a>,
    listens: Vec<Listen>,
    names: Vec<String>,
    kind: Kind,
}

pub(crate) fn servers<'a>(
    out: &mut Out<'a>,
    http: &Scope<'a>,
    blocks: &[&'a Directive],
    options: &Options,
) -> Result<(), Error> {
    let mut sites: Vec<Site<'a>> = blocks.iter().map(|d| site(out, http, d)).collect();
    if let Some(wanted) = &options.server {
        let all: Vec<String> = sites.iter().flat_map(|s| s.names.clone()).collect();
        sites.retain(|s| s.names.iter().any(|n| name_matches(n, wanted)));
        if sites.is_empty() {
            let file = blocks.first().map_or(String::new(), |d| d.file.to_string());
            return Err(Error::at(
                &file,
                0,
                format!(
                    "--server {wanted}: no server block has this name (server_name: {})",
                    all.join(", ")
                ),
            ));
        }
    }
    for site in &mut sites {
        site.kind = kind(site);
    }
    let plain_content = sites.iter().any(|s| {
        s.kind == Kind::HostRedirect || (s.kind == Kind::Content && s.listens.iter().any(|l| !l.ssl))
    });
    let mut tls_addresses = BTreeSet::new();
    let mut plain_addresses = BTreeSet::new();
    for s in &sites {
        for l in &s.listens {
            if l.ssl {
                tls_addresses.insert(l.address.clone());
            } else {
                plain_addresses.insert(l.address.clone());
            }
        }
    }
    for s in &sites {
        for l in s.listens.iter().filter(|l| l.ssl) {
            if tls_addresses.remove(&l.address) {
                out.server
                    .push("listen", l.address.as_str(), listen_from(s.d, l.port));
            }
        }
        for l in s.listens.iter().filter(|l| !l.ssl) {
            if plain_addresses.remove(&l.address) {
                out.http
                    .push("listen", l.address.as_str(), listen_from(s.d, l.port));
            }
        }
    }
    if out.server.get("listen").is_none() && sites.iter().any(|s| s.kind == Kind::Content) {
        if let Some(s) = sites.first() {
            out.report.approximated(
                s.d,
                "no server listens with ssl: portcullis still serves TLS on its default 127.0.0.1:8443",
                false,
            );
        }
    }
    if plain_content {
        out.http
            .set("redirect_to_https", false, "a server answers plain HTTP itself");
    }
    certificates(out, &sites);
    // The port each site is the default server of.
    let mut defaults: Vec<(u16, usize)> = Vec::new();
    for explicit in [true, false] {
        for (i, s) in sites.iter().enumerate() {
            for l in &s.listens {
                if (l.default || !explicit) && !defaults.iter().any(|(p, _)| *p == l.port) {
                    defaults.push((l.port, i));
                }
            }
        }
    }
    let routed_ports: BTreeSet<u16> = sites
        .iter()
        .filter(|s| s.kind != Kind::Close && s.kind != Kind::RejectSni)
        .flat_map(|s| {
            s.listens
                .iter()
                .filter(|l| l.ssl || plain_content)
                .map(|l| l.port)
        })
        .collect();
    let single = sites.iter().filter(|s| s.kind == Kind::Content).count() == 1;
    for (i, s) in sites.iter().enumerate() {
        own_directives(out, s);
        let ports: BTreeSet<u16> = s
            .listens
            .iter()
            .filter(|l| l.ssl || plain_content)
            .map(|l| l.port)
            .collect();
        let default_ports: BTreeSet<u16> = defaults
            .iter()
            .filter(|(p, d)| *d == i && ports.contains(p))
            .map(|(p, _)| *p)
            .collect();
        let routes = match s.kind {
            Kind::Content => location::routes(out, s.d, &s.scope, s.names.first().map_or("", String::as_str)),
            Kind::HttpsRedirect if plain_content => vec![https_redirect_route(s)],
            Kind::HostRedirect => {
                host_redirect(out, s, &ports, &default_ports, &routed_ports);
                continue;
            }
            _ => continue,
        };
        let other_ports: BTreeSet<u16> = ports.difference(&default_ports).copied().collect();
        if single || !default_ports.is_empty() {
            let bound = if single { &ports } else { &default_ports };
            emit(out, &routes, None, bound, &routed_ports);
        }
        if !single && !other_ports.is_empty() {
            for name in &s.names {
                emit(out, &routes, Some(name), &other_ports, &routed_ports);
            }
            if s.names.is_empty() && default_ports.is_empty() {
                out.report.not_needed(
                    s.d,
                    "a server without a name that is no port's default is reached by no request",
                );
            }
        }
    }
    Ok(())
}

/// The site's routes, for `host` (all hosts when `None`), bound to `ports`
/// unless those are all the routed ports.
fn emit(out: &mut Out<'_>, routes: &[Table], host: Option<&str>, ports: &BTreeSet<u16>, all: &BTreeSet<u16>) {
    for route in routes {
        let mut route = route.clone();
        let mut head = Table::new("[[route]]");
        head.note = route.note.take();
        if let Some(host) = host {
            head.set("host", host, format!("server_name {host}"));
        }
        if ports != all && !ports.is_empty() {
            let list = ports.iter().map(|p| Value::Int(i64::from(*p))).collect();
            head.set("ports", Value::List(list), "the ports its server listens on");
        }
        head.entries.extend(route.entries);
        out.routes.push(head);
    }
}

fn listen_from(d: &Directive, port: u16) -> String {
    d.children()
        .iter()
        .find(|l| l.name == "listen" && parse_listen(l).is_some_and(|x| x.port == port))
        .map_or_else(|| "nginx's default listen *:80".to_string(), from)
}

fn site<'a>(out: &mut Out<'_>, http: &Scope<'a>, d: &'a Directive) -> Site<'a> {
    let scope = http.with(d.children());
    let mut listens = Vec::new();
    let mut names = Vec::new();
    for c in d.children() {
        match c.name.as_str() {
            "listen" => match parse_listen(c) {
                Some(l) => listens.push(l),
                None => out
                    .report
                    .decision(c, "portcullis listens on IP addresses and ports only"),
            },
            "server_name" => {
                for name in &c.args {
                    match name.as_str() {
                        "" | "_" => {}
                        n if n.starts_with('~') || n.ends_with(".*") || n.contains('$') => out
                            .report
                            .decision(c, format!("{n}: route hosts are names or *.name")),
                        n if n.starts_with('.') => {
                            names.push(n[1..].to_string());
                            names.push(format!("*{n}"));
                        }
                        n => names.push(n.to_ascii_lowercase()),
                    }
                }
            }
            _ => {}
        }
    }
    if !d.children().iter().any(|c| c.name == "listen") {
        listens.push(Listen {
            address: "0.0.0.0:80".into(),
            port: 80,
            ssl: false,
            default: false,
        });
    }
    names.dedup();
    Site {
        d,
        scope,
        listens,
        names,
        kind: Kind::Content,
    }
}

pub(crate) fn parse_listen(d: &Directive) -> Option<Listen> {
    let spec = d.arg(0);
    if spec.starts_with("unix:") {
        return None;
    }
    let (host, port) = if let Some(rest) = spec.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        (format!("[{ip}]"), after.strip_prefix(':').unwrap_or("80"))
    } else if let Ok(port) = spec.parse::<u16>() {
        let _ = port;
        ("0.0.0.0".to_string(), spec)
    } else if let Some((h, p)) = spec.rsplit_once(':') {
        (h.to_string(), p)
    } else {
        (spec.to_string(), "80")
    };
    let port: u16 = port.parse().ok()?;
    let host = match host.as_str() {
        "*" => "0.0.0.0".to_string(),
        "localhost" => "127.0.0.1".to_string(),
        h if h.starts_with('[') || h.parse::<std::net::Ipv4Addr>().is_ok() => h.to_string(),
        _ => return None,
    };
    let flag = |f: &str| d.args.iter().skip(1).any(|a| a == f);
    Some(Listen {
        address: format!("{host}:{port}"),
        port,
        ssl: flag("ssl"),
        default: flag("default_server") || flag("default"),
    })
}

fn name_matches(name: &str, wanted: &str) -> bool {
    let wanted = wanted.to_ascii_lowercase();
    match name.strip_prefix("*.") {
        Some(base) => wanted
            .strip_suffix(base)
            .is_some_and(|sub| sub.ends_with('.') && !sub[..sub.len() - 1].contains('.')),
        None => name == wanted,
    }
}

/// What kind of server `s` is, from its own directives.
fn kind(s: &Site<'_>) -> Kind {
    let own = s.d.children();
    let default = s.listens.iter().any(|l| l.default);
    let content: Vec<&Directive> = own
        .iter()
        .filter(|d| {
            !matches!(
                d.name.as_str(),
                "listen" | "server_name" | "access_log" | "error_log"
            )
        })
        .filter(|d| !d.name.starts_with("ssl_") || d.name == "ssl_reject_handshake")
        .collect();
    if default
        && content
            .iter()
            .any(|d| d.name == "ssl_reject_handshake" && d.arg(0) == "on")
    {
        return Kind::RejectSni;
    }
    if default && content.len() == 1 && content[0].name == "return" && content[0].arg(0) == "444" {
        return Kind::Close;
    }
    let plain_only = s.listens.iter().all(|l| !l.ssl);
    let redirect = |d: &Directive| {
        d.name == "return"
            && matches!(d.arg(0), "301" | "302" | "307" | "308")
            && is_https_self(d.arg(1), s.names.len())
    };
    let certbot_if = |d: &Directive| {
        d.name == "if"
            && d.arg(0).starts_with("($host")
            && d.children().len() == 1
            && redirect(&d.children()[0])
    };
    let acme = |d: &Directive| {
        d.name == "location"
            && d.arg(0).starts_with("/.well-known/acme-challenge")
            && d.children().iter().all(|c| {
                c.name == "root" || c.name == "allow" || c.name == "default_type" || c.name == "try_files"
            })
    };
    let redirect_location = |d: &Directive| {
        d.name == "location" && d.arg(0) == "/" && d.children().len() == 1 && redirect(&d.children()[0])
    };
    let says_redirect = content
        .iter()
        .any(|d| redirect(d) || certbot_if(d) || redirect_location(d));
    let only_redirects = content.iter().all(|d| {
        redirect(d)
            || certbot_if(d)
            || acme(d)
            || redirect_location(d)
            || (d.name == "return" && d.arg(0) == "404")
    });
    if plain_only && says_redirect && only_redirects {
        if content.iter().any(|d| d.name == "return" && d.arg(0) == "404") && !s.names.is_empty() {
            return Kind::HostRedirect;
        }
        return Kind::HttpsRedirect;
    }
    Kind::Content
}

/// `https://$host$request_uri` and its spellings.
fn is_https_self(url: &str, names: usize) -> bool {
    let Some(rest) = url.strip_prefix("https://") else {
        return false;
    };
    let host_ok = ["$host", "$http_host", "${host}"]
        .iter()
        .any(|h| rest.starts_with(h))
        || (names <= 1 && rest.starts_with("$server_name"));
    host_ok && (rest.ends_with("$request_uri") || rest.ends_with("${request_uri}"))
}

/// certbot's plain server as routes: each of its names redirected as it
/// says, any other host answered its 404 where it is the default server.
fn host_redirect(
    out: &mut Out<'_>,
    s: &Site<'_>,
    ports: &BTreeSet<u16>,
    default_ports: &BTreeSet<u16>,
    routed: &BTreeSet<u16>,
) {
    for name in &s.names {
        emit(out, &[https_redirect_route(s)], Some(name), ports, routed);
    }
    if let Some(ret) = s.d.children().iter().find(|d| d.name == "return") {
        let mut t = Table::new("[[route]]");
        t.set("path", "/", "");
        t.set(
            "respond",
            Value::Table(vec![("status".into(), Value::Int(404))]),
            from(ret),
        );
        emit(out, &[t], None, default_ports, routed);
    }
}

fn https_redirect_route(s: &Site<'_>) -> Table {
    let d =
        s.d.children()
            .iter()
            .flat_map(|d| std::iter::once(d).chain(d.children()))
            .find(|d| d.name == "return")
            .unwrap_or(s.d);
    let mut t = Table::new("[[route]]");
    t.set("path", "/", "");
    t.set("redirect", "https://{host}{path}{query}", from(d));
    let status: i64 = d.arg(0).parse().unwrap_or(301);
    t.set("status", status, from(d));
    t
}

/// The site's own directives other than its locations: each translated,
/// or reported.
fn own_directives(out: &mut Out<'_>, s: &Site<'_>) {
    for d in s.d.children() {
        match d.name.as_str() {
            "listen" => listen_flags(out, d),
            "server_name" | "location" | "ssl_certificate" | "ssl_certificate_key" => {}
            "ssl_protocols" => {
                let offered: Vec<&str> = d.args.iter().map(String::as_str).collect();
                if offered == ["TLSv1.3"] {
                    out.tls.set("min_version", "1.3", from(d));
                } else if offered
                    .iter()
                    .any(|p| matches!(*p, "TLSv1" | "TLSv1.1" | "SSLv3"))
                {
                    out.report.approximated(
                        d,
                        "TLS 1.0 and 1.1 are never offered: clients need TLS 1.2",
                        false,
                    );
                }
            }
            "ssl_client_certificate" => {
                out.client_auth
                    .set("ca", absolute(&out.prefix, d.arg(0)), from(d));
            }
            "ssl_verify_client" => match d.arg(0) {
                "on" => {}
                "optional" | "optional_no_ca" => out.client_auth.set("mode", "optional", from(d)),
                _ => {}
            },
            "ssl_reject_handshake" if s.kind == Kind::RejectSni => {
                out.tls.set("unknown_sni", "reject", from(d));
                out.report.approximated(
                    d,
                    "the handshake is refused with access_denied, where nginx sends unrecognized_name",
                    false,
                );
            }
            "return" if s.kind == Kind::Close => {
                out.http.set("unknown_host", "close", from(d));
                if s.listens.iter().any(|l| l.ssl) {
                    out.report.approximated(
                        d,
                        "over TLS an unknown host gets the proxy's 404; plain HTTP is closed",
                        true,
                    );
                }
            }
            "return" | "if" if s.kind == Kind::HttpsRedirect => {
                if out.http.get("redirect_to_https").is_none() {
                    out.report.approximated(
                        d,
                        "[http] redirect_to_https answers 308, which keeps the method, for every host",
                        false,
                    );
                }
            }
            _ if s.kind != Kind::Content => {}
            "return" | "rewrite" | "if" | "root" | "index" | "try_files" | "error_page" => {}
            _ if global::server_key(out, d, &s.scope) => {}
            _ if location::read_below(&d.name) => {}
            _ => misc::other(out, d),
        }
    }
    if s.kind == Kind::HttpsRedirect {
        for loc in s.d.children().iter().filter(|d| d.name == "location") {
            if loc.arg(0).starts_with("/.well-known/acme-challenge") {
                if let Some(root) = loc.children().iter().find(|c| c.name == "root") {
                    out.http
                        .set("acme_webroot", absolute(&out.prefix, root.arg(0)), from(root));
                }
            }
        }
    }
}

fn listen_flags(out: &mut Out<'_>, d: &Directive) {
    for flag in d.args.iter().skip(1) {
        match flag.as_str() {
            "proxy_protocol" => {
                let ssl = d.args.iter().any(|a| a == "ssl");
                let table = if ssl { &mut out.server } else { &mut out.http };
                table.set("proxy_protocol", "required", from(d));
            }
            "quic" | "http3" => out.report.decision(d, "portcullis does not serve HTTP/3"),
            _ => {}
        }
    }
    if d.args.iter().any(|a| a == "http2") {
        out.report.not_needed(d, "HTTP/2 is always offered over TLS");
    }
}

/// `ssl_certificate` and `ssl_certificate_key` of the TLS servers: one
/// pair is `[tls]`, several are `[[tls.certificate]]` (chosen by SNI
/// against each certificate's names).
fn certificates(out: &mut Out<'_>, sites: &[Site<'_>]) {
    let mut pairs: Vec<(String, String, String, String)> = Vec::new();
    for s in sites
        .iter()
        .filter(|s| s.listens.iter().any(|l| l.ssl) && s.kind != Kind::RejectSni)
    {
        let certs = s.scope.list("ssl_certificate");
        let keys = s.scope.list("ssl_certificate_key");
        let (Some(cert), Some(key)) = (certs.first(), keys.first()) else {
            if s.kind == Kind::Content {
                out.report.approximated(s.d, "a server with ssl and no ssl_certificate: portcullis serves a temporary self-signed certificate", true);
            }
            continue;
        };
        if certs.len() > 1 {
            out.report.approximated(
                certs[1],
                "portcullis serves one certificate per name: the first one is kept",
                false,
            );
        }
        if cert.arg(0).contains('$') {
            out.report.decision(
                cert,
                "certificates named by variables: list them as [[tls.certificate]]",
            );
            continue;
        }
        let pair = (
            absolute(&out.prefix, cert.arg(0)),
            absolute(&out.prefix, key.arg(0)),
            from(cert),
            from(key),
        );
        if !pairs.iter().any(|p| p.0 == pair.0) {
            pairs.push(pair);
        }
    }
    if pairs.len() == 1 {
        let (cert, key, cf, kf) = pairs.remove(0);
        out.tls.set("cert", cert, cf);
        out.tls.set("key", key, kf);
        return;
    }
    for (cert, key, cf, kf) in pairs {
        let mut t = Table::new("[[tls.certificate]]");
        t.set("cert", cert, cf);
        t.set("key", key, kf);
        out.certificates.push(t);
    }
}
