//! The upstream's own URLs in a response made the client's: a `Location`
//! or `Refresh` naming the upstream (nginx's `proxy_redirect default`), or
//! `http://` and the client's host (`proxy_redirect http:// https://`),
//! with the route's path prefix mapped back; a `Set-Cookie` `Path=` mapped
//! back the same way (`proxy_cookie_path`), and flags added to named
//! cookies (`proxy_cookie_flags`).

use std::borrow::Cow;

use http::{header, HeaderMap, HeaderValue};

use super::routes::prefix_matches;
use crate::config::{PathRewrite, RouteConfig, Scheme};

/// Rewrites `headers` of a response from `route`'s upstream to a client
/// that used `proto` (`https` or `http`) and named `client_host`.
pub(crate) fn rewrite(
    headers: &mut HeaderMap,
    route: &RouteConfig,
    proto: &HeaderValue,
    client_host: Option<&HeaderValue>,
) {
    let urls = &route.shaping.upstream_urls;
    if urls.redirects {
        let client_base = client_host
            .and_then(|h| h.to_str().ok())
            .map(|host| format!("{}://{host}", proto.to_str().unwrap_or("https")));
        let client_http = client_host
            .and_then(|h| h.to_str().ok())
            .map(|host| format!("http://{host}"));
        let bases = Bases {
            upstream: upstream_bases(route),
            client_http,
            client_base,
        };
        if let Some(location) = headers.get(header::LOCATION).and_then(|v| v.to_str().ok()) {
            if let Some(new) = rewrite_url(location, route, &bases) {
                if let Ok(value) = HeaderValue::from_str(&new) {
                    headers.insert(header::LOCATION, value);
                }
            }
        }
        if let Some(refresh) = headers.get("refresh").and_then(|v| v.to_str().ok()) {
            if let Some(at) = refresh.to_ascii_lowercase().find("url=") {
                let (head, url) = refresh.split_at(at + 4);
                if let Some(new) = rewrite_url(url.trim(), route, &bases) {
                    if let Ok(value) = HeaderValue::from_str(&format!("{head}{new}")) {
                        headers.insert("refresh", value);
                    }
                }
            }
        }
    }
    if (urls.cookie_path || !urls.cookie_flags.is_empty()) && headers.contains_key(header::SET_COOKIE) {
        let cookies: Vec<HeaderValue> = headers.get_all(header::SET_COOKIE).iter().cloned().collect();
        headers.remove(header::SET_COOKIE);
        for cookie in cookies {
            let new = cookie
                .to_str()
                .ok()
                .map(|text| rewrite_cookie(text, route))
                .and_then(|text| HeaderValue::from_str(&text).ok());
            headers.append(header::SET_COOKIE, new.unwrap_or(cookie));
        }
    }
}

/// Where an absolute URL can point that is the client's to see.
struct Bases {
    /// `scheme://host:port` of the upstream, and without a default port.
    upstream: Vec<String>,
    /// `http://` and the client's host.
    client_http: Option<String>,
    /// What the client used: its scheme and host.
    client_base: Option<String>,
}

fn upstream_bases(route: &RouteConfig) -> Vec<String> {
    let upstream = &route.upstream;
    let scheme = upstream.scheme.as_str();
    let mut bases = vec![format!("{scheme}://{}", upstream.authority())];
    let default_port = match upstream.scheme {
        Scheme::Http => 80,
        Scheme::Https => 443,
    };
    if upstream.port == default_port {
        let host = upstream.authority();
        let bare = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
        bases.push(format!("{scheme}://{bare}"));
    }
    bases
}

/// `url` made the client's, or `None` when it points elsewhere.
fn rewrite_url(url: &str, route: &RouteConfig, bases: &Bases) -> Option<String> {
    let absolute = bases
        .upstream
        .iter()
        .chain(bases.client_http.iter())
        .find_map(|base| strip_base(url, base));
    let (base, rest) = match absolute {
        Some(rest) => (Some(bases.client_base.as_deref()?), rest),
        None if url.starts_with('/') && !url.starts_with("//") => (None, url),
        None => return None,
    };
    let (path, query) = match rest.find(['?', '#']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let path = if path.is_empty() { "/" } else { path };
    let mapped = map_back(route, path);
    Some(format!("{}{mapped}{query}", base.unwrap_or("")))
}

/// What follows `base` in `url`, compared case-insensitively, when `base`
/// ends there or at a `/`, `?` or `#`.
fn strip_base<'a>(url: &'a str, base: &str) -> Option<&'a str> {
    let head = url.get(..base.len())?;
    let rest = &url[base.len()..];
    (head.eq_ignore_ascii_case(base) && (rest.is_empty() || rest.starts_with(['/', '?', '#'])))
        .then_some(rest)
}

