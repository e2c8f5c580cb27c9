//! `return`, `rewrite` and `if`: redirects and fixed answers, the rewrites
//! that are a prefix strip or a regex route's `rewrite`, and the `if`s
//! that have no translation.

use super::location::Match;
use super::{from, Out};
use crate::emit::{Table, Value};
use crate::parse::Directive;
use crate::values::{self, Use};

/// What a location does after its rewrites.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Flow {
    /// Nothing changed.
    Continue,
    /// The path forwarded was changed (`rewrite`, `strip_prefix`...).
    Rewritten,
    /// The route answers by itself (a redirect).
    Answered,
}

/// `return`: a redirect or a fixed answer; false when it has none.
pub(crate) fn ret(out: &mut Out<'_>, t: &mut Table, d: &Directive, server_name: &str) -> bool {
    let (code, rest) = match d.arg(0).parse::<u16>() {
        Ok(code) => (code, d.args.get(1)),
        Err(_) => (302, d.args.first()),
    };
    let text = rest.map_or("", String::as_str);
    if matches!(code, 301 | 302 | 303 | 307 | 308) {
        return redirect(out, t, d, code, text, server_name);
    }
    if code == 444 {
        out.report.decision(d, "a route cannot close the connection without an answer ([http] unknown_host = \"close\" does, for unknown hosts)");
        return false;
    }
    if !(200..=599).contains(&code) {
        out.report.decision(d, "respond takes a status from 200 to 599");
        return false;
    }
    let mut answer = vec![("status".to_string(), Value::Int(i64::from(code)))];
    if !text.is_empty() {
        if text.contains('$') {
            out.report.approximated(
                d,
                "the body is sent as written: portcullis fills no variables in a fixed answer",
                true,
            );
        }
        answer.push(("body".to_string(), Value::from(text)));
    }
    t.set("respond", Value::Table(answer), from(d));
    true
}

fn redirect(
    out: &mut Out<'_>,
    t: &mut Table,
    d: &Directive,
    code: u16,
    url: &str,
    server_name: &str,
) -> bool {
    match values::template(url, server_name, Use::Header) {
        Ok(location) => {
            t.set("redirect", location, from(d));
            let status = if code == 303 {
                out.report.approximated(
                    d,
                    "303 is answered 302 (redirect statuses are 301, 302, 307 and 308)",
                    true,
                );
                302
            } else {
                code
            };
            t.set("status", i64::from(status), from(d));
            true
        }
        Err(var) => {
            out.report
                .decision(d, format!("{var} has no placeholder in a redirect"));
            false
        }
    }
}

/// A location's `rewrite`.
pub(crate) fn rewrite(out: &mut Out<'_>, t: &mut Table, d: &Directive, m: &Match, server_name: &str) -> Flow {
    let (regex, replacement, flag) = (d.arg(0), d.arg(1), d.arg(2));
    let is_url = ["http://", "https://", "$scheme://"]
        .iter()
        .any(|p| replacement.starts_with(p));
    if is_url || matches!(flag, "redirect" | "permanent") {
        let status = if flag == "permanent" { 301 } else { 302 };
        let whole = matches!(
            regex,
            "^" | "^(.*)$" | "^(.*)" | "^/(.*)$" | "^/(.*)" | ".*" | "^.*$"
        );
        let target = if regex.starts_with("^/") {
            replacement.replace("$1", "$uri").replace("/$uri", "$uri")
        } else {
            replacement.replace("$1", "$uri")
        };
        if !whole && replacement.contains('$') && replacement.contains(|c: char| c.is_ascii_digit()) {
            out.report.decision(
                d,
                "a redirect that takes regex groups: write the route's redirect by hand",
            );
            return Flow::Continue;
        }
        // nginx keeps the query unless the replacement ends with "?".
        let target = match target.strip_suffix('?') {
            Some(t) => t.to_string(),
            None if target.contains("$request_uri") || target.contains("$args") => target,
            None => format!("{target}$is_args$args"),
        };
        return if redirect(out, t, d, status, &target, server_name) {
            Flow::Answered
        } else {
            Flow::Continue
        };
    }
    if !matches!(flag, "break" | "last" | "") {
        out.report
            .decision(d, "a rewrite flag this translator does not read");
        return Flow::Continue;
    }
    if flag != "break" {
        out.report.approximated(
            d,
            "the path is rewritten and forwarded from this route (nginx's break), not matched again",
            true,
        );
    }
    match m {
        Match::Prefix(p) | Match::PrefixWins(p) => {
            let escaped = p.replace('.', "\\.");
            let strips = [
                format!("^{escaped}(.*)$"),
                format!("^{escaped}(.*)"),
                format!("^{p}(.*)$"),
                format!("^{p}(.*)"),
            ];
            match replacement.strip_suffix("$1") {
                Some(new)
                    if strips.contains(&regex.to_string()) && p.ends_with('/') && new.ends_with('/') =>
                {
                    if new == "/" {
                        t.set("strip_prefix", true, from(d));
                    } else {
                        t.set("rewrite_prefix", new, from(d));
                    }
                    Flow::Rewritten
                }
                _ => {
                    out.report.decision(d, "a rewrite other than a prefix strip in a prefix location: make the route a path_regex with rewrite");
                    Flow::Continue
                }
            }
        }
        Match::Regex(re) => {
            let same = re == regex || re.strip_prefix("(?i)") == Some(regex);
            if same && !replacement.contains("$is_args") && !replacement.contains("$args") {
                let rewrite = replacement.trim_end_matches('?');
                t.set("rewrite", rewrite, from(d));
                Flow::Rewritten
            } else {
                out.report.decision(d, "a rewrite with another regex than its location's: write the route's path_regex and rewrite by hand");
                Flow::Continue
            }
        }
        Match::Exact(_) => {
            out.report.decision(
                d,
                "a rewrite in an exact location: write the route's rewrite by hand",
            );
            Flow::Continue
        }
    }
}

/// A `rewrite` or `if` in a server block (outside locations).
pub(crate) fn server_rewrite(out: &mut Out<'_>, d: &Directive) {
    out.report.decision(
        d,
        "rewrites and ifs of a whole server have no translation: each route needs its own",
    );
}

/// An `if` inside a location.
pub(crate) fn location_if(out: &mut Out<'_>, d: &Directive) {
    out.report.dropped(
        d,
        "if blocks have no translation: the route behaves as if the condition were false",
    );
}
