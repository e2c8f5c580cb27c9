//! `location` blocks (and a server's own `return`): each one a `[[route]]`
//! with its match (`path`, `path_exact`, `path_regex`, `prefix_wins`), what
//! it does (proxy, files, redirect, answer) and what applies to any route
//! (response headers, methods, error pages, compression).

use super::{answers, from, global, misc, proxy, statics, Out};
use crate::emit::{Table, Value};
use crate::inherit::Scope;
use crate::parse::Directive;

/// How a location matches.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Match {
    Prefix(String),
    PrefixWins(String),
    Exact(String),
    Regex(String),
}

/// Directives read through inheritance by the locations below: the
/// blocks above them write them without a translation of their own.
pub(crate) fn read_below(name: &str) -> bool {
    matches!(
        name,
        "proxy_set_header"
            | "add_header"
            | "proxy_hide_header"
            | "proxy_pass_header"
            | "proxy_read_timeout"
            | "proxy_connect_timeout"
            | "proxy_send_timeout"
            | "client_max_body_size"
            | "root"
            | "index"
            | "error_page"
            | "gzip"
            | "gzip_types"
            | "gzip_min_length"
            | "gzip_comp_level"
            | "gzip_static"
            | "brotli_static"
            | "proxy_redirect"
            | "proxy_cookie_path"
            | "proxy_cookie_flags"
            | "proxy_ssl_verify"
            | "proxy_ssl_trusted_certificate"
            | "proxy_ssl_name"
            | "proxy_intercept_errors"
            | "ssl_certificate"
            | "ssl_certificate_key"
            | "expires"
            | "try_files"
    )
}

/// The routes of one server, in the order of its locations.
pub(crate) fn routes<'a>(
    out: &mut Out<'a>,
    block: &Directive,
    server: &Scope<'a>,
    server_name: &str,
) -> Vec<Table> {
    let mut routes = Vec::new();
    if let Some(ret) = server.own().iter().find(|d| d.name == "return") {
        let mut t = Table::new("[[route]]");
        t.note = Some(format!("nginx: {} (the server's own return)", from(ret)));
        t.set("path", "/", "");
        if answers::ret(out, &mut t, ret, server_name) {
            answers_common(out, &mut t, server, server_name);
            routes.push(t);
        }
        for loc in server.own().iter().filter(|d| d.name == "location") {
            out.report
                .not_needed(loc, "never reached: the server's return answers first");
        }
        return routes;
    }
    for d in server
        .own()
        .iter()
        .filter(|d| matches!(d.name.as_str(), "rewrite" | "if"))
    {
        answers::server_rewrite(out, d);
    }
    walk(out, server, server, server_name, &mut routes, None);
    let has_root_location = server
        .own()
        .iter()
        .any(|d| d.name == "location" && (d.args == ["/"] || d.args == ["^~", "/"]));
    if !has_root_location {
        // nginx answers what no location takes from the root in effect,
        // its compiled-in `html` directory when none is written.
        let mut t = Table::new("[[route]]");
        t.note = Some(format!("nginx: what no location of {} takes", from(block)));
        t.set("path", "/", "");
        if server.get("root").is_none() {
            t.set("root", DEFAULT_ROOT, "nginx's default root html");
            out.report.approximated(
                block,
                format!(
                    "what no location takes is served from nginx's default root, {DEFAULT_ROOT} (Debian's)"
                ),
                false,
            );
        }
        if statics::files(out, &mut t, server, server, &Match::Prefix("/".into())) {
            answers_common(out, &mut t, server, server_name);
            routes.push(t);
        }
    }
    routes
}

/// nginx's `html` under its prefix, as Debian builds it.
const DEFAULT_ROOT: &str = "/usr/share/nginx/html";

fn walk<'a>(
    out: &mut Out<'a>,
    server: &Scope<'a>,
    scope: &Scope<'a>,
    server_name: &str,
    routes: &mut Vec<Table>,
    parent: Option<&Match>,
) {
    for loc in scope.own().iter().filter(|d| d.name == "location") {
        let inner = scope.with(loc.children());
        let Some(m) = matcher(out, loc) else { continue };
        if let (Some(Match::Prefix(_) | Match::PrefixWins(_)), Match::Regex(_)) = (parent, &m) {
            out.report.approximated(
                loc,
                "a nested regex location is tried with the other regex routes, not only under its parent",
                false,
            );
        }
        if let Some(t) = route(out, server, loc, &inner, &m, server_name) {
            routes.push(t);
        }
        walk(out, server, &inner, server_name, routes, Some(&m));
    }
}

