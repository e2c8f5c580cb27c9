//! A route's `redirect_rewrite`, `cookie_path` and `cookie_flags`: how the
//! upstream's own URLs and cookies in a response are made the client's.

use toml::de::DeValue;

use super::checker::{Checker, Table};
use crate::config::{PathRewrite, UpstreamUrls};

/// The cookie attributes `cookie_flags` sets.
const FLAGS: &str = "secure, httponly, samesite=strict, samesite=lax, samesite=none";

impl Checker<'_> {
    pub(super) fn upstream_urls(&mut self, table: &Table<'_, '_>, rewrite: &PathRewrite) -> UpstreamUrls {
        let prefix_rewritten = matches!(rewrite, PathRewrite::Prefix(_));
        UpstreamUrls {
            redirects: self.boolean(table, "redirect_rewrite", prefix_rewritten),
            cookie_path: self.boolean(table, "cookie_path", false),
            cookie_flags: self.cookie_flags(table),
        }
    }

    fn cookie_flags(&mut self, table: &Table<'_, '_>) -> Vec<(String, Vec<(String, String)>)> {
        const EXAMPLE: &str = "cookie_flags = { session_id = \"secure; samesite=lax\" }";
        let Some(value) = table.get("cookie_flags") else {
            return Vec::new();
        };
        let key = table.key_path("cookie_flags");
        let DeValue::Table(entries) = value.get_ref() else {
            self.type_error(
                value,
                key,
                "a table of cookie names and flags",
                format!("for example: {EXAMPLE}"),
            );
            return Vec::new();
        };
        let mut cookies = Vec::new();
        for (name, flags) in entries.iter() {
            let path = format!("{key}.{}", name.get_ref());
            let DeValue::String(text) = flags.get_ref() else {
                self.type_error(
                    flags,
                    path,
                    "a string of flags",
                    format!("for example: {EXAMPLE}"),
                );
                continue;
            };
            let mut parsed = Vec::new();
            for flag in text.split(';').map(str::trim).filter(|f| !f.is_empty()) {
                let lower = flag.to_ascii_lowercase();
                let attribute = lower.split('=').next().unwrap_or("").trim().to_string();
                let known = matches!(
                    lower.replace(' ', "").as_str(),
                    "secure" | "httponly" | "samesite=strict" | "samesite=lax" | "samesite=none"
                );
                if !known {
                    self.error(
                        &flags.span(),
                        path.clone(),
                        format!("`{flag}` is not a cookie flag portcullis sets"),
                        format!("write some of: {FLAGS}, separated by `;`"),
                    );
                    continue;
                }
                parsed.push((attribute, flag.to_string()));
            }
            cookies.push((name.get_ref().to_string(), parsed));
        }
        cookies
    }
}
