//! Access lines in nginx's shapes: `[log] format = "combined"` (nginx's
//! `combined` log format, byte for byte) and `[log] access_template`
//! (placeholders, like `log_format`). Either is written bare, with no
//! prefix of the log subscriber's, so fail2ban, GoAccess and other
//! readers of nginx logs take the lines as nginx's.
//!
//! Strings are escaped as nginx's default `escape=default` does: `"`, `\`
//! and bytes below 0x20 or from 0x7f up become `\xHH`. Times are UTC.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::SystemTime;

use base64::Engine as _;
use http::{header, HeaderMap, HeaderValue, Version};

use super::access::AccessRecord;
use crate::config::{AccessTemplate, LogConfig, LogField, LogFormat, Piece};

static COMBINED: AtomicBool = AtomicBool::new(false);
static TEMPLATE: OnceLock<AccessTemplate> = OnceLock::new();

/// Sets the shape of access lines from `[log]`, once for the process.
pub(crate) fn configure(log: &LogConfig) {
    COMBINED.store(log.format == LogFormat::Combined, Ordering::Relaxed);
    if let Some(template) = &log.access_template {
        let _ = TEMPLATE.set(template.clone());
    }
}

/// Whether access lines are written here (and need [`Details`]).
pub(crate) fn active() -> bool {
    COMBINED.load(Ordering::Relaxed) || TEMPLATE.get().is_some()
}

/// An event formatter that writes access lines as their message alone
/// and every other event as `F` does.
pub(crate) struct BareAccess<F>(pub F);

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for BareAccess<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        if event.metadata().target() != super::access::TARGET {
            return self.0.format_event(ctx, writer, event);
        }
        let mut message = crate::telemetry::MessageOnly {
            out: &mut writer,
            result: Ok(()),
        };
        event.record(&mut message);
        message.result?;
        writer.write_char('\n')
    }
}

/// What these lines need beyond the plain access record, taken from the
/// request head as it came.
#[derive(Debug)]
pub struct Details {
    version: Version,
    host: Option<HeaderValue>,
    referer: Option<HeaderValue>,
    user_agent: Option<HeaderValue>,
    authorization: Option<HeaderValue>,
    client_port: u16,
    scheme: &'static str,
}

impl Details {
    pub(crate) fn new<B>(req: &http::Request<B>, client_port: u16, tls: bool) -> Box<Details> {
        let h: &HeaderMap = req.headers();
        Box::new(Details {
            version: req.version(),
            host: match req.uri().authority() {
                Some(a) => HeaderValue::from_str(a.as_str()).ok(),
                None => h.get(header::HOST).cloned(),
            },
            referer: h.get(header::REFERER).cloned(),
            user_agent: h.get(header::USER_AGENT).cloned(),
            authorization: h.get(header::AUTHORIZATION).cloned(),
            client_port,
            scheme: if tls { "https" } else { "http" },
        })
    }
}

/// The line of `record`, formatted when written.
pub(crate) struct Line<'a> {
    pub record: &'a AccessRecord,
    pub details: &'a Details,
    pub duration_secs: f64,
}

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match TEMPLATE.get() {
            Some(template) => {
                for piece in &template.pieces {
                    match piece {
                        Piece::Text(text) => f.write_str(text)?,
                        Piece::Field(field) => self.field(f, *field)?,
                    }
                }
                Ok(())
            }
            None => self.combined(f),
        }
    }
}

