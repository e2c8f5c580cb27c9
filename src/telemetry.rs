//! Logging: tracing events on stderr. `RUST_LOG` wins over the configured
//! level, as operators expect from Rust services. The access log is the
//! `portcullis::access` target, so it can be filtered like any other.
//!
//! `[log] format` chooses the shape of every line:
//! - `"text"`: tracing's usual lines (time, level, message), the access
//!   lines nginx-like (see `proxy::access`);
//! - `"json"`: one JSON object per line, for log collectors. Access lines
//!   are the access record itself (`time`, `client`, `method`, `target`,
//!   `status`, `bytes`, `duration_ms`, `upstream`); every other event is
//!   `{"time", "level", "module", "message", ...its other fields}`.
//!
//! Warnings and errors that repeat are rate-limited in either format (see
//! [`crate::log_limit`]): the first is written, then one summary line per
//! interval with the count of those left out.

use std::fmt::{self, Write as _};
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogConfig, LogFormat};
use crate::log_limit::{self, WarnLimit};
use crate::proxy::access;

/// Installs the global subscriber for `log`'s level and format, and sets
/// the access-line format to match. Safe to call more than once: the first
/// call that installs a subscriber wins, later calls do nothing.
pub fn init_with(log: &LogConfig) {
    // nginx-shaped access lines are written bare, the rest as text.
    let bare = log.format == LogFormat::Combined || log.access_template.is_some();
    if bare && log.format != LogFormat::Json {
        if install_bare(&log.level) {
            crate::proxy::access_line::configure(log);
        }
        return;
    }
    if log.access_template.is_some() {
        crate::proxy::access_line::configure(log);
    }
    install(&log.level, log.format);
}

/// [`init_with`] for a level alone, in the text format.
pub fn init(level: &str) {
    install(level, LogFormat::Text);
}

fn install(level: &str, format: LogFormat) {
    let filter = filter(level);
    let builder = tracing_subscriber::fmt().with_writer(std::io::stderr);
    let limit = WarnLimit::new(log_limit::INTERVAL);
    let installed = match format {
        LogFormat::Text | LogFormat::Combined => builder
            // Colour codes only for a person at a terminal, never in log files.
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_target(false)
            .finish()
            .with(filter)
            .with(limit.clone())
            .try_init(),
        LogFormat::Json => builder
            .with_ansi(false)
            .event_format(JsonLines)
            .finish()
            .with(filter)
            .with(limit.clone())
            .try_init(),
    };
    if installed.is_ok() {
        limit.start_summaries();
        // The access lines follow the subscriber that writes them.
        access::set_format(format);
    }
}

/// What is logged: `RUST_LOG` when it is set and reads as a filter, else
/// the configured `level` (which the configuration checked), else info.
/// Directives are `level` or `target=level`, comma-separated.
fn filter(level: &str) -> Targets {
    std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .or_else(|| level.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO))
}

/// Installs the text subscriber with access lines written bare (see
/// `proxy::access_line`); whether it was installed.
fn install_bare(level: &str) -> bool {
    let filter = filter(level);
    let limit = WarnLimit::new(log_limit::INTERVAL);
    let text = tracing_subscriber::fmt::format()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let installed = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .event_format(crate::proxy::access_line::BareAccess(text))
        .finish()
        .with(filter)
        .with(limit.clone())
        .try_init()
        .is_ok();
    if installed {
        limit.start_summaries();
        access::set_format(LogFormat::Text);
    }
    installed
}

/// Writes each event as one JSON object per line.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        if meta.target() == access::TARGET {
            // The access record formats itself as a whole JSON object.
            let mut message = MessageOnly {
                out: &mut writer,
                result: Ok(()),
            };
            event.record(&mut message);
            message.result?;
        } else {
            write!(
                writer,
                "{{\"time\":\"{}\",\"level\":\"{}\",\"module\":",
                humantime::format_rfc3339_millis(SystemTime::now()),
                meta.level()
            )?;
            write_json_string(&mut writer, meta.target())?;
            let mut fields = JsonFields {
                out: &mut writer,
                result: Ok(()),
            };
            event.record(&mut fields);
            fields.result?;
            writer.write_char('}')?;
        }
        writer.write_char('\n')
    }
}

/// Writes the `message` field as it is.
pub(crate) struct MessageOnly<'a, 'w> {
    pub(crate) out: &'a mut Writer<'w>,
    pub(crate) result: fmt::Result,
}

impl Visit for MessageOnly<'_, '_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" && self.result.is_ok() {
            self.result = write!(self.out, "{value:?}");
        }
    }
}

/// Writes each field as `,"name":value`.
struct JsonFields<'a, 'w> {
    out: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl JsonFields<'_, '_> {
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = (|| {
                self.out.write_char(',')?;
                write_json_string(self.out, field.name())?;
                self.out.write_char(':')?;
                value(self.out)
            })();
        }
    }
}

impl Visit for JsonFields<'_, '_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, |out| {
            out.write_char('"')?;
            write!(Escaped(out), "{value:?}")?;
            out.write_char('"')
        });
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, |out| write_json_string(out, value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |out| write!(out, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |out| write!(out, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |out| write!(out, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.field(field, |out| write!(out, "{value}"));
        } else {
            // JSON has no NaN or infinity.
            self.field(field, |out| write!(out, "\"{value}\""));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.field(field, |out| {
            out.write_char('"')?;
            write!(Escaped(out), "{value}")?;
            out.write_char('"')
        });
    }
}

/// Writes `text` as a JSON string, quotes included.
pub(crate) fn write_json_string<W: fmt::Write + ?Sized>(out: &mut W, text: &str) -> fmt::Result {
    out.write_char('"')?;
    escape(out, text)?;
    out.write_char('"')
}

/// A writer that escapes what goes through it for the inside of a JSON
/// string, so that `Debug` and `Display` output needs no buffer.
struct Escaped<'a, W: ?Sized>(&'a mut W);

impl<W: fmt::Write + ?Sized> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        escape(self.0, text)
    }
}

/// `text` escaped as RFC 8259 requires: quotation mark, reverse solidus
/// and control characters; everything else is written as it is.
fn escape<W: fmt::Write + ?Sized>(out: &mut W, text: &str) -> fmt::Result {
    let mut plain = 0;
    for (index, byte) in text.bytes().enumerate() {
        let escaped = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.write_str(&text[plain..index])?;
        if escaped.is_empty() {
            write!(out, "\\u{byte:04x}")?;
        } else {
            out.write_str(escaped)?;
        }
        plain = index + 1;
    }
    out.write_str(&text[plain..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_for_json() {
        let mut out = String::new();
        write_json_string(&mut out, "a\"b\\c\nd\u{7}é\u{2028}").unwrap();
        assert_eq!(out, "\"a\\\"b\\\\c\\nd\\u0007é\u{2028}\"");
        let mut out = String::new();
        write!(Escaped(&mut out), "{:?}", "q").unwrap();
        assert_eq!(out, "\\\"q\\\"");
    }
}
