//! What the checks of every table share: the [`Checker`] that walks the
//! document and collects errors at their positions, the [`Table`] being
//! checked, the typed readers (string, integer, count, boolean, duration,
//! size, file path), unknown keys with their did-you-mean, and the report
//! of TOML syntax errors.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::config::duration::{self, Zero};
use crate::config::size;
use crate::config::{CertificateSource, ConfigError, ConfigErrors, Origin};

/// A table being checked, with what is needed to report on its keys.
pub(super) struct Table<'a, 'i> {
    pub(super) entries: &'a DeTable<'i>,
    /// Dotted path of the table, such as `route[2]`; empty for the top level.
    pub(super) path: String,
    /// How the table is written in the file, for messages: `[[route]]`.
    pub(super) header: &'static str,
    /// Where the table was written (its header, or its first key).
    pub(super) span: Range<usize>,
}

impl<'a, 'i> Table<'a, 'i> {
    pub(super) fn get(&self, key: &str) -> Option<&'a Spanned<DeValue<'i>>> {
        self.entries.get(key)
    }

    pub(super) fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{}", self.path, key)
        }
    }
}

/// The keys a table accepts, and names from elsewhere (mostly nginx) that
/// people reach for, mapped to the portcullis name.
pub(super) struct Schema {
    pub(super) keys: &'static [&'static str],
    pub(super) aliases: &'static [(&'static str, &'static str)],
}

/// Walks the document, collecting errors.
pub(super) struct Checker<'t> {
    pub(super) file: String,
    pub(super) text: &'t str,
    /// Where each line of `text` starts: positions are asked for every
    /// certificate and route, and counting lines from the top each time
    /// made a file of 10,000 certificates take seconds to check.
    pub(super) line_starts: Vec<usize>,
    pub(super) base_dir: PathBuf,
    /// Problems with what is written.
    pub(super) errors: Vec<ConfigError>,
    /// Problems with what is not written (a missing route, a certificate
    /// without its key). Kept apart because they are only trustworthy
    /// when the whole file parsed: text after a syntax error may be lost.
    pub(super) missing: Vec<ConfigError>,
    /// `PORTCULLIS_LISTEN`'s valid addresses when it is set: they replace
    /// `server.listen`, and are what the other listeners may not take.
    pub(super) env_listen: Option<Vec<SocketAddr>>,
    /// The pair `PORTCULLIS_TLS_CERT` and `PORTCULLIS_TLS_KEY` name, when
    /// both are set and valid: it replaces `[tls] cert` and `key`.
    pub(super) env_pair: Option<CertificateSource>,
    /// Whether either TLS variable is set, valid or not: a certificate is
    /// configured for `bootstrap` to stand in for.
    pub(super) env_certificate: bool,
}