impl Line<'_> {
    /// `$remote_addr - $remote_user [$time_local] "$request" $status
    /// $body_bytes_sent "$http_referer" "$http_user_agent"`.
    fn combined(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use LogField::*;
        self.field(f, ClientIp)?;
        f.write_str(" - ")?;
        self.field(f, RemoteUser)?;
        f.write_str(" [")?;
        self.field(f, TimeLocal)?;
        f.write_str("] \"")?;
        self.field(f, Request)?;
        f.write_str("\" ")?;
        self.field(f, Status)?;
        f.write_char(' ')?;
        self.field(f, BytesSent)?;
        f.write_str(" \"")?;
        self.field(f, Referer)?;
        f.write_str("\" \"")?;
        self.field(f, UserAgent)?;
        f.write_char('"')
    }

    fn field(&self, f: &mut fmt::Formatter<'_>, field: LogField) -> fmt::Result {
        let (r, d) = (self.record, self.details);
        match field {
            LogField::ClientIp => write!(f, "{}", r.client),
            LogField::ClientPort => write!(f, "{}", d.client_port),
            LogField::Scheme => f.write_str(d.scheme),
            LogField::Host => header_or_dash(f, d.host.as_ref()),
            LogField::RequestId => header_or_dash(f, r.request_id.as_ref()),
            LogField::Path => escape(f, r.target.split('?').next().unwrap_or("").as_bytes()),
            LogField::Query => escape(f, r.target.split_once('?').map_or("", |(_, q)| q).as_bytes()),
            LogField::Method => escape(f, r.method.as_str().as_bytes()),
            LogField::Protocol => f.write_str(protocol(d.version)),
            LogField::Request => {
                escape(f, r.method.as_str().as_bytes())?;
                f.write_char(' ')?;
                escape(f, r.target.as_bytes())?;
                f.write_char(' ')?;
                f.write_str(protocol(d.version))
            }
            LogField::Status => write!(f, "{}", r.status),
            LogField::BytesSent => write!(f, "{}", r.bytes),
            LogField::Duration => write!(f, "{:.3}", self.duration_secs),
            LogField::Upstream => f.write_str(r.upstream.as_deref().unwrap_or("-")),
            LogField::UserAgent => header_or_dash(f, d.user_agent.as_ref()),
            LogField::Referer => header_or_dash(f, d.referer.as_ref()),
            LogField::RemoteUser => match d.authorization.as_ref().and_then(basic_user) {
                Some(user) => escape(f, &user),
                None => f.write_char('-'),
            },
            LogField::TimeLocal => f.write_str(&time_local(SystemTime::now())),
            LogField::TimeIso8601 => {
                write!(f, "{}", humantime::format_rfc3339_seconds(SystemTime::now()))
            }
        }
    }
}

fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

fn header_or_dash(f: &mut fmt::Formatter<'_>, value: Option<&HeaderValue>) -> fmt::Result {
    match value {
        Some(v) => escape(f, v.as_bytes()),
        None => f.write_char('-'),
    }
}

/// The user of `Authorization: Basic`, as nginx's `$remote_user` reads it
/// whether or not anything checks it.
fn basic_user(value: &HeaderValue) -> Option<Vec<u8>> {
    let v = value.as_bytes();
    let scheme = v.get(..6)?;
    if !scheme.eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let encoded = v[6..].trim_ascii();
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    let user = decoded.split(|&b| b == b':').next()?;
    Some(user.to_vec())
}

/// nginx's default escaping of logged strings.
fn escape(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            f.write_str(&String::from_utf8_lossy(&bytes[start..i]))?;
            f.write_str("\\x")?;
            f.write_char(char::from(HEX[usize::from(b >> 4)]))?;
            f.write_char(char::from(HEX[usize::from(b & 0xf)]))?;
            start = i + 1;
        }
    }
    f.write_str(&String::from_utf8_lossy(&bytes[start..]))
}

/// `07/Dec/2026:15:07:34 +0000`, nginx's `$time_local` in UTC.
fn time_local(now: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // `2026-12-07T15:07:34Z`, always this shape for years 1970 to 9999.
    let iso = humantime::format_rfc3339_seconds(now).to_string();
    let month = iso
        .get(5..7)
        .and_then(|m| m.parse::<usize>().ok())
        .and_then(|m| MONTHS.get(m.wrapping_sub(1)))
        .unwrap_or(&"Jan");
    format!(
        "{}/{}/{}:{} +0000",
        iso.get(8..10).unwrap_or("01"),
        month,
        iso.get(0..4).unwrap_or("1970"),
        iso.get(11..19).unwrap_or("00:00:00")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    struct Escaped<'a>(&'a [u8]);
    impl fmt::Display for Escaped<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            escape(f, self.0)
        }
    }

    #[test]
    fn escapes_as_nginx_does() {
        assert_eq!(
            Escaped(b"a\"b\\c\x01\x7f\xc3\xa9 d").to_string(),
            "a\\x22b\\x5Cc\\x01\\x7F\\xC3\\xA9 d"
        );
    }

    #[test]
    fn time_local_shape() {
        let t = UNIX_EPOCH + Duration::from_secs(1_796_655_454);
        assert_eq!(time_local(t), "07/Dec/2026:14:57:34 +0000");
    }

    #[test]
    fn basic_users() {
        let v = HeaderValue::from_static("Basic YWxpY2U6c2VjcmV0");
        assert_eq!(basic_user(&v).unwrap(), b"alice");
        assert_eq!(basic_user(&HeaderValue::from_static("Bearer x")), None);
        assert_eq!(basic_user(&HeaderValue::from_static("Basic !!!")), None);
    }
}
