//! `[log] access_template`: an access line written as text with
//! `{placeholders}`, compiled once at load into literal pieces and fields,
//! like nginx's `log_format`. The names are those of header rules where
//! they mean the same thing (`client_ip`, `host`, `request_id`...), and
//! the log's own (`status`, `bytes_sent`, `duration`...).

use super::error::Invalid;

/// One value an access line can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogField {
    ClientIp,
    ClientPort,
    Scheme,
    Host,
    RequestId,
    Path,
    Query,
    Method,
    Protocol,
    Request,
    Status,
    BytesSent,
    Duration,
    Upstream,
    UserAgent,
    Referer,
    RemoteUser,
    TimeLocal,
    TimeIso8601,
}

/// Every placeholder, with its field and its nginx variable.
pub const LOG_FIELDS: [(&str, LogField, &str); 19] = [
    ("client_ip", LogField::ClientIp, "$remote_addr"),
    ("client_port", LogField::ClientPort, "$remote_port"),
    ("scheme", LogField::Scheme, "$scheme"),
    ("host", LogField::Host, "$host"),
    ("request_id", LogField::RequestId, "$request_id"),
    ("path", LogField::Path, "$uri"),
    ("query", LogField::Query, "$args"),
    ("method", LogField::Method, "$request_method"),
    ("protocol", LogField::Protocol, "$server_protocol"),
    ("request", LogField::Request, "$request"),
    ("status", LogField::Status, "$status"),
    ("bytes_sent", LogField::BytesSent, "$body_bytes_sent"),
    ("duration", LogField::Duration, "$request_time"),
    ("upstream", LogField::Upstream, "$upstream_addr"),
    ("user_agent", LogField::UserAgent, "$http_user_agent"),
    ("referer", LogField::Referer, "$http_referer"),
    ("remote_user", LogField::RemoteUser, "$remote_user"),
    ("time_local", LogField::TimeLocal, "$time_local"),
    ("time_iso8601", LogField::TimeIso8601, "$time_iso8601"),
];

/// A piece of a compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Field(LogField),
}

/// A compiled `access_template`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTemplate {
    pub pieces: Vec<Piece>,
}

impl AccessTemplate {
    /// Compiles `text`: `{name}` is a placeholder, `{{` and `}}` are
    /// braces. An nginx `$variable` is answered with its placeholder.
    pub(crate) fn parse(text: &str) -> Result<AccessTemplate, Invalid> {
        if text.contains(['\n', '\r']) {
            return Err(Invalid::new(
                "an access line cannot hold a line break",
                "write the template on one line; \\t is allowed",
            ));
        }
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(i) = rest.find(['{', '}', '$']) {
            literal.push_str(&rest[..i]);
            let tail = &rest[i..];
            if let Some(after) = tail.strip_prefix("{{") {
                literal.push('{');
                rest = after;
            } else if let Some(after) = tail.strip_prefix("}}") {
                literal.push('}');
                rest = after;
            } else if tail.starts_with('}') {
                return Err(Invalid::new("a `}` without its `{`", "write `}}` for a brace"));
            } else if let Some(after) = tail.strip_prefix('$') {
                let name: String = after
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if let Some((portcullis, _, _)) = LOG_FIELDS.iter().find(|(_, _, nginx)| nginx[1..] == name) {
                    return Err(Invalid::new(
                        format!("`${name}` is nginx's syntax"),
                        format!("write {{{portcullis}}}"),
                    ));
                }
                literal.push('$');
                rest = after;
            } else {
                let end = tail
                    .find('}')
                    .ok_or_else(|| Invalid::new("a `{` without its `}`", "write `{{` for a brace"))?;
                let name = &tail[1..end];
                let field = LOG_FIELDS
                    .iter()
                    .find(|(n, _, _)| *n == name)
                    .map(|(_, f, _)| *f)
                    .ok_or_else(|| {
                        let names: Vec<&str> = LOG_FIELDS.iter().map(|(n, _, _)| *n).collect();
                        Invalid::new(
                            format!("`{{{name}}}` is not a placeholder of access lines"),
                            format!("valid placeholders: {}", names.join(", ")),
                        )
                    })?;
                if !literal.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut literal)));
                }
                pieces.push(Piece::Field(field));
                rest = &tail[end + 1..];
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(AccessTemplate { pieces })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_fields_literals_and_braces() {
        let t = AccessTemplate::parse("{client_ip} {{x}} \"{request}\" ${status}").unwrap();
        assert_eq!(
            t.pieces,
            vec![
                Piece::Field(LogField::ClientIp),
                Piece::Text(" {x} \"".into()),
                Piece::Field(LogField::Request),
                Piece::Text("\" $".into()),
                Piece::Field(LogField::Status),
            ]
        );
    }

    #[test]
    fn refusals_name_the_fix() {
        let e = AccessTemplate::parse("{client_addr}").unwrap_err();
        assert!(e.hint.contains("client_ip"), "{}", e.hint);
        let e = AccessTemplate::parse("$remote_addr - {status}").unwrap_err();
        assert_eq!(e.hint, "write {client_ip}");
        assert!(AccessTemplate::parse("{status").is_err());
        assert!(AccessTemplate::parse("status}").is_err());
        assert!(AccessTemplate::parse("a\nb").is_err());
    }
}