/// An upstream path under the route's replacement prefix, with the
/// route's own prefix in its place: the inverse of `strip_prefix` and
/// `rewrite_prefix`.
fn map_back<'a>(route: &RouteConfig, path: &'a str) -> Cow<'a, str> {
    let PathRewrite::Prefix(replacement) = &route.shaping.rewrite else {
        return Cow::Borrowed(path);
    };
    let rest = if replacement.ends_with('/') {
        match path.strip_prefix(replacement.as_str()) {
            Some(_) => &path[replacement.len() - 1..],
            None if path == replacement.trim_end_matches('/') => "",
            None => return Cow::Borrowed(path),
        }
    } else if prefix_matches(replacement, path) {
        &path[replacement.len()..]
    } else {
        return Cow::Borrowed(path);
    };
    let mut out = route.path.trim_end_matches('/').to_string();
    out.push_str(rest);
    if out.is_empty() || (rest.is_empty() && route.path.ends_with('/')) {
        out.push('/');
    }
    Cow::Owned(out)
}

/// One `Set-Cookie` value with its `Path=` mapped back and its flags set.
fn rewrite_cookie(text: &str, route: &RouteConfig) -> String {
    let urls = &route.shaping.upstream_urls;
    let mut parts: Vec<String> = text.split(';').map(|p| p.trim().to_string()).collect();
    if urls.cookie_path {
        for part in parts.iter_mut().skip(1) {
            let is_path = part.get(..5).is_some_and(|k| k.eq_ignore_ascii_case("path="));
            if is_path && part[5..].starts_with('/') {
                let mapped = map_back(route, &part[5..]).into_owned();
                *part = format!("{}{mapped}", &part[..5]);
            }
        }
    }
    let name = text.split('=').next().unwrap_or("").trim();
    if let Some((_, flags)) = urls.cookie_flags.iter().find(|(n, _)| n == name) {
        for (attribute, flag) in flags {
            let mut first = true;
            parts.retain(|p| {
                let keep = first
                    || !p
                        .split('=')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .eq_ignore_ascii_case(attribute);
                first = false;
                keep
            });
            parts.push(flag.clone());
        }
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(toml_keys: &str) -> RouteConfig {
        let text = format!("[[route]]\nupstream = \"http://app:80\"\n{toml_keys}\n");
        let config = crate::config::from_str(&text, std::path::Path::new("p.toml")).unwrap();
        config.routes[0].clone()
    }

    #[test]
    fn paths_map_back_through_the_prefix_rewrite() {
        let strip = route("path = \"/gitea/\"\nstrip_prefix = true");
        assert_eq!(map_back(&strip, "/x/y"), "/gitea/x/y");
        assert_eq!(map_back(&strip, "/"), "/gitea/");
        let bare = route("path = \"/gitea\"\nstrip_prefix = true");
        assert_eq!(map_back(&bare, "/x"), "/gitea/x");
        let api = route("path = \"/app/\"\nrewrite_prefix = \"/api/\"");
        assert_eq!(map_back(&api, "/api/x"), "/app/x");
        assert_eq!(map_back(&api, "/api"), "/app/");
        assert_eq!(map_back(&api, "/other"), "/other");
        let keep = route("path = \"/app\"");
        assert_eq!(map_back(&keep, "/x"), "/x");
    }

    #[test]
    fn upstream_urls_with_a_default_port_match_without_it() {
        let strip = route("path = \"/g/\"\nstrip_prefix = true");
        let bases = Bases {
            upstream: upstream_bases(&strip),
            client_http: Some("http://example.com".into()),
            client_base: Some("https://example.com".into()),
        };
        assert_eq!(
            rewrite_url("http://APP/x?y#z", &strip, &bases).as_deref(),
            Some("https://example.com/g/x?y#z")
        );
        assert_eq!(
            rewrite_url("http://app:80", &strip, &bases).as_deref(),
            Some("https://example.com/g/")
        );
        assert_eq!(rewrite_url("http://application/x", &strip, &bases), None);
        assert_eq!(rewrite_url("//app/x", &strip, &bases), None);
        assert_eq!(rewrite_url("/x", &strip, &bases).as_deref(), Some("/g/x"));
        // Look-alikes of the upstream's URL are other sites.
        assert_eq!(rewrite_url("http://app:80@evil.example/x", &strip, &bases), None);
        assert_eq!(rewrite_url("http://app.evil.example/x", &strip, &bases), None);
        assert_eq!(rewrite_url("http://example.com.evil/x", &strip, &bases), None);
    }

    #[test]
    fn headers_that_are_not_text_are_left_alone() {
        let strip = route("path = \"/g/\"\nstrip_prefix = true\ncookie_path = true");
        let mut headers = HeaderMap::new();
        let odd = HeaderValue::from_bytes(b"/x\xff").unwrap();
        headers.insert(header::LOCATION, odd.clone());
        headers.append(header::SET_COOKIE, odd.clone());
        headers.append(header::SET_COOKIE, HeaderValue::from_static("a=1; Path=/b"));
        let https = HeaderValue::from_static("https");
        rewrite(&mut headers, &strip, &https, None);
        assert_eq!(headers[header::LOCATION], odd);
        let cookies: Vec<_> = headers.get_all(header::SET_COOKIE).iter().collect();
        assert_eq!(cookies, [&odd, &HeaderValue::from_static("a=1; Path=/g/b")]);
    }
}
