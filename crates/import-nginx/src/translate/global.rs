//! What `http` (and a `server`) set for the whole proxy: `[server]`'s
//! client timeouts and real-IP keys, `[log]`, `[compression]`, and the
//! `map`s a proxy does not need.

use super::{from, location, misc, Out};
use crate::emit::Value;
use crate::inherit::Scope;
use crate::parse::Directive;
use crate::values::{self, Use};

/// The `http` block's own directives.
pub(crate) fn http_level(out: &mut Out<'_>, scope: &Scope<'_>) {
    for d in scope.own() {
        match d.name.as_str() {
            "server" | "upstream" | "log_format" => {}
            "gzip" if d.arg(0) == "on" => {
                out.gzip_everywhere = true;
                out.compression.note = Some(format!("nginx: {}", from(d)));
                for (key, value, at) in compression(scope) {
                    out.compression.set(&key, value, at);
                }
            }
            _ if server_key(out, d, scope) => {}
            _ if location::read_below(&d.name) => {}
            _ => misc::other(out, d),
        }
    }
}

/// The compression settings in effect in `scope`, where nginx's defaults
/// differ from portcullis's.
pub(crate) fn compression(scope: &Scope<'_>) -> Vec<(String, Value, String)> {
    let mut keys = Vec::new();
    // nginx compresses text/html always, and only the gzip_types besides.
    let mut types = vec![Value::from("text/html")];
    let types_from = match scope.get("gzip_types") {
        Some(d) => {
            for t in &d.args {
                let t = if t == "*" { "*/*" } else { t.as_str() };
                if t != "text/html" {
                    types.push(Value::from(t));
                }
            }
            from(d)
        }
        None => "nginx's default gzip_types: text/html".to_string(),
    };
    keys.push(("types".to_string(), Value::List(types), types_from));
    match scope.get("gzip_min_length") {
        Some(d) => {
            if let Some((bytes, _)) = values::size(d.arg(0)) {
                keys.push((
                    "min_length".to_string(),
                    Value::from(format!("{bytes}B")),
                    from(d),
                ));
            }
        }
        None => keys.push((
            "min_length".to_string(),
            Value::from("20B"),
            "nginx's default gzip_min_length 20".to_string(),
        )),
    }
    if let Some(d) = scope.get("gzip_comp_level") {
        if let Ok(level) = d.arg(0).parse::<i64>() {
            keys.push(("level".to_string(), Value::Int(level.clamp(1, 9)), from(d)));
        }
    }
    keys
}

/// A directive that sets a key of `[server]`, `[log]` or `[tls]`: translated, and
/// true; false for any other.
pub(crate) fn server_key(out: &mut Out<'_>, d: &Directive, scope: &Scope<'_>) -> bool {
    let name = d.name.as_str();
    match name {
        "client_body_timeout" | "send_timeout" => {
            if let Some(ms) = values::millis(d.arg(0)).filter(|ms| *ms > 0) {
                out.server.set(name, values::duration(ms), from(d));
            }
        }
        "keepalive_timeout" => match values::millis(d.arg(0)) {
            Some(0) => out.server.set("keepalive", false, from(d)),
            Some(75_000) => {}
            Some(ms) => out.server.set("idle_timeout", values::duration(ms), from(d)),
            None => out.report.decision(d, "not a time"),
        },
        "client_header_timeout" => {
            if let Some(ms) = values::millis(d.arg(0)) {
                out.server
                    .set("header_read_timeout", values::duration(ms), from(d));
            }
        }
        "underscores_in_headers" => {
            if d.arg(0) == "on" {
                out.server.set("underscores_in_headers", true, from(d));
            }
        }
        "set_real_ip_from" => {
            if d.arg(0) == "unix:" {
                out.report.not_needed(d, "a unix socket's peer is never a client");
            } else {
                out.server.push("trusted_proxies", d.arg(0), from(d));
                // nginx reads X-Real-IP unless told otherwise.
                if scope.get("real_ip_header").is_none() && out.server.get("real_ip_header").is_none() {
                    out.server.set(
                        "real_ip_header",
                        "x-real-ip",
                        "nginx's default real_ip_header X-Real-IP",
                    );
                }
            }
        }
        "real_ip_header" => match d.arg(0).to_ascii_lowercase().as_str() {
            "x-forwarded-for" => out.server.remove("real_ip_header"),
            "x-real-ip" => out.server.set("real_ip_header", "x-real-ip", from(d)),
            "forwarded" => out.server.set("real_ip_header", "forwarded", from(d)),
            "proxy_protocol" => {
                out.server.remove("real_ip_header");
                out.report.not_needed(
                    d,
                    "the PROXY protocol's address is the client (listen ... proxy_protocol)",
                );
            }
            _ => out.report.decision(
                d,
                "portcullis reads the client from X-Forwarded-For, Forwarded or X-Real-IP",
            ),
        },
        "real_ip_recursive" => {
            if d.arg(0) != "on" {
                out.report.approximated(
                    d,
                    "portcullis always walks the header past trusted addresses (real_ip_recursive on)",
                    true,
                );
            }
        }
        "access_log" => access_log(out, d, scope),
        "limit_conn" => match d.arg(1).parse::<i64>() {
            Ok(n) => {
                out.server.set("max_connections_per_ip", n, from(d));
                out.report.approximated(
                    d,
                    "max_connections_per_ip counts connections per client address",
                    false,
                );
            }
            Err(_) => out.report.decision(d, "not a number of connections"),
        },
        "limit_conn_zone" => out.report.not_needed(d, "max_connections_per_ip needs no zone"),
        "ssl_stapling" => {
            if d.arg(0) == "on" {
                out.tls.set("ocsp_stapling", true, from(d));
            }
        }
        "ssl_stapling_verify" => out.report.not_needed(
            d,
            "a response is stapled only once it verifies against the issuer in the chain file",
        ),
        "map" => map(out, d),
        _ => return false,
    }
    true
}

/// `map $http_upgrade $connection_upgrade` is WebSocket boilerplate;
/// other maps need a decision (streams read theirs on their own).
fn map(out: &mut Out<'_>, d: &Directive) {
    if d.arg(0) == "$http_upgrade" {
        out.report
            .not_needed(d, "WebSocket handshakes are always forwarded");
    } else {
        out.report.decision(
            d,
            "portcullis has no variables; where the map is used needs its own translation",
        );
    }
}

fn access_log(out: &mut Out<'_>, d: &Directive, scope: &Scope<'_>) {
    if d.arg(0) == "off" {
        out.log.set("access_log", false, from(d));
        return;
    }
    let format = d.args.get(1).map_or("combined", String::as_str);
    if d.arg(0) != "/dev/stderr" && d.arg(0) != "/dev/stdout" {
        out.report.approximated(
            d,
            "portcullis writes access lines to stderr, for the journal or a collector",
            false,
        );
    }
    if format == "combined" {
        out.log.set("format", "combined", from(d));
        return;
    }
    let defined = scope
        .own()
        .iter()
        .find(|f| f.name == "log_format" && f.arg(0) == format);
    let Some(defined) = defined else {
        out.report.decision(d, format!("no log_format {format} in http"));
        return;
    };
    let text: String = defined
        .args
        .iter()
        .skip(1)
        .filter(|a| !a.starts_with("escape="))
        .cloned()
        .collect();
    match values::template(&text, "", Use::Log) {
        Ok(template) => out.log.set("access_template", template, from(defined)),
        Err(var) => {
            out.log.set("format", "combined", from(d));
            out.report.approximated(
                defined,
                format!("{var} has no placeholder: lines are written in the combined format"),
                false,
            );
        }
    }
}