impl Checker<'_> {
    pub(super) fn origin(&self, span: &Range<usize>) -> Origin {
        Origin::at_offset_with(self.file.clone(), self.text, &self.line_starts, span.start)
    }

    pub(super) fn error(
        &mut self,
        span: &Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let error = ConfigError::new(self.origin(span), key, message, hint);
        self.errors.push(error);
    }

    /// Records something required that is not written.
    pub(super) fn missing(
        &mut self,
        span: &Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let error = ConfigError::new(self.origin(span), key, message, hint);
        self.missing.push(error);
    }

    /// Reports every key of `table` that `schema` does not know.
    pub(super) fn check_keys(&mut self, table: &Table<'_, '_>, schema: &Schema) {
        for (key, _) in table.entries.iter() {
            let name: &str = key.get_ref();
            if schema.keys.contains(&name) {
                continue;
            }
            let hint = match suggest(name, schema) {
                Some(Suggestion::Alias(known)) => {
                    format!("portcullis calls this setting `{known}`")
                }
                Some(Suggestion::Close(known)) => format!("did you mean `{known}`?"),
                None => format!("valid keys in {}: {}", table.header, schema.keys.join(", ")),
            };
            self.error(
                &key.span(),
                table.key_path(name),
                format!("unknown key `{name}` in {}", table.header),
                hint,
            );
        }
    }

    /// The sub-table `key` of `parent`, if present and a table.
    pub(super) fn table<'a, 'i>(
        &mut self,
        parent: &Table<'a, 'i>,
        key: &str,
        header: &'static str,
    ) -> Option<Table<'a, 'i>> {
        let value = parent.get(key)?;
        match value.get_ref() {
            DeValue::Table(entries) => Some(Table {
                entries,
                path: parent.key_path(key),
                header,
                span: value.span(),
            }),
            other => {
                self.error(
                    &value.span(),
                    parent.key_path(key),
                    format!("expected a table, found {}", describe(other)),
                    format!("write {header} on a line of its own, followed by its settings"),
                );
                None
            }
        }
    }

    /// The tables of the array of tables `key` of `parent`; `None` when absent.
    pub(super) fn array_of_tables<'a, 'i>(
        &mut self,
        parent: &Table<'a, 'i>,
        key: &str,
        header: &'static str,
    ) -> Option<Vec<Table<'a, 'i>>> {
        let value = parent.get(key)?;
        let path = parent.key_path(key);
        let items = match value.get_ref() {
            DeValue::Array(items) => items,
            DeValue::Table(_) => {
                self.error(
                    &value.span(),
                    path.clone(),
                    format!("`[{path}]` declares a single table, but {header} is a list of tables"),
                    format!("write {header} with double brackets before each entry"),
                );
                return Some(Vec::new());
            }
            other => {
                self.error(
                    &value.span(),
                    path,
                    format!("expected a list of tables, found {}", describe(other)),
                    format!("write a {header} header followed by the entry's settings"),
                );
                return Some(Vec::new());
            }
        };
        let mut tables = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{index}]");
            match item.get_ref() {
                DeValue::Table(entries) => tables.push(Table {
                    entries,
                    path: item_path,
                    header,
                    span: item.span(),
                }),
                other => self.error(
                    &item.span(),
                    item_path,
                    format!("expected a table, found {}", describe(other)),
                    format!("write a {header} header followed by the entry's settings"),
                ),
            }
        }
        Some(tables)
    }

    /// The items of the list at `key`; `None` when it is absent or not a
    /// list, which is reported as `what` with `example`. A lone string, the
    /// usual slip, is shown back in brackets.
    pub(super) fn list<'a, 'i>(
        &mut self,
        table: &Table<'a, 'i>,
        key: &str,
        what: &str,
        example: &str,
    ) -> Option<&'a [Spanned<DeValue<'i>>]> {
        let value = table.get(key)?;
        match value.get_ref() {
            DeValue::Array(items) => Some(items),
            DeValue::String(text) => {
                let hint = format!("put it in brackets: {key} = [\"{text}\"]");
                self.type_error(value, table.key_path(key), what, hint);
                None
            }
            _ => {
                let hint = format!("for example: {example}");
                self.type_error(value, table.key_path(key), what, hint);
                None
            }
        }
    }

    pub(super) fn type_error(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        key_path: String,
        expected: &str,
        hint: String,
    ) {
        self.error(
            &value.span(),
            key_path,
            format!("expected {expected}, found {}", describe(value.get_ref())),
            hint,
        );
    }

    /// The string at `key`, if present and a string. `example` is a TOML
    /// value shown when the type is wrong.
    pub(super) fn string<'a>(
        &mut self,
        table: &Table<'a, '_>,
        key: &str,
        example: &str,
    ) -> Option<(&'a str, Range<usize>)> {
        let value = table.get(key)?;
        match value.get_ref() {
            DeValue::String(text) => Some((text.as_ref(), value.span())),
            _ => {
                self.type_error(
                    value,
                    table.key_path(key),
                    "a string",
                    format!("write it in double quotes, for example: {key} = {example}"),
                );
                None
            }
        }
    }

    /// The integer at `key`, with where it was written; `None` when absent
    /// or not an integer (an error is recorded then).
    pub(super) fn integer(
        &mut self,
        table: &Table<'_, '_>,
        key: &str,
        example: &str,
    ) -> Option<(i128, Range<usize>)> {
        let value = table.get(key)?;
        match value.get_ref() {
            DeValue::Integer(number) => match i128::from_str_radix(number.as_str(), number.radix()) {
                Ok(n) => Some((n, value.span())),
                Err(_) => {
                    self.error(
                        &value.span(),
                        table.key_path(key),
                        format!("{number} is too large"),
                        format!("for example: {key} = {example}"),
                    );
                    None
                }
            },
            DeValue::String(text) if text.trim().parse::<i128>().is_ok() => {
                self.type_error(
                    value,
                    table.key_path(key),
                    "an integer",
                    format!("remove the quotes: {key} = {}", text.trim()),
                );
                None
            }
            _ => {
                self.type_error(
                    value,
                    table.key_path(key),
                    "an integer",
                    format!("for example: {key} = {example}"),
                );
                None
            }
        }
    }

    /// A positive integer no larger than `usize::MAX`.
    pub(super) fn count(&mut self, table: &Table<'_, '_>, key: &str, example: &str) -> Option<usize> {
        let (n, span) = self.integer(table, key, example)?;
        if n < 1 {
            self.error(
                &span,
                table.key_path(key),
                format!("{n} is not allowed; the value must be at least 1"),
                format!("for example: {key} = {example}"),
            );
            return None;
        }
        match usize::try_from(n) {
            Ok(n) => Some(n),
            Err(_) => {
                self.error(
                    &span,
                    table.key_path(key),
                    format!("{n} is too large"),
                    format!("for example: {key} = {example}"),
                );
                None
            }
        }
    }

    pub(super) fn boolean(&mut self, table: &Table<'_, '_>, key: &str, default: bool) -> bool {
        let Some(value) = table.get(key) else {
            return default;
        };
        match value.get_ref() {
            DeValue::Boolean(b) => *b,
            other => {
                let hint = match other {
                    DeValue::String(text) if matches!(text.as_ref(), "true" | "false") => {
                        format!("remove the quotes: {key} = {text}")
                    }
                    _ => format!("write {key} = true or {key} = false"),
                };
                self.type_error(value, table.key_path(key), "true or false", hint);
                default
            }
        }
    }

    /// The duration at `key`, or `default` when absent (or invalid, in
    /// which case an error is recorded and the default never used).
    pub(super) fn duration(
        &mut self,
        table: &Table<'_, '_>,
        key: &str,
        default: Duration,
        zero: Zero,
    ) -> Duration {
        let Some(value) = table.get(key) else {
            return default;
        };
        let example = duration_example(default);
        match value.get_ref() {
            DeValue::String(text) => match duration::parse(text, zero) {
                Ok(d) => d,
                Err(invalid) => {
                    self.error(&value.span(), table.key_path(key), invalid.message, invalid.hint);
                    default
                }
            },
            DeValue::Integer(number) => {
                self.type_error(
                    value,
                    table.key_path(key),
                    "a duration string",
                    format!(
                        "give the unit and quote it, for example: {key} = \"{number}s\" for {number} seconds"
                    ),
                );
                default
            }
            _ => {
                self.type_error(
                    value,
                    table.key_path(key),
                    "a duration string",
                    format!("for example: {key} = \"{example}\""),
                );
                default
            }
        }
    }

    /// The size at `key` in bytes, with where it was written; `None` when
    /// absent or invalid (an error is recorded then). `example` is a size
    /// as it would be written, such as `"64KiB"`.
    pub(super) fn size(
        &mut self,
        table: &Table<'_, '_>,
        key: &str,
        example: &str,
    ) -> Option<(u64, Range<usize>)> {
        let value = table.get(key)?;
        match value.get_ref() {
            DeValue::String(text) => match size::parse(text) {
                Ok(bytes) => Some((bytes, value.span())),
                Err(invalid) => {
                    self.error(&value.span(), table.key_path(key), invalid.message, invalid.hint);
                    None
                }
            },
            DeValue::Integer(number) => match u64::from_str_radix(number.as_str(), number.radix()) {
                Ok(bytes) => Some((bytes, value.span())),
                Err(_) if number.as_str().starts_with('-') => {
                    self.error(
                        &value.span(),
                        table.key_path(key),
                        format!("{number} is negative; a size cannot be"),
                        format!("for example: {key} = \"{example}\""),
                    );
                    None
                }
                Err(_) => {
                    self.error(
                        &value.span(),
                        table.key_path(key),
                        format!("{number} is too large"),
                        format!("for example: {key} = \"{example}\""),
                    );
                    None
                }
            },
            _ => {
                self.type_error(
                    value,
                    table.key_path(key),
                    "a size",
                    format!(
                        "write a number of bytes or a size with a unit, for example: {key} = \"{example}\""
                    ),
                );
                None
            }
        }
    }

    /// A file or directory path, resolved against the configuration
    /// file's directory; `None` when absent or invalid. `example` is a TOML
    /// value, `full_example` a path to show instead of one with `~`.
    pub(super) fn file_path(
        &mut self,
        table: &Table<'_, '_>,
        key: &str,
        example: &str,
        full_example: &str,
    ) -> Option<(PathBuf, Range<usize>)> {
        let (text, span) = self.string(table, key, example)?;
        if text.trim().is_empty() {
            self.error(
                &span,
                table.key_path(key),
                "the path is empty",
                format!("for example: {key} = {example}"),
            );
            return None;
        }
        if text.starts_with('~') {
            self.error(
                &span,
                table.key_path(key),
                format!("`{text}` starts with `~`, which is not expanded"),
                format!("write the full path, such as {full_example}"),
            );
            return None;
        }
        Some((self.base_dir.join(text), span))
    }
}

