//! `stream` servers as `[[stream]]`s: `listen ... ssl` terminates TLS,
//! `ssl_preread on` with a `map $ssl_preread_server_name` passes it
//! through by SNI, anything else is plain TCP.

use super::servers::parse_listen;
use super::{absolute, from, misc, Out};
use crate::emit::Table;
use crate::inherit::Scope;
use crate::parse::Directive;
use crate::values;

pub(crate) fn stream(out: &mut Out<'_>, block: &Directive) {
    let scope = Scope::default().with(block.children());
    for d in block.children() {
        match d.name.as_str() {
            "server" => server(out, &scope.with(d.children()), d),
            "upstream"
            | "map"
            | "proxy_timeout"
            | "proxy_connect_timeout"
            | "ssl_certificate"
            | "ssl_certificate_key"
            | "ssl_preread"
            | "proxy_protocol" => {}
            "log_format" | "access_log" => out
                .report
                .not_needed(d, "streams log one line per connection on stderr"),
            _ => misc::other(out, d),
        }
    }
}

fn server(out: &mut Out<'_>, scope: &Scope<'_>, d: &Directive) {
    let mut t = Table::new("[[stream]]");
    t.note = Some(format!("nginx: stream {}", from(d)));
    let mut ssl = false;
    for l in scope.own().iter().filter(|c| c.name == "listen") {
        if l.args.iter().any(|a| a == "udp") {
            out.report.decision(l, "portcullis streams are TCP only");
            return;
        }
        if l.args.iter().any(|a| a == "proxy_protocol") {
            out.report.decision(
                l,
                "streams do not read a PROXY protocol header from their clients",
            );
        }
        match parse_listen(l) {
            Some(listen) => {
                ssl |= listen.ssl;
                t.push("listen", listen.address, from(l));
            }
            None => out
                .report
                .decision(l, "portcullis listens on IP addresses and ports only"),
        }
    }
    let Some(pass) = scope.own().iter().find(|c| c.name == "proxy_pass") else {
        out.report.decision(d, "a stream server without proxy_pass");
        return;
    };
    let preread = scope.get("ssl_preread").is_some_and(|p| p.arg(0) == "on");
    let mut routes = Vec::new();
    if ssl {
        t.set("tls", "terminate", "listen ... ssl");
        certificate(out, scope);
    } else if preread {
        t.set(
            "tls",
            "passthrough",
            scope.get("ssl_preread").map(from).unwrap_or_default(),
        );
    } else {
        t.set("tls", "none", "listen without ssl");
    }
    if let Some(var) = pass.arg(0).strip_prefix('$') {
        let map = scope.level(0).iter().find(|m| {
            m.name == "map" && m.arg(1) == format!("${var}") && m.arg(0) == "$ssl_preread_server_name"
        });
        let Some(map) = map.filter(|_| preread && !ssl) else {
            out.report.decision(
                pass,
                "an upstream chosen by a variable other than a map of $ssl_preread_server_name",
            );
            return;
        };
        for entry in map.children() {
            let Some(target) = target(out, scope, entry, entry.arg(0)) else {
                continue;
            };
            match entry.name.as_str() {
                "hostnames" => {}
                "default" => t.set("default", target, from(entry)),
                name if name.starts_with('~') => {
                    out.report.decision(entry, "stream routes take names or *.name")
                }
                name => {
                    let mut r = Table::new("[[stream.route]]");
                    let sni = name
                        .strip_prefix('.')
                        .map_or(name.to_string(), |n| format!("*.{n}"));
                    r.set("sni", sni, from(entry));
                    r.set("upstream", target, from(entry));
                    routes.push(r);
                }
            }
        }
    } else {
        let Some(target) = target(out, scope, pass, pass.arg(0)) else {
            return;
        };
        t.set("upstream", target, from(pass));
    }
    match scope.get("proxy_timeout") {
        Some(p) => {
            if let Some(ms) = values::millis(p.arg(0)) {
                t.set("idle_timeout", values::duration(ms), from(p));
            }
        }
        None => t.set("idle_timeout", "10m", "nginx's default proxy_timeout 10m"),
    }
    if let Some(p) = scope.get("proxy_connect_timeout") {
        if let Some(ms) = values::millis(p.arg(0)) {
            t.set("connect_timeout", values::duration(ms), from(p));
        }
    }
    if let Some(p) = scope.get("proxy_protocol") {
        if p.arg(0) == "on" {
            t.set("proxy_protocol", "v1", from(p));
        }
    }
    for c in scope.own() {
        match c.name.as_str() {
            "listen"
            | "proxy_pass"
            | "proxy_timeout"
            | "proxy_connect_timeout"
            | "ssl_preread"
            | "proxy_protocol"
            | "ssl_certificate"
            | "ssl_certificate_key" => {}
            _ => misc::other(out, c),
        }
    }
    out.streams.push(t);
    out.streams.extend(routes);
}

/// `host:port` or a stream `upstream`'s first server, as `tcp://`.
fn target(out: &mut Out<'_>, scope: &Scope<'_>, d: &Directive, text: &str) -> Option<String> {
    let pool = scope
        .level(0)
        .iter()
        .find(|u| u.name == "upstream" && u.arg(0) == text);
    let address = match pool {
        Some(pool) => {
            let servers: Vec<&Directive> = pool.children().iter().filter(|s| s.name == "server").collect();
            if servers.len() > 1 {
                out.report
                    .approximated(pool, "a stream has one upstream: the first server is used", true);
            }
            servers.first()?.arg(0).to_string()
        }
        None => text.to_string(),
    };
    if address.starts_with("unix:") || !address.contains(':') {
        out.report.decision(d, "stream upstreams are tcp://host:port");
        return None;
    }
    Some(format!("tcp://{address}"))
}

/// A terminating stream shakes hands with `[tls]`'s certificates.
fn certificate(out: &mut Out<'_>, scope: &Scope<'_>) {
    let (Some(cert), Some(key)) = (scope.get("ssl_certificate"), scope.get("ssl_certificate_key")) else {
        return;
    };
    let path = absolute(&out.prefix, cert.arg(0));
    if out.tls.get("cert").is_none() && out.certificates.is_empty() {
        out.tls.set("cert", path, from(cert));
        out.tls.set("key", absolute(&out.prefix, key.arg(0)), from(key));
    } else if out.tls.get("cert") != Some(&path.as_str().into()) {
        out.report.approximated(
            cert,
            "streams shake hands with the certificates of [tls], chosen by SNI",
            false,
        );
    }
}
