//! Header rules: `[headers]` and a route's `request.set/add/remove`,
//! `response.set/add/remove/when/inherit`, `upstream_host` and
//! `forwarded_for`. Names the proxy owns (hop-by-hop, framing, the
//! forwarding headers it writes) are refused with the key that does what
//! was meant; values are compiled into placeholder templates.

use http::{HeaderName, HeaderValue};
use toml::de::DeValue;

use super::checker::{Checker, Schema, Table};
use crate::config::{ForwardedFor, HeaderRule, HeaderRules, RouteHeaders, RuleSet, UpstreamHost, When};
use crate::proxy::placeholder::Template;

const HEADERS_SCHEMA: Schema = Schema {
    keys: &["request", "response"],
    aliases: &[("proxy_set_header", "request"), ("add_header", "response")],
};

const REQUEST_SCHEMA: Schema = Schema {
    keys: &["set", "add", "remove"],
    aliases: &[
        ("proxy_set_header", "set"),
        ("append", "add"),
        ("delete", "remove"),
        ("unset", "remove"),
    ],
};

const RESPONSE_SCHEMA: Schema = Schema {
    keys: &["set", "add", "remove", "when", "inherit"],
    aliases: &[
        ("add_header", "add"),
        ("append", "add"),
        ("proxy_hide_header", "remove"),
        ("hide", "remove"),
        ("delete", "remove"),
        ("always", "when"),
    ],
};

/// Which way a rule set works.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Request,
    Response,
}

/// Names no rule may touch, each with what to write instead. The request
/// side's; the response side refuses only the framing and hop-by-hop ones.
const OWNED: [(&str, &str, bool); 17] = [
    (
        "host",
        "write upstream_host = \"upstream\" or upstream_host = \"name\" on the route",
        true,
    ),
    (
        "x-forwarded-for",
        "write forwarded_for = \"replace\" (or \"append\", the default) on the route",
        true,
    ),
    ("x-real-ip", "the proxy sets it to the client's address", true),
    (
        "x-forwarded-proto",
        "the proxy sets it to the client's scheme",
        true,
    ),
    (
        "x-forwarded-host",
        "the proxy sets it to the Host the client sent",
        true,
    ),
    (
        "x-client-cert-subject",
        "the proxy sets it from the verified client certificate",
        true,
    ),
    (
        "x-client-cert-sha256",
        "the proxy sets it from the verified client certificate",
        true,
    ),
    (
        "x-client-cert-verify",
        "the proxy sets it from the TLS handshake",
        true,
    ),
    (
        "http2-settings",
        "it belongs to an upgrade the proxy never forwards",
        true,
    ),
    (
        "connection",
        "hop-by-hop headers belong to each connection; the proxy writes its own",
        false,
    ),
    (
        "keep-alive",
        "hop-by-hop headers belong to each connection; the proxy writes its own",
        false,
    ),
    (
        "proxy-connection",
        "hop-by-hop headers belong to each connection; the proxy writes its own",
        false,
    ),
    (
        "te",
        "hop-by-hop headers belong to each connection; the proxy writes its own",
        false,
    ),
    (
        "trailer",
        "hop-by-hop headers belong to each connection; the proxy writes its own",
        false,
    ),
    (
        "upgrade",
        "hop-by-hop headers belong to each connection; websocket = true forwards WebSocket upgrades",
        false,
    ),
    (
        "transfer-encoding",
        "the proxy frames every message itself",
        false,
    ),
    ("content-length", "the proxy frames every message itself", false),
];

