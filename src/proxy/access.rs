//! The access log: one line per request, written when its response body has
//! been sent (or the client went away), with the bytes actually sent.
//!
//! Two formats, chosen once for the process by [`set_format`] (which
//! `telemetry::init_with` calls from `[log] format`):
//! - text (the default), like nginx's combined format:
//!   `127.0.0.1 "GET /api?x=1" 200 512 1.234ms upstream=http://127.0.0.1:8080 request_id=5f0c...`;
//! - JSON, one object per line:
//!   `{"time":"2025-01-01T12:00:00.000Z","client":"127.0.0.1","method":"GET","target":"/api?x=1","status":200,"bytes":512,"duration_ms":1.234,"upstream":"http://127.0.0.1:8080","request_id":"5f0c..."}`,
//!   with `upstream` null when the request reached none.
//!
//! Both go to the `portcullis::access` tracing target. Neither allocates:
//! the line is formatted straight into the subscriber's buffer, and only
//! when the target is enabled.

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::Method;

use crate::config::LogFormat;
use crate::telemetry::write_json_string;

/// The tracing target of access lines.
pub const TARGET: &str = "portcullis::access";

/// Whether access lines are JSON; text otherwise. One relaxed load per
/// request.
static JSON: AtomicBool = AtomicBool::new(false);

/// Sets the format of every access line written from now on.
pub fn set_format(format: LogFormat) {
    JSON.store(format == LogFormat::Json, Ordering::Relaxed);
}

/// The format access lines are written in.
pub fn format() -> LogFormat {
    if JSON.load(Ordering::Relaxed) {
        LogFormat::Json
    } else {
        LogFormat::Text
    }
}

/// What the access line needs, gathered while the request is handled and
/// written once on drop, so every exit path logs exactly one line.
#[derive(Debug)]
pub struct AccessRecord {
    pub client: IpAddr,
    pub method: Method,
    pub target: String,
    pub status: u16,
    pub bytes: u64,
    pub upstream: Option<Arc<str>>,
    pub start: Instant,
    /// The request's `X-Request-Id`.
    pub request_id: Option<http::HeaderValue>,
    /// For nginx-shaped lines (`super::access_line`), when they are on.
    pub details: Option<Box<super::access_line::Details>>,
}

impl Drop for AccessRecord {
    fn drop(&mut self) {
        let duration_ms = self.start.elapsed().as_secs_f64() * 1000.0;
        if let Some(details) = &self.details {
            tracing::info!(
                target: TARGET,
                "{}",
                super::access_line::Line {
                    record: self,
                    details,
                    duration_secs: duration_ms / 1000.0,
                }
            );
        } else if JSON.load(Ordering::Relaxed) {
            tracing::info!(
                target: TARGET,
                "{}",
                JsonLine {
                    record: self,
                    duration_ms
                }
            );
        } else {
            tracing::info!(
                target: TARGET,
                "{} \"{} {}\" {} {} {:.3}ms upstream={} request_id={}",
                self.client,
                self.method,
                self.target,
                self.status,
                self.bytes,
                duration_ms,
                self.upstream.as_deref().unwrap_or("-"),
                request_id(self),
            );
        }
    }
}

/// The record's request ID as text; kept IDs are visible ASCII.
fn request_id(record: &AccessRecord) -> &str {
    record
        .request_id
        .as_ref()
        .and_then(|id| id.to_str().ok())
        .unwrap_or("-")
}

/// A record as one JSON object, formatted when (and only if) the event is
/// written. The time is when the line is written, as nginx's `$time_iso8601`.
struct JsonLine<'a> {
    record: &'a AccessRecord,
    duration_ms: f64,
}

impl fmt::Display for JsonLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.record;
        write!(
            f,
            "{{\"time\":\"{}\",\"client\":\"{}\",\"method\":",
            humantime::format_rfc3339_millis(SystemTime::now()),
            r.client
        )?;
        write_json_string(f, r.method.as_str())?;
        f.write_str(",\"target\":")?;
        write_json_string(f, &r.target)?;
        write!(
            f,
            ",\"status\":{},\"bytes\":{},\"duration_ms\":{:.3},\"upstream\":",
            r.status, r.bytes, self.duration_ms
        )?;
        match &r.upstream {
            Some(upstream) => write_json_string(f, upstream)?,
            None => f.write_str("null")?,
        }
        f.write_str(",\"request_id\":")?;
        write_json_string(f, request_id(r))?;
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_escapes_the_target_and_writes_null_without_upstream() {
        let record = AccessRecord {
            client: "::1".parse().unwrap(),
            method: Method::from_bytes(b"PURGE").unwrap(),
            target: "/a\"b\\c\u{1}".to_string(),
            status: 404,
            bytes: 7,
            upstream: None,
            start: Instant::now(),
            request_id: None,
            details: None,
        };
        let line = JsonLine {
            record: &record,
            duration_ms: 1.5,
        }
        .to_string();
        let rest = line.split_once("\",\"client\"").unwrap().1;
        assert_eq!(
            rest,
            r#":"::1","method":"PURGE","target":"/a\"b\\c\u0001","status":404,"bytes":7,"duration_ms":1.500,"upstream":null,"request_id":"-"}"#
        );
        assert!(line.starts_with("{\"time\":\""), "{line}");
    }
}
