//! `[upstream.health]` (active checks: `path`, `interval`, `timeout`,
//! `expect_status`, `rise`, `fall`) and `[upstream.passive]`
//! (`max_fails`, `fail_timeout`) of an `[[upstream]]`.

use std::ops::Range;
use std::time::Duration;

use toml::de::DeValue;

use super::checker::{Checker, Schema, Table};
use super::pool::DEFAULT_FAIL_TIMEOUT;
use crate::config::duration::Zero;
use crate::config::pool::{ActiveHealth, PassiveHealth};

const HEALTH_SCHEMA: Schema = Schema {
    keys: &["path", "interval", "timeout", "expect_status", "rise", "fall"],
    aliases: &[
        ("uri", "path"),
        ("url", "path"),
        ("passes", "rise"),
        ("fails", "fall"),
    ],
};

const PASSIVE_SCHEMA: Schema = Schema {
    keys: &["max_fails", "fail_timeout"],
    aliases: &[],
};

const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

impl Checker<'_> {
    /// `[upstream.health]`; `None` when invalid.
    pub(super) fn health(&mut self, table: &Table<'_, '_>) -> Option<ActiveHealth> {
        self.check_keys(table, &HEALTH_SCHEMA);
        let path = match self.string(table, "path", "\"/healthz\"") {
            Some((text, _)) if text.starts_with('/') && !text.contains(char::is_whitespace) => {
                Some(text.to_string())
            }
            Some((text, span)) => {
                self.error(
                    &span,
                    table.key_path("path"),
                    format!("`{text}` is not a request path"),
                    "write the path only, starting with `/`: path = \"/healthz\"",
                );
                None
            }
            None => {
                if table.get("path").is_none() {
                    self.missing(
                        &table.span,
                        table.key_path("path"),
                        "[upstream.health] has no `path`",
                        "add path = \"/healthz\" (what the checks GET), or remove [upstream.health] to turn active checks off",
                    );
                }
                None
            }
        };
        let interval = self.duration(table, "interval", DEFAULT_INTERVAL, Zero::Rejected);
        let timeout = self.duration(table, "timeout", DEFAULT_HEALTH_TIMEOUT, Zero::Rejected);
        let expect_status = self.expect_status(table);
        let rise = self.small_count(table, "rise", 2, "2").max(1);
        let fall = self.small_count(table, "fall", 3, "3").max(1);
        for key in ["rise", "fall"] {
            if let Some((0, span)) = self.peek_integer(table, key) {
                self.error(
                    &span,
                    table.key_path(key),
                    "0 checks in a row cannot decide anything",
                    format!("give 1 or more, for example: {key} = 2"),
                );
                return None;
            }
        }
        Some(ActiveHealth {
            path: path?,
            interval,
            timeout,
            expect_status: expect_status?,
            rise,
            fall,
        })
    }

    /// `expect_status`: "200", "200-399" or an integer; `None` when invalid.
    fn expect_status(&mut self, table: &Table<'_, '_>) -> Option<(u16, u16)> {
        const KEY: &str = "expect_status";
        let Some(value) = table.get(KEY) else {
            return Some((200, 399));
        };
        let text = match value.get_ref() {
            DeValue::String(text) => text.to_string(),
            DeValue::Integer(n) => n.as_str().to_string(),
            _ => {
                self.type_error(
                    value,
                    table.key_path(KEY),
                    "a status or a range",
                    "for example: expect_status = \"200-399\"".to_string(),
                );
                return None;
            }
        };
        let (low, high) = text.split_once('-').unwrap_or((&text, &text));
        let status = |s: &str| s.trim().parse::<u16>().ok().filter(|n| (100..=599).contains(n));
        match (status(low), status(high)) {
            (Some(low), Some(high)) if low <= high => Some((low, high)),
            _ => {
                self.error(
                    &value.span(),
                    table.key_path(KEY),
                    format!("`{text}` is not a status or a range of statuses"),
                    "write a status from 100 to 599 or a range, for example: expect_status = \"200-399\"",
                );
                None
            }
        }
    }

    pub(super) fn passive(&mut self, table: &Table<'_, '_>) -> PassiveHealth {
        self.check_keys(table, &PASSIVE_SCHEMA);
        PassiveHealth {
            max_fails: self.small_count(table, "max_fails", 1, "3"),
            fail_timeout: self.duration(table, "fail_timeout", DEFAULT_FAIL_TIMEOUT, Zero::Rejected),
        }
    }

    /// The integer at `key` without reporting anything.
    fn peek_integer(&self, table: &Table<'_, '_>, key: &str) -> Option<(i128, Range<usize>)> {
        let value = table.get(key)?;
        match value.get_ref() {
            DeValue::Integer(n) => i128::from_str_radix(n.as_str(), n.radix())
                .ok()
                .map(|n| (n, value.span())),
            _ => None,
        }
    }
}