/// A default duration as an operator would write it: "24h", "75s".
fn duration_example(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if seconds >= 3600 && seconds % 3600 == 0 {
        format!("{}h", seconds / 3600)
    } else {
        format!("{seconds}s")
    }
}

/// "a string", "an integer"...: the type of a value, for messages.
fn describe(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "a list",
        DeValue::Table(_) => "a table",
    }
}

/// The syntax errors of a file, and how far the recovered document can be
/// trusted.
pub(super) struct SyntaxReport {
    errors: Vec<ConfigError>,
    /// From here on the recovered document is unreliable: a broken table
    /// header or an unclosed bracket puts what follows in the wrong place.
    cutoff: Option<(usize, usize)>,
}

impl SyntaxReport {
    /// Keeps at most one error per line: the parser recovers and goes on,
    /// and the later errors on a line are usually consequences of the first.
    pub(super) fn new(errors: &[toml::de::Error], file: &str, text: &str) -> Self {
        let mut report: Vec<ConfigError> = Vec::new();
        let mut cutoff = None;
        for error in errors {
            let offset = error.span().map_or(0, |span| span.start);
            let origin = Origin::at_offset(file, text, offset);
            let message = error.message().trim();
            let line = text.lines().nth(origin.line.saturating_sub(1)).unwrap_or("");
            let on_header = line.trim_start().starts_with('[');
            if on_header || message.starts_with("unclosed") {
                let position = (origin.line, origin.column);
                cutoff = Some(cutoff.map_or(position, |c: (usize, usize)| c.min(position)));
            }
            if report.iter().any(|e| e.origin.line == origin.line) {
                continue;
            }
            let hint = syntax_hint(message, on_header);
            report.push(ConfigError::new(
                origin,
                "",
                format!("TOML syntax: {message}"),
                hint,
            ));
        }
        SyntaxReport {
            errors: report,
            cutoff,
        }
    }

