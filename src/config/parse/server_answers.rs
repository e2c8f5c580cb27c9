//! `[tls] unknown_sni` and `[http] unknown_host`.

use super::checker::{Checker, Table};
use crate::config::{UnknownHost, UnknownSni};

impl Checker<'_> {
    pub(super) fn unknown_sni(&mut self, table: &Table<'_, '_>) -> UnknownSni {
        const VALID: &str = "valid values: \"default\" (serve the first certificate, the default) or \"reject\" (refuse the handshake, nginx's ssl_reject_handshake on)";
        let Some((text, span)) = self.string(table, "unknown_sni", "\"reject\"") else {
            return UnknownSni::Default;
        };
        match text.trim().to_ascii_lowercase().as_str() {
            "default" => UnknownSni::Default,
            "reject" => UnknownSni::Reject,
            other => {
                let hint = if matches!(other, "on" | "true" | "refuse" | "deny") {
                    format!("write unknown_sni = \"reject\"; {VALID}")
                } else {
                    VALID.to_string()
                };
                self.error(
                    &span,
                    table.key_path("unknown_sni"),
                    format!("`{text}` is not an unknown_sni answer"),
                    hint,
                );
                UnknownSni::Default
            }
        }
    }

    pub(super) fn unknown_host(&mut self, table: &Table<'_, '_>) -> UnknownHost {
        const VALID: &str =
            "valid values: \"answer\" (the default) or \"close\" (close without a byte, nginx's return 444)";
        let Some((text, span)) = self.string(table, "unknown_host", "\"close\"") else {
            return UnknownHost::Answer;
        };
        match text.trim().to_ascii_lowercase().as_str() {
            "answer" => UnknownHost::Answer,
            "close" => UnknownHost::Close,
            other => {
                let hint = if matches!(other, "444" | "drop" | "reject") {
                    format!("write unknown_host = \"close\"; {VALID}")
                } else {
                    VALID.to_string()
                };
                self.error(
                    &span,
                    table.key_path("unknown_host"),
                    format!("`{text}` is not an unknown_host answer"),
                    hint,
                );
                UnknownHost::Answer
            }
        }
    }
}
