//! One access-log line per stream, written when it closes, on the
//! `portcullis::access` target and in the format of `[log] format`:
//!
//! - text: `127.0.0.1:50312 "STREAM nats" sni=nats.example.com upstream=tcp://nats:4222 to_upstream=812 to_client=9120 1523.412ms end=closed`;
//! - JSON: `{"time":"...","client":"127.0.0.1:50312","stream":"nats","sni":"nats.example.com","upstream":"tcp://nats:4222","to_upstream":812,"to_client":9120,"duration_ms":1523.412,"end":"closed"}`.
//!
//! A stream is logged once its upstream is chosen; connections refused
//! before that (garbage, failed handshakes, unknown names) are counted and
//! logged apart. The record writes itself on drop, so a stream cut by the
//! shutdown is logged too.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::counted::Forwarded;
use crate::config::LogFormat;
use crate::proxy::access::{format, TARGET};
use crate::telemetry::write_json_string;

/// How a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// Both sides closed.
    Closed,
    /// No byte either way for `idle_timeout`.
    Idle,
    /// The proxy shut down.
    Shutdown,
    /// A socket failed (a reset, most often).
    Error,
    /// The upstream could not be reached.
    Unreachable,
    /// The adapter's exchange before the join failed.
    Protocol,
    /// The TLS handshake after the adapter's first exchange failed.
    Handshake,
}

impl End {
    fn as_str(self) -> &'static str {
        match self {
            End::Closed => "closed",
            End::Idle => "idle",
            End::Shutdown => "shutdown",
            End::Error => "error",
            End::Unreachable => "upstream_unreachable",
            End::Protocol => "protocol_error",
            End::Handshake => "handshake_failed",
        }
    }
}

/// What the line says, gathered while the stream runs.
pub(crate) struct Record {
    pub(crate) client: SocketAddr,
    pub(crate) stream: Arc<str>,
    pub(crate) sni: Option<String>,
    pub(crate) upstream: String,
    pub(crate) start: Instant,
    pub(crate) forwarded: Arc<Forwarded>,
    /// `None` until the stream ends: dropped then, it was cut by the
    /// shutdown.
    pub(crate) end: Option<End>,
    /// `[log] access_log`.
    pub(crate) enabled: bool,
}

impl Drop for Record {
    fn drop(&mut self) {
        if !self.enabled {
            return;
        }
        let line = Line {
            record: self,
            duration_ms: self.start.elapsed().as_secs_f64() * 1000.0,
            json: format() == LogFormat::Json,
        };
        tracing::info!(target: TARGET, "{line}");
    }
}

struct Line<'a> {
    record: &'a Record,
    duration_ms: f64,
    json: bool,
}

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.record;
        let to_upstream = r.forwarded.to_upstream.load(Ordering::Relaxed);
        let to_client = r.forwarded.to_client.load(Ordering::Relaxed);
        let end = r.end.unwrap_or(End::Shutdown).as_str();
        if !self.json {
            return write!(
                f,
                "{} \"STREAM {}\" sni={} upstream={} to_upstream={to_upstream} to_client={to_client} {:.3}ms end={end}",
                r.client,
                r.stream,
                r.sni.as_deref().unwrap_or("-"),
                r.upstream,
                self.duration_ms
            );
        }
        write!(
            f,
            "{{\"time\":\"{}\",\"client\":\"{}\",\"stream\":",
            humantime::format_rfc3339_millis(SystemTime::now()),
            r.client
        )?;
        write_json_string(f, &r.stream)?;
        f.write_str(",\"sni\":")?;
        match &r.sni {
            Some(sni) => write_json_string(f, sni)?,
            None => f.write_str("null")?,
        }
        f.write_str(",\"upstream\":")?;
        write_json_string(f, &r.upstream)?;
        write!(
            f,
            ",\"to_upstream\":{to_upstream},\"to_client\":{to_client},\"duration_ms\":{:.3},\"end\":\"{end}\"}}",
            self.duration_ms
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formats() {
        let forwarded = Arc::new(Forwarded::default());
        forwarded.to_upstream.store(5, Ordering::Relaxed);
        forwarded.to_client.store(7, Ordering::Relaxed);
        let record = Record {
            client: "127.0.0.1:5000".parse().unwrap(),
            stream: Arc::from("nats"),
            sni: None,
            upstream: "tcp://nats:4222".to_string(),
            start: Instant::now(),
            forwarded,
            end: Some(End::Idle),
            enabled: false,
        };
        let text = Line {
            record: &record,
            duration_ms: 1.5,
            json: false,
        }
        .to_string();
        assert_eq!(
            text,
            "127.0.0.1:5000 \"STREAM nats\" sni=- upstream=tcp://nats:4222 to_upstream=5 to_client=7 1.500ms end=idle"
        );
        let json = Line {
            record: &record,
            duration_ms: 1.5,
            json: true,
        }
        .to_string();
        let rest = json.split_once("\",\"client\"").unwrap().1;
        assert_eq!(
            rest,
            r#":"127.0.0.1:5000","stream":"nats","sni":null,"upstream":"tcp://nats:4222","to_upstream":5,"to_client":7,"duration_ms":1.500,"end":"idle"}"#
        );
    }
}
