//! A route's `upstream`: `http://` or `https://`, a host and a port, and
//! nothing else; each rule broken is explained with the address to write
//! instead.

use std::net::Ipv6Addr;

use crate::config::error::Invalid;
use crate::config::{Scheme, Upstream};

/// An upstream address, `http://host[:port][/]` or `https://...` (port 80
/// or 443 by default). Each rule has its own message so that the operator
/// knows which part to change.
pub(super) fn parse_upstream(raw: &str) -> Result<Upstream, Invalid> {
    const EXAMPLE: &str = "http://127.0.0.1:8080";
    let text = raw.trim();
    if text.is_empty() {
        return Err(Invalid::new(
            "the upstream is empty",
            format!("write the address of the application, for example: upstream = \"{EXAMPLE}\""),
        ));
    }
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(Invalid::new(
            format!("`{text}` has no scheme"),
            format!(
                "write upstream = \"{}\"",
                upstream_address(Scheme::Http, text.trim_start_matches('/'))
            ),
        ));
    };
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        ws @ ("ws" | "wss") => {
            let (what, instead) = if ws == "ws" {
                ("WebSocket upstreams are plain HTTP", Scheme::Http)
            } else {
                ("WebSocket upstreams over TLS are HTTPS", Scheme::Https)
            };
            return Err(Invalid::new(
                format!("`{scheme}://` is not an upstream scheme: {what}"),
                format!(
                    "write upstream = \"{}\"; portcullis forwards the WebSocket upgrade",
                    upstream_address(instead, rest)
                ),
            ));
        }
        _ => {
            return Err(Invalid::new(
                format!("unsupported scheme `{scheme}://`"),
                format!("upstreams use http:// or https://, for example: upstream = \"{EXAMPLE}\""),
            ))
        }
    };

    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);

    if authority.contains('@') {
        // The user info may hold a password: it is not repeated in the message.
        return Err(Invalid::new(
            "the upstream contains user info (`...@`), which portcullis does not send",
            format!(
                "remove everything up to the `@`: upstream = \"{}\"",
                upstream_address(scheme, rest)
            ),
        ));
    }

    let default_port = match scheme {
        Scheme::Http => 80,
        Scheme::Https => 443,
    };
    let (host, port) = split_host_port(authority, Some(default_port), HTTP_EXAMPLE)?;

    let clean = upstream_address(scheme, rest);
    let query_start = tail.find(['?', '#']).unwrap_or(tail.len());
    let (path, after_path) = tail.split_at(query_start);
    if !path.is_empty() && path != "/" {
        return Err(Invalid::new(
            format!("the upstream has a path (`{path}`); only an address is allowed"),
            format!(
                "write upstream = \"{clean}\" and put the path in the route's `path`: portcullis forwards the request path unchanged"
            ),
        ));
    }
    if let Some(query) = after_path.strip_prefix('?') {
        let query = query.split('#').next().unwrap_or(query);
        return Err(Invalid::new(
            format!("the upstream has a query (`?{query}`)"),
            format!("write upstream = \"{clean}\": portcullis forwards each request's own query unchanged"),
        ));
    }
    if let Some(fragment) = after_path.strip_prefix('#') {
        return Err(Invalid::new(
            format!("the upstream has a fragment (`#{fragment}`)"),
            format!("write upstream = \"{clean}\": fragments are never sent to a server"),
        ));
    }
    Ok(Upstream { scheme, host, port })
}

/// `scheme://` and the host and port of `rest` (what follows a scheme's
/// `://`), without user info, path, query or fragment: the upstream to
/// propose when the one written breaks a rule.
fn upstream_address(scheme: Scheme, rest: &str) -> String {
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let without_user = authority.rsplit('@').next().unwrap_or(authority);
    format!("{}://{without_user}", scheme.as_str())
}

/// How the hints of [`split_host_port`] write an address.
pub(super) struct Example {
    pub(super) scheme: &'static str,
    pub(super) port: u16,
}

const HTTP_EXAMPLE: Example = Example {
    scheme: "http",
    port: 8080,
};

