//! The `{name}` placeholders of redirects (and of header rules and log
//! templates): one vocabulary, compiled at load into literal and variable
//! segments, so a request pays only for copying the values.

use std::fmt::Write as _;
use std::net::SocketAddr;

use super::ConnInfo;

/// Every placeholder name, in the order messages list them.
pub const NAMES: [&str; 13] = [
    "client_ip",
    "client_port",
    "scheme",
    "host",
    "server_port",
    "request_id",
    "path",
    "query",
    "tls_version",
    "tls_cipher",
    "sni",
    "client_cert_subject",
    "client_cert_sha256",
];

/// One value a template can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    ClientIp,
    ClientPort,
    Scheme,
    Host,
    ServerPort,
    RequestId,
    Path,
    Query,
    TlsVersion,
    TlsCipher,
    Sni,
    ClientCertSubject,
    ClientCertSha256,
}

const ALL: [Placeholder; 13] = [
    Placeholder::ClientIp,
    Placeholder::ClientPort,
    Placeholder::Scheme,
    Placeholder::Host,
    Placeholder::ServerPort,
    Placeholder::RequestId,
    Placeholder::Path,
    Placeholder::Query,
    Placeholder::TlsVersion,
    Placeholder::TlsCipher,
    Placeholder::Sni,
    Placeholder::ClientCertSubject,
    Placeholder::ClientCertSha256,
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Value(Placeholder),
}

/// A text with placeholders, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    segments: Vec<Segment>,
    /// The literals' total length, to size the output once.
    literal_len: usize,
}

/// Why a text is no template: the placeholder named, or `None` for a `{`
/// that is never closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown(pub Option<String>);

impl Unknown {
    /// The message and the hint, for a configuration error.
    pub fn describe(&self) -> (String, String) {
        let valid = NAMES.map(|n| format!("{{{n}}}")).join(", ");
        match &self.0 {
            Some(name) => (
                format!("unknown placeholder `{{{name}}}`"),
                format!("valid placeholders: {valid}; write {{{{ for a literal {{"),
            ),
            None => (
                "a `{` without its `}`".to_string(),
                format!("write {{{{ for a literal {{; valid placeholders: {valid}"),
            ),
        }
    }
}

impl Template {
    /// Compiles `text`: `{name}` is a placeholder, `{{` and `}}` are
    /// literal braces.
    pub fn parse(text: &str) -> Result<Template, Unknown> {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(at) = rest.find(['{', '}']) {
            literal.push_str(&rest[..at]);
            let brace = &rest[at..];
            if let Some(after) = brace.strip_prefix("{{").or_else(|| brace.strip_prefix("}}")) {
                literal.push_str(&brace[..1]);
                rest = after;
                continue;
            }
            if let Some(after) = brace.strip_prefix('}') {
                literal.push('}');
                rest = after;
                continue;
            }
            let end = brace.find('}').ok_or(Unknown(None))?;
            let name = &brace[1..end];
            let index = NAMES
                .iter()
                .position(|n| *n == name)
                .ok_or_else(|| Unknown(Some(name.to_string())))?;
            if !literal.is_empty() {
                segments.push(Segment::Literal(std::mem::take(&mut literal)));
            }
            segments.push(Segment::Value(ALL[index]));
            rest = &brace[end + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        let literal_len = segments
            .iter()
            .map(|s| match s {
                Segment::Literal(text) => text.len(),
                Segment::Value(_) => 0,
            })
            .sum();
        Ok(Template {
            segments,
            literal_len,
        })
    }

    /// Whether the template names no placeholder.
    pub fn is_literal(&self) -> bool {
        self.segments.iter().all(|s| matches!(s, Segment::Literal(_)))
    }

    /// The text of a template that names no placeholder.
    pub fn render_literal(&self) -> String {
        self.segments
            .iter()
            .filter_map(|s| match s {
                Segment::Literal(text) => Some(text.as_str()),
                Segment::Value(_) => None,
            })
            .collect()
    }

    /// The text with every placeholder's value for this request.
    pub fn render(&self, values: &Values<'_>) -> String {
        let mut out = String::with_capacity(self.literal_len + 32);
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Value(p) => values.write(*p, &mut out),
            }
        }
        out
    }
}

/// What the placeholders of one request resolve to.
#[derive(Debug)]
pub struct Values<'a> {
    pub conn: &'a ConnInfo,
    /// The request's client (see [`client_addr`]).
    pub client: SocketAddr,
    /// The host the request named, without its port.
    pub host: Option<&'a str>,
    /// The normalised path.
    pub path: &'a str,
    /// The query, without its `?`.
    pub query: Option<&'a str>,
    /// The `X-Request-Id` the request is forwarded with.
    pub request_id: Option<&'a str>,
}

impl Values<'_> {
    fn write(&self, placeholder: Placeholder, out: &mut String) {
        let tls = self.conn.conn.tls.get();
        match placeholder {
            Placeholder::ClientIp => {
                let _ = write!(out, "{}", self.client.ip().to_canonical());
            }
            Placeholder::ClientPort => {
                let _ = write!(out, "{}", self.client.port());
            }
            Placeholder::Scheme => out.push_str(self.conn.proto.to_str().unwrap_or("https")),
            Placeholder::Host => out.push_str(self.host.unwrap_or("")),
            Placeholder::ServerPort => {
                let _ = write!(out, "{}", self.conn.server_port);
            }
            Placeholder::RequestId => out.push_str(self.request_id.unwrap_or("")),
            Placeholder::Path => out.push_str(self.path),
            // With its `?`, so that `{path}{query}` is the target again.
            Placeholder::Query => {
                if let Some(query) = self.query {
                    out.push('?');
                    out.push_str(query);
                }
            }
            Placeholder::TlsVersion => out.push_str(tls.map_or("", |t| t.version.as_str())),
            Placeholder::TlsCipher => out.push_str(tls.map_or("", |t| t.cipher.as_str())),
            Placeholder::Sni => out.push_str(tls.and_then(|t| t.sni.as_deref()).unwrap_or("")),
            Placeholder::ClientCertSubject => {
                out.push_str(
                    self.conn
                        .client_cert
                        .as_ref()
                        .map_or("", |c| c.subject_text.as_str()),
                );
            }
            Placeholder::ClientCertSha256 => {
                out.push_str(self.conn.client_cert.as_ref().map_or("", |c| c.sha256()));
            }
        }
    }
}

/// The client's address as every placeholder, header and log sees it: the
/// address a trusted proxy named for the request whose extensions are
/// `ext`, else the connection's (its PROXY header's, or the peer).
pub fn client_addr(ext: &http::Extensions, conn: &ConnInfo) -> SocketAddr {
    let client = super::client_addr::ClientAddr::of(ext, conn);
    SocketAddr::new(client.ip, client.port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_compile_into_segments() {
        let t = Template::parse("https://x{path}{query}").unwrap();
        assert_eq!(
            t.segments,
            vec![
                Segment::Literal("https://x".into()),
                Segment::Value(Placeholder::Path),
                Segment::Value(Placeholder::Query)
            ]
        );
        assert!(Template::parse("{{literal}} }").unwrap().is_literal());
        assert_eq!(Template::parse("a{nope}"), Err(Unknown(Some("nope".into()))));
        assert_eq!(Template::parse("a{path"), Err(Unknown(None)));
        assert!(Unknown(Some("x".into()))
            .describe()
            .1
            .contains("{client_ip}, {client_port}"));
    }
}