    /// The syntax errors, and those of `checks` that a syntax error cannot
    /// have caused. Checks for missing settings are never passed here: the
    /// text that set them may be what the parser could not read.
    pub(super) fn with_trustworthy(self, checks: Vec<ConfigError>) -> ConfigErrors {
        let broken_lines: Vec<usize> = self.errors.iter().map(|e| e.origin.line).collect();
        let mut kept = self.errors;
        for check in checks {
            let position = (check.origin.line, check.origin.column);
            let after_cutoff = self.cutoff.is_some_and(|cutoff| position >= cutoff);
            if !after_cutoff && !broken_lines.contains(&check.origin.line) {
                kept.push(check);
            }
        }
        ConfigErrors(kept)
    }
}

/// What to do about a TOML syntax error; the parser's message already
/// says what it expected, this says what people usually meant.
fn syntax_hint(message: &str, on_header: bool) -> String {
    let hint = if message.starts_with("missing comma between array elements")
        || (message.starts_with("unclosed array") && !message.starts_with("unclosed array table"))
    {
        "separate list items with commas and close the list with `]`; if the next line is a setting or a header, the list above it is missing its `]`"
    } else if on_header {
        "a table header is a name in brackets on a line of its own: [server], [tls], [http], [admin], [log], or [[route]] and [[tls.certificate]] for each entry of a list"
    } else if message.starts_with("string values must be quoted") {
        "put text in double quotes, for example: upstream = \"http://127.0.0.1:8080\""
    } else if message.contains("string") {
        "close the string with a `\"` on the same line; write a `\"` inside a string as \\\""
    } else if message.starts_with("duplicate key") {
        "each key may appear only once in a table, and each [table] only once in the file; remove or merge the repeated one"
    } else if message.contains("key with no value") || message.contains("missing assignment") {
        "write settings as key = value, one per line"
    } else if message.contains("inline table") {
        "an inline table is { key = \"value\", other = 1 } on a single line"
    } else {
        "settings are written key = value, one per line, with text in double quotes; # starts a comment"
    };
    hint.to_string()
}