/// The host and port of an upstream authority; the port defaults to
/// `default_port`, and is required without one.
pub(super) fn split_host_port(
    authority: &str,
    default_port: Option<u16>,
    example: Example,
) -> Result<(String, u16), Invalid> {
    let Example {
        scheme,
        port: example_port,
    } = example;
    let ipv6_hint = format!("write an IPv6 address as {scheme}://[::1]:{example_port}");
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((inner, after)) = bracketed.split_once(']') else {
            return Err(Invalid::new(
                format!("`[{bracketed}` has no closing `]`"),
                ipv6_hint,
            ));
        };
        if inner.parse::<Ipv6Addr>().is_err() {
            return Err(Invalid::new(
                format!("`{inner}` is not an IPv6 address"),
                ipv6_hint,
            ));
        }
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => {
                    return Err(Invalid::new(
                        format!("unexpected `{after}` after the IPv6 address"),
                        format!("write {scheme}://[{inner}]:{example_port}"),
                    ))
                }
            },
        };
        (inner.to_ascii_lowercase(), port)
    } else {
        if authority.matches(':').count() > 1 {
            return Err(Invalid::new(
                format!("`{authority}` looks like an IPv6 address without brackets"),
                format!("put an IPv6 address in brackets: {scheme}://[::1]:{example_port}"),
            ));
        }
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        if host.is_empty() {
            return Err(Invalid::new(
                "the upstream has no host",
                format!("write upstream = \"{scheme}://127.0.0.1:{example_port}\""),
            ));
        }
        if let Some(bad) = host
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')))
        {
            return Err(Invalid::new(
                format!("the upstream host `{host}` contains `{bad}`"),
                "use a name or an IP address: letters, digits, `-` and `.`",
            ));
        }
        (host.to_ascii_lowercase(), port)
    };
    let shown = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    let port = match (port, default_port) {
        (None, Some(default_port)) => default_port,
        (None, None) => {
            return Err(Invalid::new(
                format!("`{scheme}://{shown}` has no port, and {scheme}:// has no default one"),
                format!("write the port, for example: \"{scheme}://{shown}:{example_port}\""),
            ))
        }
        (Some(""), default_port) => {
            let or_default =
                default_port.map_or_else(String::new, |port| format!(", or drop the colon for port {port}"));
            return Err(Invalid::new(
                "the upstream has an empty port after `:`",
                format!("write the port after the colon, such as :{example_port}{or_default}"),
            ));
        }
        (Some(digits), _) => match digits.parse::<u16>() {
            Ok(port) if port > 0 && digits.bytes().all(|b| b.is_ascii_digit()) => port,
            _ => {
                return Err(Invalid::new(
                    format!("`{digits}` is not a port number"),
                    format!("give a port from 1 to 65535, such as :{example_port}"),
                ))
            }
        },
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(text: &str) -> Upstream {
        match parse_upstream(text) {
            Ok(u) => u,
            Err(e) => panic!("{text}: {e:?}"),
        }
    }

    fn upstream_error(text: &str) -> Invalid {
        match parse_upstream(text) {
            Ok(u) => panic!("{text} parsed as {u:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn upstreams_that_are_accepted() {
        let u = upstream(" http://127.0.0.1:9222 ");
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 9222));
        let u = upstream("HTTP://App.Internal/");
        assert_eq!((u.host.as_str(), u.port), ("app.internal", 80));
        let u = upstream("http://[::1]:8080");
        assert_eq!((u.host.as_str(), u.port), ("::1", 8080));
        assert_eq!(u.to_string(), "http://[::1]:8080");
        let u = upstream("  HTTPS://Api.Internal  ");
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port),
            (Scheme::Https, "api.internal", 443)
        );
        assert_eq!(u.to_string(), "https://api.internal:443");
        let u = upstream("https://[::1]:8443/");
        assert_eq!((u.scheme, u.host.as_str(), u.port), (Scheme::Https, "::1", 8443));
    }

    #[test]
    fn upstream_rules() {
        assert!(upstream_error("127.0.0.1:8080").message.contains("no scheme"));
        assert!(upstream_error("http://:8080").message.contains("no host"));
        assert!(upstream_error("http://h:").message.contains("empty port"));
        assert!(upstream_error("http://h:0").message.contains("not a port"));
        assert!(upstream_error("http://h:+80").message.contains("not a port"));
        assert!(upstream_error("http://h:65536").message.contains("not a port"));
        assert!(upstream_error("http://::1:80").message.contains("brackets"));
        assert!(upstream_error("http://[::g]:80").message.contains("not an IPv6"));
        assert!(upstream_error("http://[::1").message.contains("closing"));
        assert!(upstream_error("http://a b").message.contains("contains ` `"));
        let e = upstream_error("http://u:secret@h:1");
        assert!(!e.message.contains("secret") && !e.hint.contains("secret"));
        assert!(upstream_error("ftp://h").message.contains("unsupported scheme"));
        assert!(upstream_error("ftp://h").hint.contains("http:// or https://"));
        assert!(upstream_error("ws://h").hint.contains("\"http://h\""));
        assert!(upstream_error("wss://h").hint.contains("\"https://h\""));
    }

    #[test]
    fn https_upstreams_follow_the_same_rules() {
        // Every hint keeps the scheme that was written.
        let e = upstream_error("https://h:8443/api");
        assert!(e.message.contains("has a path"), "{}", e.message);
        assert!(e.hint.contains("\"https://h:8443\""), "{}", e.hint);
        let e = upstream_error("https://h?x=1");
        assert!(
            e.message.contains("query") && e.hint.contains("\"https://h\""),
            "{e:?}"
        );
        let e = upstream_error("https://h#top");
        assert!(
            e.message.contains("fragment") && e.hint.contains("\"https://h\""),
            "{e:?}"
        );
        let e = upstream_error("https://user:secret@h:8443");
        assert!(e.hint.contains("\"https://h:8443\""), "{}", e.hint);
        assert!(!e.message.contains("secret") && !e.hint.contains("secret"));
        assert!(upstream_error("https://:8443").message.contains("no host"));
        let e = upstream_error("https://h:");
        assert!(e.hint.contains("port 443"), "{}", e.hint);
        assert!(upstream_error("https://h:0").message.contains("not a port"));
        assert!(upstream_error("https://::1:443").message.contains("brackets"));
    }
}
