//! A file's validators, `ETag` and `Last-Modified`, and the conditional
//! requests that compare against them (RFC 9110 section 13):
//! `If-None-Match` (weak comparison, `*`) or, without it,
//! `If-Modified-Since` make a 304; `If-Range` keeps a range only for the
//! same file (a strong ETag match, or its exact date).
//!
//! The ETag is nginx's: the modification time and the length in hex, so a
//! file served by nginx before keeps its ETag here.

use std::fs::Metadata;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderValue;

/// A file's validators.
#[derive(Debug)]
pub(crate) struct Validators {
    /// `"<mtime hex>-<length hex>"`, quotes included.
    pub etag: String,
    /// The modification time in whole seconds, as HTTP dates carry it.
    modified: Option<SystemTime>,
}

impl Validators {
    pub(crate) fn of(meta: &Metadata) -> Self {
        let seconds = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        Validators {
            etag: format!("\"{:x}-{:x}\"", seconds.unwrap_or(0), meta.len()),
            modified: seconds.map(|s| UNIX_EPOCH + Duration::from_secs(s)),
        }
    }

    /// The `Last-Modified` value, when the file system keeps times.
    pub(crate) fn last_modified(&self) -> Option<String> {
        self.modified.map(httpdate::fmt_http_date)
    }

    /// Whether the client's copy is this file: 304.
    pub(crate) fn not_modified(
        &self,
        if_none_match: Option<&HeaderValue>,
        if_modified_since: Option<&HeaderValue>,
    ) -> bool {
        // If-None-Match wins when both are sent (RFC 9110 section 13.2.2).
        if let Some(tags) = if_none_match {
            let Ok(tags) = tags.to_str() else {
                return false;
            };
            let mine = opaque(&self.etag);
            return tags
                .split(',')
                .map(str::trim)
                .any(|tag| tag == "*" || opaque(tag) == mine);
        }
        match (if_modified_since.and_then(date), self.modified) {
            (Some(since), Some(modified)) => modified <= since,
            _ => false,
        }
    }

    /// Whether `If-Range` (absent: yes) lets a range of this file be sent.
    pub(crate) fn range_allowed(&self, if_range: Option<&HeaderValue>) -> bool {
        let Some(value) = if_range else {
            return true;
        };
        let bytes = value.as_bytes();
        if bytes.starts_with(b"W/") {
            // A weak tag never matches for a range (strong comparison).
            return false;
        }
        if bytes.starts_with(b"\"") {
            return bytes == self.etag.as_bytes();
        }
        date(value).is_some_and(|d| Some(d) == self.modified)
    }
}

/// An entity tag without its weakness prefix, for weak comparison.
fn opaque(tag: &str) -> &str {
    tag.strip_prefix("W/").unwrap_or(tag)
}

/// An HTTP date, if the value is one.
fn date(value: &HeaderValue) -> Option<SystemTime> {
    value
        .to_str()
        .ok()
        .and_then(|t| httpdate::parse_http_date(t).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validators() -> Validators {
        Validators {
            etag: "\"5f5e1000-400\"".to_string(),
            modified: Some(UNIX_EPOCH + Duration::from_secs(0x5f5e_1000)),
        }
    }

    fn value(text: &str) -> HeaderValue {
        HeaderValue::from_str(text).unwrap()
    }

    #[test]
    fn not_modified() {
        let v = validators();
        let last = value(&v.last_modified().unwrap());
        assert!(v.not_modified(Some(&value("\"5f5e1000-400\"")), None));
        assert!(v.not_modified(Some(&value("\"x\", W/\"5f5e1000-400\"")), None));
        assert!(v.not_modified(Some(&value("*")), None));
        assert!(!v.not_modified(Some(&value("\"other\"")), Some(&last)));
        assert!(v.not_modified(None, Some(&last)));
        assert!(!v.not_modified(None, Some(&value("Thu, 01 Jan 1970 00:00:00 GMT"))));
        assert!(!v.not_modified(None, Some(&value("yesterday"))));
        assert!(!v.not_modified(None, None));
    }

    #[test]
    fn if_range() {
        let v = validators();
        let last = value(&v.last_modified().unwrap());
        assert!(v.range_allowed(None));
        assert!(v.range_allowed(Some(&value("\"5f5e1000-400\""))));
        assert!(!v.range_allowed(Some(&value("W/\"5f5e1000-400\""))));
        assert!(!v.range_allowed(Some(&value("\"old\""))));
        assert!(v.range_allowed(Some(&last)));
        assert!(!v.range_allowed(Some(&value("Thu, 01 Jan 1970 00:00:00 GMT"))));
    }
}