fn matcher(out: &mut Out<'_>, loc: &Directive) -> Option<Match> {
    let args: Vec<&str> = loc.args.iter().map(String::as_str).collect();
    let m = match args.as_slice() {
        [p] if p.starts_with('@') => return None,
        [p] if p.starts_with('=') && p.len() > 1 => Match::Exact(p[1..].to_string()),
        [p] if p.starts_with("~*") && p.len() > 2 => Match::Regex(format!("(?i){}", &p[2..])),
        [p] if p.starts_with("^~") && p.len() > 2 => Match::PrefixWins(p[2..].to_string()),
        [p] if p.starts_with('~') && p.len() > 1 => Match::Regex(p[1..].to_string()),
        [p] => Match::Prefix(p.to_string()),
        ["=", p] => Match::Exact(p.to_string()),
        ["~", re] => Match::Regex(re.to_string()),
        ["~*", re] => Match::Regex(format!("(?i){re}")),
        ["^~", p] => Match::PrefixWins(p.to_string()),
        _ => {
            out.report
                .decision(loc, "a location this translator does not read");
            return None;
        }
    };
    if let Match::Regex(re) = &m {
        let pcre_only = ["(?=", "(?!", "(?<=", "(?<!", "(?>", "\\1", "\\2", "(?P>", "\\K"];
        if pcre_only.iter().any(|p| re.contains(p)) {
            out.report.decision(
                loc,
                "look-around and back-references are PCRE's: the regex crate needs another pattern",
            );
            return None;
        }
    }
    Some(m)
}

fn route(
    out: &mut Out<'_>,
    server: &Scope<'_>,
    loc: &Directive,
    scope: &Scope<'_>,
    m: &Match,
    server_name: &str,
) -> Option<Table> {
    let mut t = Table::new("[[route]]");
    t.note = Some(format!("nginx: {}", from(loc)));
    match m {
        Match::Prefix(p) => t.set("path", p.as_str(), ""),
        Match::PrefixWins(p) => {
            t.set("path", p.as_str(), "");
            t.set("prefix_wins", true, "^~");
        }
        Match::Exact(p) => t.set("path_exact", p.as_str(), ""),
        Match::Regex(re) => t.set("path_regex", re.as_str(), ""),
    }
    let own = scope.own();
    let made = if let Some(ret) = own.iter().find(|d| d.name == "return") {
        for d in own
            .iter()
            .filter(|d| d.name != "return" && !matches!(d.name.as_str(), "add_header" | "location"))
        {
            if matches!(
                d.name.as_str(),
                "proxy_pass" | "root" | "alias" | "try_files" | "rewrite"
            ) {
                out.report
                    .not_needed(d, "never reached: the location's return answers first");
            }
        }
        answers::ret(out, &mut t, ret, server_name)
    } else {
        let rewrites: Vec<&Directive> = own.iter().filter(|d| d.name == "rewrite").collect();
        let mut flow = answers::Flow::Continue;
        for rw in rewrites {
            flow = answers::rewrite(out, &mut t, rw, m, server_name);
            if flow != answers::Flow::Continue {
                break;
            }
        }
        match flow {
            answers::Flow::Answered => true,
            answers::Flow::Continue | answers::Flow::Rewritten => {
                if let Some(pass) = own.iter().find(|d| d.name == "proxy_pass") {
                    proxy::proxy(out, &mut t, scope, m, pass, flow == answers::Flow::Rewritten)
                } else if statics::files(out, &mut t, scope, server, m) {
                    true
                } else if own.iter().any(|d| d.name == "location") {
                    // Only a parent of other locations.
                    return None;
                } else {
                    out.report.decision(
                        loc,
                        "no proxy_pass, return or root: nginx serves its default html directory here",
                    );
                    false
                }
            }
        }
    };
    for d in own {
        match d.name.as_str() {
            "return" | "rewrite" | "proxy_pass" | "location" | "alias" | "limit_except" => {}
            "if" => answers::location_if(out, d),
            "access_log" => out
                .report
                .approximated(d, "portcullis has one access log, [log]", false),
            _ if read_below(&d.name) => {}
            _ if global::server_key(out, d, scope) => {}
            _ => misc::other(out, d),
        }
    }
    if !made {
        return None;
    }
    answers_common(out, &mut t, scope, server_name);
    Some(t)
}

/// What every route gets whatever it does: response headers, methods,
/// error pages, compression.
fn answers_common(out: &mut Out<'_>, t: &mut Table, scope: &Scope<'_>, server_name: &str) {
    proxy::response_headers(out, t, scope, server_name);
    if let Some(limit) = scope.own().iter().find(|d| d.name == "limit_except") {
        let denies_all = limit
            .children()
            .iter()
            .any(|c| c.name == "deny" && c.arg(0) == "all");
        if denies_all && limit.children().len() == 1 {
            let methods: Vec<Value> = limit
                .args
                .iter()
                .map(|m| Value::from(m.to_ascii_uppercase()))
                .collect();
            t.set("methods", Value::List(methods), from(limit));
        } else {
            out.report.decision(
                limit,
                "methods = [...] answers 405 to the others; access lists inside have no translation",
            );
        }
    }
    statics::error_pages(out, t, scope);
    let gzip = scope.get("gzip").is_some_and(|d| d.arg(0) == "on");
    if out.gzip_everywhere && !gzip {
        if let Some(d) = scope.get("gzip") {
            t.set("compression", false, from(d));
        }
    } else if !out.gzip_everywhere && gzip {
        let keys = super::global::compression(scope);
        let table = keys.iter().map(|(k, v, _)| (k.clone(), v.clone())).collect();
        let at = scope.get("gzip").map(from).unwrap_or_default();
        t.set("compression", Value::Table(table), at);
    }
}
