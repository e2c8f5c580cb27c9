//! What a route does: forward (`upstream`), redirect (`redirect` with
//! `status`) or answer by itself (`respond = { status, body }`), exactly
//! one of them; and the `methods` it takes.

use http::{Method, StatusCode};

use super::checker::{Checker, Schema, Table};
use crate::config::RouteAction;
use crate::proxy::placeholder::Template;

/// The keys of which a route has exactly one.
const ACTION_KEYS: [&str; 3] = ["upstream", "redirect", "respond"];

/// The statuses a `redirect` may answer with.
const REDIRECT_STATUSES: [u16; 4] = [301, 302, 307, 308];

const RESPOND_SCHEMA: Schema = Schema {
    keys: &["status", "body"],
    aliases: &[("code", "status"), ("text", "body"), ("content", "body")],
};

impl Checker<'_> {
    /// The route's action; `None` when what is written is invalid (the
    /// error is recorded) or when `upstream` is absent with nothing in its
    /// place, which the caller reports.
    pub(super) fn route_action(&mut self, table: &Table<'_, '_>) -> Option<RouteAction> {
        let written = self.one_of(table, &ACTION_KEYS, "a route forwards, redirects or responds");
        if written.len() > 1 {
            return None;
        }
        if written.first() != Some(&"redirect") {
            if let Some(value) = table.get("status") {
                self.error(
                    &value.span(),
                    table.key_path("status"),
                    "`status` goes with `redirect`",
                    "for a fixed answer write respond = { status = 404, body = \"...\" }",
                );
            }
        }
        match written.first() {
            Some(&"redirect") => self.redirect(table),
            Some(&"respond") => self.respond(table),
            _ => Some(RouteAction::Proxy),
        }
    }

    fn redirect(&mut self, table: &Table<'_, '_>) -> Option<RouteAction> {
        let (text, span) = self.string(table, "redirect", "\"https://example.com{path}{query}\"")?;
        let to = match Template::parse(text) {
            Ok(to) => to,
            Err(unknown) => {
                let (message, hint) = unknown.describe();
                self.error(&span, table.key_path("redirect"), message, hint);
                return None;
            }
        };
        if text.trim().is_empty() {
            self.error(
                &span,
                table.key_path("redirect"),
                "the redirect goes nowhere",
                "write a URL or a path, for example: redirect = \"https://example.com{path}{query}\"",
            );
            return None;
        }
        let status = match self.integer(table, "status", "301") {
            None if table.get("status").is_some() => return None,
            None => StatusCode::FOUND,
            Some((n, span)) => match u16::try_from(n).ok().filter(|n| REDIRECT_STATUSES.contains(n)) {
                Some(n) => StatusCode::from_u16(n).ok()?,
                None => {
                    self.error(
                        &span,
                        table.key_path("status"),
                        format!("{n} is not a redirect status"),
                        "write 301 or 308 (permanent), 302 or 307 (temporary); 307 and 308 keep the method and body",
                    );
                    return None;
                }
            },
        };
        Some(RouteAction::Redirect { to, status })
    }

    fn respond(&mut self, table: &Table<'_, '_>) -> Option<RouteAction> {
        let respond = self.table(table, "respond", "respond = { status = 404, body = \"...\" }")?;
        self.check_keys(&respond, &RESPOND_SCHEMA);
        let status = match self.integer(&respond, "status", "404") {
            None if respond.get("status").is_some() => return None,
            None => StatusCode::OK,
            Some((n, span)) => match u16::try_from(n).ok().filter(|n| (200..=599).contains(n)) {
                Some(n) => StatusCode::from_u16(n).ok()?,
                None => {
                    self.error(
                        &span,
                        respond.key_path("status"),
                        format!("{n} is not a status a route can answer with"),
                        "write a status from 200 to 599, for example: status = 404 (a redirect is written redirect = \"...\")",
                    );
                    return None;
                }
            },
        };
        let body = match self.string(&respond, "body", "\"not here\\n\"") {
            Some((text, _)) => text.to_string(),
            None if respond.get("body").is_some() => return None,
            None => String::new(),
        };
        Some(RouteAction::Respond { status, body })
    }

    /// `methods`: method names in capitals; empty when absent.
    pub(super) fn methods(&mut self, table: &Table<'_, '_>) -> Vec<Method> {
        const EXAMPLE: &str = "methods = [\"GET\", \"POST\"]";
        let Some(value) = table.get("methods") else {
            return Vec::new();
        };
        let key = table.key_path("methods");
        let items = match value.get_ref() {
            toml::de::DeValue::Array(items) if !items.is_empty() => items,
            _ => {
                self.type_error(
                    value,
                    key,
                    "a non-empty list of methods",
                    format!("for example: {EXAMPLE}"),
                );
                return Vec::new();
            }
        };
        let mut methods = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let path = format!("{key}[{index}]");
            let toml::de::DeValue::String(text) = item.get_ref() else {
                self.type_error(item, path, "a method name", format!("for example: {EXAMPLE}"));
                continue;
            };
            let text: &str = text.as_ref();
            let upper = text.to_ascii_uppercase();
            match Method::from_bytes(text.as_bytes()) {
                Ok(method) if upper == text && !text.is_empty() => methods.push(method),
                _ if !upper.is_empty() && Method::from_bytes(upper.as_bytes()).is_ok() => self.error(
                    &item.span(),
                    path,
                    format!("`{text}` is not written in capitals; methods are case-sensitive"),
                    format!("write \"{upper}\""),
                ),
                _ => self.error(
                    &item.span(),
                    path,
                    format!("`{}` is not a method name", text.escape_debug()),
                    format!("for example: {EXAMPLE}"),
                ),
            }
        }
        methods
    }
}