impl Checker<'_> {
    /// `[headers]`, when written.
    pub(super) fn header_defaults(&mut self, top: &Table<'_, '_>) -> HeaderRules {
        let Some(table) = self.table(top, "headers", "[headers]") else {
            return HeaderRules::default();
        };
        self.check_keys(&table, &HEADERS_SCHEMA);
        self.header_rules(&table, false).0
    }

    /// A route's header keys.
    pub(super) fn route_headers(&mut self, route: &Table<'_, '_>) -> RouteHeaders {
        let (rules, inherit) = self.header_rules(route, true);
        RouteHeaders {
            rules,
            response_inherit: inherit.unwrap_or(true),
            upstream_host: self.upstream_host(route),
            forwarded_for: self.forwarded_for(route),
        }
    }

    /// The `request` and `response` tables of `parent`, and the response's
    /// `inherit` (refused outside a route).
    fn header_rules(&mut self, parent: &Table<'_, '_>, in_route: bool) -> (HeaderRules, Option<bool>) {
        let mut rules = HeaderRules::default();
        let mut inherit = None;
        if let Some(request) = self.table(parent, "request", "request") {
            self.check_keys(&request, &REQUEST_SCHEMA);
            rules.request = self.rule_set(&request, Direction::Request);
        }
        if let Some(response) = self.table(parent, "response", "response") {
            self.check_keys(&response, &RESPONSE_SCHEMA);
            rules.response = self.rule_set(&response, Direction::Response);
            rules.response_when = self.when(&response);
            if response.get("inherit").is_some() {
                let value = self.boolean(&response, "inherit", true);
                if in_route {
                    inherit = Some(value);
                } else if let Some(written) = response.get("inherit") {
                    self.error(
                        &written.span(),
                        response.key_path("inherit"),
                        "`inherit` is a route's choice: [headers] has nothing to inherit from",
                        "write response.inherit = false in the [[route]] that must not get the [headers] response rules",
                    );
                }
            }
        }
        (rules, inherit)
    }

    fn rule_set(&mut self, table: &Table<'_, '_>, direction: Direction) -> RuleSet {
        RuleSet {
            set: self.header_values(table, "set", direction),
            add: self.header_values(table, "add", direction),
            remove: self.header_names(table, direction),
        }
    }

    /// `set` or `add`: a table of names and values.
    fn header_values(&mut self, table: &Table<'_, '_>, key: &str, direction: Direction) -> Vec<HeaderRule> {
        let example = format!("{key} = {{ \"X-Frame-Options\" = \"DENY\" }}");
        let Some(value) = table.get(key) else {
            return Vec::new();
        };
        let DeValue::Table(entries) = value.get_ref() else {
            self.type_error(
                value,
                table.key_path(key),
                "a table of header names and values",
                format!("for example: {example}"),
            );
            return Vec::new();
        };
        let mut rules = Vec::new();
        for (name, value) in entries.iter() {
            let path = format!("{}.\"{}\"", table.key_path(key), name.get_ref());
            let Some(name) = self.header_name(name.get_ref(), &name.span(), &path, direction) else {
                continue;
            };
            let DeValue::String(text) = value.get_ref() else {
                self.type_error(value, path, "a string", format!("for example: {example}"));
                continue;
            };
            match Template::parse(text) {
                Ok(template) if HeaderValue::from_str(text).is_ok() => {
                    rules.push(HeaderRule::new(name, template))
                }
                Ok(_) => self.error(
                    &value.span(),
                    path,
                    "a header value cannot hold a line break or control character",
                    "write the value on one line",
                ),
                Err(unknown) => {
                    let (message, hint) = unknown.describe();
                    self.error(&value.span(), path, message, hint);
                }
            }
        }
        rules
    }

    /// `remove`: a list of names.
    fn header_names(&mut self, table: &Table<'_, '_>, direction: Direction) -> Vec<HeaderName> {
        const EXAMPLE: &str = "remove = [\"X-Powered-By\"]";
        let Some(value) = table.get("remove") else {
            return Vec::new();
        };
        let key = table.key_path("remove");
        let DeValue::Array(items) = value.get_ref() else {
            self.type_error(
                value,
                key,
                "a list of header names",
                format!("for example: {EXAMPLE}"),
            );
            return Vec::new();
        };
        let mut names = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let path = format!("{key}[{index}]");
            let DeValue::String(text) = item.get_ref() else {
                self.type_error(item, path, "a header name", format!("for example: {EXAMPLE}"));
                continue;
            };
            names.extend(self.header_name(text, &item.span(), &path, direction));
        }
        names
    }

    /// A header name a rule may touch.
    fn header_name(
        &mut self,
        text: &str,
        span: &std::ops::Range<usize>,
        path: &str,
        direction: Direction,
    ) -> Option<HeaderName> {
        let Ok(name) = HeaderName::from_bytes(text.as_bytes()) else {
            self.error(
                span,
                path,
                format!("`{}` is not a header name", text.escape_debug()),
                "a header name is letters, digits and -, such as \"X-Frame-Options\"",
            );
            return None;
        };
        let owned = OWNED.iter().find(|(owned, _, request_only)| {
            *owned == name.as_str() && (direction == Direction::Request || !request_only)
        });
        if let Some((_, hint, _)) = owned {
            self.error(
                span,
                path,
                format!("`{text}` is the proxy's own header: rules cannot change it"),
                *hint,
            );
            return None;
        }
        Some(name)
    }

    fn when(&mut self, table: &Table<'_, '_>) -> When {
        match self.string(table, "when", "\"always\"") {
            Some(("always", _)) | None => When::Always,
            Some(("success", _)) => When::Success,
            Some((text, span)) => {
                self.error(
                    &span,
                    table.key_path("when"),
                    format!("`{text}` is not when rules apply"),
                    "write \"always\" (every response, the proxy's own errors too; nginx's add_header ... always) or \"success\" (200, 201, 204, 206, 301, 302, 303, 304, 307, 308; nginx's add_header)",
                );
                When::Always
            }
        }
    }

    fn upstream_host(&mut self, route: &Table<'_, '_>) -> UpstreamHost {
        match self.string(route, "upstream_host", "\"upstream\"") {
            None | Some(("client", _)) => UpstreamHost::Client,
            Some(("upstream", _)) => UpstreamHost::Upstream,
            Some((text, span)) => match HeaderValue::from_str(text) {
                Ok(value) if crate::proxy::headers::valid_host(text.as_bytes()) => {
                    UpstreamHost::Literal(value)
                }
                _ => {
                    self.error(
                        &span,
                        route.key_path("upstream_host"),
                        format!("`{}` is not a host[:port]", text.escape_debug()),
                        "write \"client\" (the Host the client sent, the default), \"upstream\" (the upstream's own address; nginx without proxy_set_header Host) or a name such as \"app.internal\"",
                    );
                    UpstreamHost::Client
                }
            },
        }
    }

    fn forwarded_for(&mut self, route: &Table<'_, '_>) -> ForwardedFor {
        match self.string(route, "forwarded_for", "\"append\"") {
            None | Some(("append", _)) => ForwardedFor::Append,
            Some(("replace", _)) => ForwardedFor::Replace,
            Some((text, span)) => {
                self.error(
                    &span,
                    route.key_path("forwarded_for"),
                    format!("`{text}` is not a way to write X-Forwarded-For"),
                    "write \"append\" (the client's list, then its address; nginx's $proxy_add_x_forwarded_for) or \"replace\" (its address alone; nginx's $remote_addr)",
                );
                ForwardedFor::Append
            }
        }
    }
}
