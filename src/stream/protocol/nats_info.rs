//! The NATS server's INFO line, as portcullis passes it on: `tls_required`
//! and `tls_available` set to true, since the client's side of the stream
//! is TLS, and every other byte as the server wrote it.
//!
//! The line is `INFO {json}` (NATS client protocol). The JSON object's
//! top-level members are located with serde_json's raw values, so the two
//! values are replaced, or the members inserted after `{`, without
//! re-encoding anything else.

use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Why an INFO line cannot be passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadInfo {
    /// The line does not begin with `INFO` and a space.
    NotInfo,
    /// What follows is not a JSON object.
    NotJson,
    /// A member the adapter sets is there twice, or is not a boolean.
    Ambiguous,
    /// The upstream requires TLS itself; the stream reaches it in plain TCP.
    UpstreamRequiresTls,
}

impl BadInfo {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            BadInfo::NotInfo => "the upstream's first line is not INFO",
            BadInfo::NotJson => "the upstream's INFO is not a JSON object",
            BadInfo::Ambiguous => "the upstream's INFO has tls_required or tls_available twice, or not as a boolean",
            BadInfo::UpstreamRequiresTls => {
                "the upstream NATS server requires TLS itself, and a stream reaches it in plain TCP: turn TLS off on its client port"
            }
        }
    }
}

/// The members of the object, in order, each value as written.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Walk;
        impl<'de> Visitor<'de> for Walk {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, &'de RawValue>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Walk)
    }
}

/// `line` (without its CRLF) as the client is to see it, CRLF included.
pub(crate) fn rewrite(line: &[u8]) -> Result<Vec<u8>, BadInfo> {
    let text = std::str::from_utf8(line).map_err(|_| BadInfo::NotJson)?;
    let Some(after) = text.strip_prefix("INFO") else {
        return Err(BadInfo::NotInfo);
    };
    let json = after.trim_start_matches([' ', '\t']);
    if json.len() == after.len() {
        return Err(BadInfo::NotInfo);
    }
    let members: Members<'_> = serde_json::from_str(json).map_err(|_| BadInfo::NotJson)?;
    // Byte ranges of `json` to replace, and text to insert after `{`.
    let mut edits: Vec<(usize, usize, &str)> = Vec::new();
    let mut insert = String::new();
    for key in ["tls_required", "tls_available"] {
        let mut found = members.0.iter().filter(|(name, _)| name == key);
        match (found.next(), found.next()) {
            (None, _) => insert.push_str(&format!("\"{key}\":true,")),
            (Some((_, value)), None) => {
                let written = value.get();
                match written {
                    "false" | "true" => {}
                    _ => return Err(BadInfo::Ambiguous),
                }
                if key == "tls_required" && written == "true" {
                    return Err(BadInfo::UpstreamRequiresTls);
                }
                // A borrowed raw value is a slice of `json` itself.
                let start = written.as_ptr() as usize - json.as_ptr() as usize;
                edits.push((start, start + written.len(), "true"));
            }
            (Some(_), Some(_)) => return Err(BadInfo::Ambiguous),
        }
    }
    if members.0.is_empty() {
        insert.pop(); // no member follows the inserted ones
    }
    let open = json.find('{').ok_or(BadInfo::NotJson)? + 1;
    if !insert.is_empty() {
        edits.push((open, open, &insert));
    }
    edits.sort_by_key(|&(start, _, _)| std::cmp::Reverse(start));
    let mut out = json.to_string();
    for (start, end, with) in edits {
        out.replace_range(start..end, with);
    }
    let prefix = &text[..text.len() - json.len()];
    let mut line = Vec::with_capacity(prefix.len() + out.len() + 2);
    line.extend_from_slice(prefix.as_bytes());
    line.extend_from_slice(out.as_bytes());
    line.extend_from_slice(b"\r\n");
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> String {
        String::from_utf8(rewrite(line.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn the_flags_are_set_and_nothing_else_moves() {
        let server = r#"INFO {"server_id":"NB2","version":"2.10.1","tls_required":false,"max_payload":1048576,"name":"tls_required"}"#;
        assert_eq!(
            ok(server),
            "INFO {\"tls_available\":true,\"server_id\":\"NB2\",\"version\":\"2.10.1\",\"tls_required\":true,\"max_payload\":1048576,\"name\":\"tls_required\"}\r\n"
        );
        assert_eq!(
            ok("INFO  { \"a\" : [1, {\"tls_required\":false}] ,\"tls_available\" : false }"),
            "INFO  {\"tls_required\":true, \"a\" : [1, {\"tls_required\":false}] ,\"tls_available\" : true }\r\n"
        );
        assert_eq!(
            ok("INFO\t{}"),
            "INFO\t{\"tls_required\":true,\"tls_available\":true}\r\n"
        );
        assert_eq!(
            ok(r#"INFO {"x":"\u00e9"}"#),
            "INFO {\"tls_required\":true,\"tls_available\":true,\"x\":\"\\u00e9\"}\r\n"
        );
    }

    #[test]
    fn what_cannot_be_passed_on() {
        assert_eq!(rewrite(b"PING"), Err(BadInfo::NotInfo));
        assert_eq!(rewrite(b"INFO{}"), Err(BadInfo::NotInfo));
        assert_eq!(rewrite(b"INFO [1]"), Err(BadInfo::NotJson));
        assert_eq!(rewrite(b"INFO {\"a\":1} x"), Err(BadInfo::NotJson));
        assert_eq!(rewrite(b"INFO {\"a\":"), Err(BadInfo::NotJson));
        assert_eq!(
            rewrite(b"INFO {\"tls_required\":false,\"tls_required\":false}"),
            Err(BadInfo::Ambiguous)
        );
        assert_eq!(
            rewrite(b"INFO {\"tls_available\":\"yes\"}"),
            Err(BadInfo::Ambiguous)
        );
        assert_eq!(
            rewrite(b"INFO {\"tls_required\":true}"),
            Err(BadInfo::UpstreamRequiresTls)
        );
        assert_eq!(rewrite(b"INFO {\xff}"), Err(BadInfo::NotJson));
    }
}
