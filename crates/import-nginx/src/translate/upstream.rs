//! `upstream` blocks as `[[upstream]]` pools: servers with their weight,
//! backup and limits, the balancing method, keep-alive, passive health;
//! and the pools made for `unix:` sockets and named locations.

use super::{from, misc, Out};
use crate::emit::{Table, Value};
use crate::parse::Directive;
use crate::values;

/// Makes the pool `name` from the `http` block's `upstream name` (once);
/// false when there is no such block.
pub(crate) fn use_pool(out: &mut Out<'_>, name: &str, scheme: &str) -> bool {
    if out.pools.iter().any(|(n, _)| n == name) {
        return true;
    }
    let Some(block) = out.upstreams.iter().copied().find(|d| d.arg(0) == name) else {
        return false;
    };
    let tables = pool(out, block, scheme);
    out.pools.push((name.to_string(), tables));
    true
}

/// A pool of one `unix:` socket, named after it.
pub(crate) fn socket_pool(out: &mut Out<'_>, path: &str, d: &Directive) -> String {
    let base: String = path
        .rsplit('/')
        .next()
        .unwrap_or("socket")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = format!("unix-{base}");
    one_server_pool(out, &name, &format!("unix:{path}"), d)
}

/// A pool of one server, named `name` (made unique), for a named location
/// or a socket; returns its name.
pub(crate) fn one_server_pool(out: &mut Out<'_>, name: &str, url: &str, d: &Directive) -> String {
    let same =
        |t: &[Table]| t.first().and_then(|t| t.get("servers")) == Some(&Value::List(vec![Value::from(url)]));
    if let Some((n, _)) = out.pools.iter().find(|(n, t)| n == name && same(t)) {
        return n.clone();
    }
    let mut unique = name.to_string();
    let mut i = 2;
    while out.pools.iter().any(|(n, _)| *n == unique) || out.upstreams.iter().any(|u| u.arg(0) == unique) {
        unique = format!("{name}-{i}");
        i += 1;
    }
    let mut t = Table::new("[[upstream]]");
    t.set("name", unique.as_str(), "");
    t.set("servers", Value::List(vec![Value::from(url)]), from(d));
    out.pools.push((unique.clone(), vec![t]));
    unique
}

fn pool(out: &mut Out<'_>, block: &Directive, scheme: &str) -> Vec<Table> {
    let mut t = Table::new("[[upstream]]");
    t.note = Some(format!("nginx: {}", from(block)));
    t.set("name", block.arg(0), "");
    let mut passive = Table::new("[upstream.passive]");
    for d in block.children() {
        match d.name.as_str() {
            "server" => server(out, &mut t, &mut passive, d, scheme),
            "ip_hash" => {
                t.set("balance", "hash", from(d));
                t.set("hash_key", "client_ip", from(d));
                out.report.approximated(d, "the whole client address is hashed, where nginx hashes an IPv4 address's first three bytes", false);
            }
            "hash" => hash(out, &mut t, d),
            "least_conn" => t.set("balance", "least_conn", from(d)),
            "random" => {
                t.set("balance", "random_two", from(d));
                if d.arg(0) != "two" {
                    out.report
                        .approximated(d, "the less loaded of two servers drawn at random", false);
                }
            }
            "keepalive" => match d.arg(0).parse::<i64>() {
                Ok(n) => t.set("keepalive", n, from(d)),
                Err(_) => out.report.decision(d, "not a number"),
            },
            "keepalive_timeout" => {
                if let Some(ms) = values::millis(d.arg(0)) {
                    t.set("keepalive_timeout", values::duration(ms), from(d));
                }
            }
            _ => misc::other(out, d),
        }
    }
    if t.get("servers").is_none() {
        out.report.decision(block, "an upstream without servers");
    }
    let mut tables = vec![t];
    if !passive.entries.is_empty() {
        tables.push(passive);
    }
    tables
}

fn server(out: &mut Out<'_>, t: &mut Table, passive: &mut Table, d: &Directive, scheme: &str) {
    let address = d.arg(0);
    let url = if address.starts_with("unix:") {
        address.to_string()
    } else if address
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        format!("{scheme}://{address}")
    } else {
        format!(
            "{scheme}://{address}:{}",
            if scheme == "https" { 443 } else { 80 }
        )
    };
    let mut entry = vec![("url".to_string(), Value::from(url.as_str()))];
    for param in d.args.iter().skip(1) {
        let (key, value) = param.split_once('=').unwrap_or((param.as_str(), ""));
        match key {
            "weight" | "max_conns" => {
                if let Ok(n) = value.parse::<i64>() {
                    if !((key == "weight" && n == 1) || (key == "max_conns" && n == 0)) {
                        entry.push((key.to_string(), Value::Int(n)));
                    }
                }
            }
            "backup" => entry.push(("backup".to_string(), Value::Bool(true))),
            "down" => {
                out.report
                    .not_needed(d, "a server marked down gets no requests: it is left out");
                return;
            }
            "max_fails" => match value.parse::<i64>() {
                Ok(1) => {}
                Ok(n) => set_passive(out, passive, d, "max_fails", Value::Int(n)),
                Err(_) => out.report.decision(d, "max_fails is not a number"),
            },
            "fail_timeout" => match values::millis(value) {
                Some(10_000) => {}
                Some(ms) => set_passive(out, passive, d, "fail_timeout", Value::from(values::duration(ms))),
                None => out.report.decision(d, "fail_timeout is not a time"),
            },
            "resolve" => out
                .report
                .not_needed(d, "pool servers' names are resolved again every resolve_interval"),
            _ => out
                .report
                .decision(d, format!("{key}: the server parameter has no translation")),
        }
    }
    let value = if entry.len() == 1 {
        Value::from(url)
    } else {
        Value::Table(entry)
    };
    t.push("servers", value, from(d));
}

fn set_passive(out: &mut Out<'_>, passive: &mut Table, d: &Directive, key: &str, value: Value) {
    match passive.get(key) {
        Some(old) if *old != value => out.report.approximated(
            d,
            format!("{key} is per pool in portcullis: the first server's is kept"),
            false,
        ),
        _ => passive.set(key, value, from(d)),
    }
}

fn hash(out: &mut Out<'_>, t: &mut Table, d: &Directive) {
    let key = d.arg(0);
    let mapped = if key == "$remote_addr" || key == "$binary_remote_addr" {
        Some("client_ip".to_string())
    } else if let Some(c) = key.strip_prefix("$cookie_") {
        Some(format!("cookie:{c}"))
    } else if let Some(a) = key.strip_prefix("$arg_") {
        Some(format!("query:{a}"))
    } else {
        key.strip_prefix("$http_").map(|h| {
            let name: Vec<String> = h
                .split('_')
                .map(|w| {
                    let mut c = w.chars();
                    c.next()
                        .map_or(String::new(), |f| f.to_ascii_uppercase().to_string() + c.as_str())
                })
                .collect();
            format!("header:{}", name.join("-"))
        })
    };
    let Some(mapped) = mapped.filter(|m| !m.contains('$')) else {
        out.report.decision(
            d,
            "hash_key is client_ip, a header, a cookie or a query parameter",
        );
        return;
    };
    t.set("balance", "hash", from(d));
    t.set("hash_key", mapped, from(d));
    if d.arg(1) != "consistent" {
        out.report.approximated(
            d,
            "hashing is always consistent (a server's removal moves only its keys)",
            false,
        );
    }
}
