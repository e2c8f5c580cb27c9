//! A stream's `upstream`, `default` and route `upstream`: `tcp://host:port`
//! and nothing else, each rule broken answered with the address to write.

use super::upstream::{split_host_port, Example};
use crate::config::error::Invalid;
use crate::config::TcpUpstream;

const EXAMPLE: &str = "tcp://127.0.0.1:4222";

/// `tcp://host:port`: the port is required, since no port is the usual
/// one for every protocol a stream may carry.
pub(super) fn parse_tcp_upstream(raw: &str) -> Result<TcpUpstream, Invalid> {
    let text = raw.trim();
    if text.is_empty() {
        return Err(Invalid::new(
            "the upstream is empty",
            format!("write the address of the upstream, for example: \"{EXAMPLE}\""),
        ));
    }
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(Invalid::new(
            format!("`{text}` has no scheme"),
            format!("write \"tcp://{}\"", without_user(text)),
        ));
    };
    if !scheme.eq_ignore_ascii_case("tcp") {
        let why = match scheme.to_ascii_lowercase().as_str() {
            "http" | "https" | "ws" | "wss" => " (HTTP upstreams belong to a [[route]])",
            "tls" | "ssl" => " (for TLS to reach the upstream, use tls = \"passthrough\", or tls = \"none\" with an upstream that speaks TLS itself)",
            _ => "",
        };
        return Err(Invalid::new(
            format!("`{scheme}://` is not a stream upstream: a stream forwards bytes over TCP{why}"),
            format!("write \"tcp://{}\"", authority_of(rest)),
        ));
    }
    if rest.contains('@') {
        // The user info may hold a password: it is not repeated.
        return Err(Invalid::new(
            "the upstream contains user info (`...@`), which a stream cannot send",
            format!(
                "remove everything up to the `@`: \"tcp://{}\"",
                authority_of(rest)
            ),
        ));
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if let Some(index) = authority.find(['/', '?', '#']) {
        return Err(Invalid::new(
            format!(
                "the upstream has more than an address (`{}`)",
                &authority[index..]
            ),
            format!("write \"tcp://{}\"", &authority[..index]),
        ));
    }
    let example = Example {
        scheme: "tcp",
        port: 4222,
    };
    let (host, port) = split_host_port(authority, None, example)?;
    Ok(TcpUpstream { host, port })
}

/// The host and port of what follows `tcp://`, without user info, path,
/// query or fragment: the address to propose.
fn authority_of(rest: &str) -> &str {
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    without_user(&rest[..end])
}

fn without_user(authority: &str) -> &str {
    authority.rsplit('@').next().unwrap_or(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> (String, u16) {
        let u = parse_tcp_upstream(text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
        (u.host, u.port)
    }

    fn err(text: &str) -> Invalid {
        match parse_tcp_upstream(text) {
            Ok(u) => panic!("{text} parsed as {u:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn addresses_that_are_accepted() {
        assert_eq!(ok(" tcp://NATS:4222 "), ("nats".into(), 4222));
        assert_eq!(ok("TCP://127.0.0.1:1/"), ("127.0.0.1".into(), 1));
        assert_eq!(ok("tcp://[::1]:4222"), ("::1".into(), 4222));
        let u = parse_tcp_upstream("tcp://[::1]:4222").unwrap();
        assert_eq!(u.to_string(), "tcp://[::1]:4222");
    }

    #[test]
    fn each_rule_is_explained() {
        assert_eq!(err("nats:4222").hint, "write \"tcp://nats:4222\"");
        assert!(err("http://app:80").message.contains("[[route]]"));
        assert_eq!(err("nats://h:4222").hint, "write \"tcp://h:4222\"");
        assert!(err("tcp://nats").message.contains("no port"));
        assert_eq!(
            err("tcp://nats").hint,
            "write the port, for example: \"tcp://nats:4222\""
        );
        assert!(err("tcp://[::1]").hint.contains("tcp://[::1]:4222"));
        assert!(err("tcp://h:0").message.contains("not a port"));
        assert!(err("tcp://h:+1").message.contains("not a port"));
        assert!(err("tcp://h:70000").message.contains("not a port"));
        assert!(err("tcp://::1:4222").message.contains("brackets"));
        assert!(err("tcp://[::1").message.contains("closing"));
        assert!(err("tcp://[::1]x").message.contains("unexpected"));
        assert!(err("tcp://:4222").message.contains("no host"));
        assert!(err("tcp://a b:1").message.contains("` `"));
        assert_eq!(err("tcp://h:1/path").hint, "write \"tcp://h:1\"");
        let e = err("tcp://user:secret@h:1");
        assert!(
            !e.message.contains("secret") && !e.hint.contains("secret"),
            "{e:?}"
        );
        assert!(e.hint.contains("\"tcp://h:1\""), "{e:?}");
        let e = err("http://user:secret@h:1");
        assert!(!e.hint.contains("secret"), "{e:?}");
        assert!(err("").message.contains("empty"));
    }
}
