//! `[log]`: the access log switch, the level in tracing's filter syntax,
//! and the format.

use toml::de::DeValue;

use super::checker::{edit_distance, Checker, Schema, Table};
use crate::config::error::Invalid;
use crate::config::{AccessTemplate, LogConfig, LogFormat};

pub(super) const DEFAULT_LOG_LEVEL: &str = "info";

const LOG_SCHEMA: Schema = Schema {
    keys: &["access_log", "level", "format", "access_template"],
    aliases: &[
        ("error_log", "level"),
        ("log_level", "level"),
        ("log_format", "format"),
        ("access_log_format", "access_template"),
        ("template", "access_template"),
    ],
};

impl Checker<'_> {
    pub(super) fn log(&mut self, table: &Table<'_, '_>) -> LogConfig {
        self.check_keys(table, &LOG_SCHEMA);
        let access_log = self.boolean(table, "access_log", true);
        let level = match self.string(table, "level", "\"info\"") {
            Some((text, span)) => match check_level(text) {
                Ok(()) => text.trim().to_string(),
                Err(invalid) => {
                    self.error(&span, table.key_path("level"), invalid.message, invalid.hint);
                    DEFAULT_LOG_LEVEL.to_string()
                }
            },
            None => DEFAULT_LOG_LEVEL.to_string(),
        };
        let format = self.log_format(table);
        LogConfig {
            access_log,
            level,
            format,
            access_template: self.access_template(table),
        }
    }

    /// `format`: `"text"` (the default) or `"json"`.
    fn log_format(&mut self, table: &Table<'_, '_>) -> LogFormat {
        const VALID: &str = "valid values: \"text\" (the default), \"combined\" (nginx's combined access lines) or \"json\" (one JSON object per line)";
        let Some(value) = table.get("format") else {
            return LogFormat::Text;
        };
        let key = table.key_path("format");
        let DeValue::String(text) = value.get_ref() else {
            self.type_error(value, key, "a string", VALID.to_string());
            return LogFormat::Text;
        };
        let text = text.trim();
        match text {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            "combined" => LogFormat::Combined,
            _ => {
                let lower = text.to_ascii_lowercase();
                if matches!(lower.as_str(), "text" | "json" | "combined") {
                    self.error(
                        &value.span(),
                        key,
                        format!("`{text}` is not how the format is written"),
                        format!("write format = \"{lower}\""),
                    );
                } else {
                    self.error(&value.span(), key, format!("`{text}` is not a log format"), VALID);
                }
                LogFormat::Text
            }
        }
    }
}

impl Checker<'_> {
    /// `access_template`: compiled here, so a bad placeholder is a
    /// configuration error and a request pays no parsing.
    fn access_template(&mut self, table: &Table<'_, '_>) -> Option<AccessTemplate> {
        let (text, span) = self.string(
            table,
            "access_template",
            "\"{client_ip} - [{time_local}] \\\"{request}\\\" {status} {bytes_sent} {request_id}\"",
        )?;
        match AccessTemplate::parse(text) {
            Ok(template) => Some(template),
            Err(invalid) => {
                self.error(
                    &span,
                    table.key_path("access_template"),
                    invalid.message,
                    invalid.hint,
                );
                None
            }
        }
    }
}

/// A `level` in the syntax of tracing's filters (`info`,
/// `warn,portcullis=debug`). A bare word must be a level: tracing would take
/// any other word for a target name, so a typo such as `infoo` would
/// silently turn logging off; a target is written `target=level`.
fn check_level(raw: &str) -> Result<(), Invalid> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    const HINT: &str = "use one of trace, debug, info, warn, error, off, optionally with per-target levels such as \"info,portcullis=debug\"";
    let text = raw.trim();
    if text.is_empty() {
        return Err(Invalid::new("the level is empty", HINT));
    }
    for directive in text.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        if directive.contains('[') {
            return Err(Invalid::new(
                format!("`{directive}`: span and field filters are not supported"),
                "filter by target and level only, such as \"info,portcullis=debug\"",
            ));
        }
        let level = match directive.rsplit_once('=') {
            Some((_, level)) => level.trim(),
            None => directive,
        };
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            let closest = LEVELS
                .iter()
                .min_by_key(|known| edit_distance(&level.to_ascii_lowercase(), known))
                .filter(|known| edit_distance(&level.to_ascii_lowercase(), known) <= 2);
            let hint = match closest {
                Some(known) => format!("did you mean `{known}`? ({HINT})"),
                None => HINT.to_string(),
            };
            return Err(Invalid::new(format!("`{level}` is not a log level"), hint));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert!(check_level("info").is_ok());
        assert!(check_level("WARN,portcullis=debug").is_ok());
        let e = check_level("portcullis[conn{id=1}]=trace").unwrap_err();
        assert!(e.message.contains("span and field filters"), "{}", e.message);
        // What the check accepts is what the runtime filter reads.
        for ok in [
            "info",
            "WARN,portcullis=debug",
            "off",
            "error, portcullis::access=off",
        ] {
            assert!(check_level(ok).is_ok(), "{ok}");
            assert!(ok.parse::<tracing_subscriber::filter::Targets>().is_ok(), "{ok}");
        }
        let e = check_level("infoo").unwrap_err();
        assert!(e.hint.contains("did you mean `info`?"), "{}", e.hint);
        assert!(check_level("portcullis").is_err());
    }
}
