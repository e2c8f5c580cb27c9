//! nginx's values in portcullis's spelling: times (`1m`, `90`, `1h 30m`),
//! sizes (`10m`), and strings with `$variables` as `{placeholders}`.

/// An nginx time in milliseconds (a bare number is seconds).
pub(crate) fn millis(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    for part in text.split_whitespace() {
        let split = part.find(|c: char| !c.is_ascii_digit()).unwrap_or(part.len());
        let (digits, unit) = part.split_at(split);
        let n: u64 = digits.parse().ok()?;
        let scale: u64 = match unit {
            "ms" => 1,
            "" | "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "M" => 30 * 86_400_000,
            "y" => 365 * 86_400_000,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(scale)?)?;
    }
    Some(total)
}

/// A duration as portcullis writes it: `"500ms"`, `"90s"`, `"10m"`, `"1h"`.
pub(crate) fn duration(ms: u64) -> String {
    if ms % 1000 != 0 {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    if s > 0 && s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s > 0 && s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// An nginx size (`1m`, `512k`, `100`) in bytes and as portcullis writes it.
pub(crate) fn size(text: &str) -> Option<(u64, String)> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let (scale, name) = match unit {
        "" => (1, "B"),
        "k" | "K" => (1 << 10, "KiB"),
        "m" | "M" => (1 << 20, "MiB"),
        "g" | "G" => (1 << 30, "GiB"),
        _ => return None,
    };
    Some((n.checked_mul(scale)?, format!("{n}{name}")))
}

/// Where a template is used: log lines know more variables than headers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    Header,
    Log,
}

/// `text` with nginx's variables as portcullis's placeholders, or the
/// first variable that has none. `server_name` stands in for
/// `$server_name`.
pub(crate) fn template(text: &str, server_name: &str, usage: Use) -> Result<String, String> {
    let text = text
        .replace("$is_args$args", "\u{0}Q")
        .replace("?$args", "\u{0}Q")
        .replace("?$query_string", "\u{0}Q");
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        match c {
            '\u{0}' => {
                rest = rest.get(1..).unwrap_or("");
                out.push_str("{query}");
            }
            '{' => out.push_str("{{"),
            '}' => out.push_str("}}"),
            '$' => {
                let (name, after) = if let Some(braced) = rest.strip_prefix('{') {
                    let end = braced.find('}').ok_or_else(|| format!("${rest}"))?;
                    (&braced[..end], &braced[end + 1..])
                } else {
                    let end = rest
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(rest.len());
                    (&rest[..end], &rest[end..])
                };
                if name.is_empty() {
                    out.push('$');
                    continue;
                }
                rest = after;
                if name == "server_name" {
                    out.push_str(&server_name.replace('{', "{{").replace('}', "}}"));
                    continue;
                }
                let placeholder = placeholder(name, usage).ok_or_else(|| format!("${name}"))?;
                out.push_str(placeholder);
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

fn placeholder(name: &str, usage: Use) -> Option<&'static str> {
    let common = match name {
        "remote_addr" => "{client_ip}",
        "remote_port" => "{client_port}",
        "scheme" => "{scheme}",
        "host" | "http_host" => "{host}",
        "server_port" => "{server_port}",
        "request_id" => "{request_id}",
        "request_uri" => "{path}{query}",
        "uri" | "document_uri" => "{path}",
        "ssl_protocol" => "{tls_version}",
        "ssl_cipher" => "{tls_cipher}",
        "ssl_server_name" => "{sni}",
        "ssl_client_s_dn" => "{client_cert_subject}",
        _ => "",
    };
    if !common.is_empty() {
        return Some(common);
    }
    if usage == Use::Header {
        return None;
    }
    Some(match name {
        "remote_user" => "{remote_user}",
        "time_local" => "{time_local}",
        "time_iso8601" => "{time_iso8601}",
        "request" => "{request}",
        "status" => "{status}",
        "body_bytes_sent" | "bytes_sent" => "{bytes_sent}",
        "request_time" => "{duration}",
        "upstream_addr" => "{upstream}",
        "http_user_agent" => "{user_agent}",
        "http_referer" => "{referer}",
        "request_method" => "{method}",
        "server_protocol" => "{protocol}",
        "http_x_request_id" => "{request_id}",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_sizes() {
        assert_eq!(millis("60"), Some(60_000));
        assert_eq!(millis("1h 30m").map(duration), Some("90m".into()));
        assert_eq!(millis("500ms").map(duration), Some("500ms".into()));
        assert_eq!(millis("86400").map(duration), Some("24h".into()));
        assert_eq!(millis("5x"), None);
        assert_eq!(size("10m"), Some((10 << 20, "10MiB".into())));
        assert_eq!(size("100"), Some((100, "100B".into())));
        assert_eq!(size("1.5m"), None);
    }

    #[test]
    fn variables_become_placeholders() {
        assert_eq!(
            template("https://$host$request_uri", "x", Use::Header).ok(),
            Some("https://{host}{path}{query}".into())
        );
        assert_eq!(
            template("$uri$is_args$args {a}", "x", Use::Header).ok(),
            Some("{path}{query} {{a}}".into())
        );
        assert_eq!(
            template("https://$server_name${uri}", "ex.com", Use::Header).ok(),
            Some("https://ex.com{path}".into())
        );
        assert_eq!(template("$cookie_a", "x", Use::Header), Err("$cookie_a".into()));
        assert_eq!(template("$status", "x", Use::Header), Err("$status".into()));
        assert_eq!(
            template("$status $request_time", "x", Use::Log).ok(),
            Some("{status} {duration}".into())
        );
        assert_eq!(
            template("cost: 5$", "x", Use::Header).ok(),
            Some("cost: 5$".into())
        );
    }
}