enum Suggestion {
    /// A name from another program (mostly nginx) for a key that exists.
    Alias(&'static str),
    /// A known key that is spelled nearly the same.
    Close(&'static str),
}

fn suggest(unknown: &str, schema: &Schema) -> Option<Suggestion> {
    let lower = unknown.to_ascii_lowercase().replace('-', "_");
    if let Some((_, known)) = schema.aliases.iter().find(|(alias, _)| *alias == lower) {
        return Some(Suggestion::Alias(known));
    }
    let best = schema
        .keys
        .iter()
        .map(|known| (edit_distance(&lower, known), *known))
        .min_by_key(|(distance, _)| *distance)?;
    let (distance, known) = best;
    // Close enough when at most a third of the characters differ: catches
    // typos and separators without proposing unrelated keys.
    if distance * 3 <= lower.chars().count().max(known.len()) {
        return Some(Suggestion::Close(known));
    }
    // A truncated or extended name, such as `handshake` or `max_conn`.
    let prefix = schema
        .keys
        .iter()
        .find(|known| lower.len() >= 4 && (known.starts_with(&lower) || lower.starts_with(*known)));
    prefix.map(|known| Suggestion::Close(known))
}

/// Levenshtein distance, in characters.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse::route::ROUTE_SCHEMA;

    #[test]
    fn suggestions() {
        let close = |name: &str| match suggest(name, &ROUTE_SCHEMA) {
            Some(Suggestion::Close(k)) | Some(Suggestion::Alias(k)) => Some(k),
            None => None,
        };
        assert_eq!(close("upsteam"), Some("upstream"));
        assert_eq!(close("Path"), Some("path"));
        assert_eq!(close("connect-timeout"), Some("connect_timeout"));
        assert_eq!(close("proxy_pass"), Some("upstream"));
        assert_eq!(close("tunnel_idle"), Some("tunnel_idle_timeout"));
        assert_eq!(close("banana"), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
