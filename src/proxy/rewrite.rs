//! The target a route forwards: the path routing read (or the one the
//! client sent, with `path_normalization = "off"`), its prefix replaced
//! (`strip_prefix`, `rewrite_prefix`) or rewritten by the route's regex
//! (`rewrite`), and the client's query after it.

use http::uri::PathAndQuery;
use http::Uri;

use super::refusal::Refusal;
use super::routes::prefix_matches;
use crate::config::{PathKind, PathRewrite, RouteConfig};

/// The origin-form target sent upstream for a request to `uri` on `route`,
/// with `normalized` the normalised path when it differs from the sent one.
pub(crate) fn target(
    route: &RouteConfig,
    uri: &Uri,
    normalized: Option<&str>,
) -> Result<PathAndQuery, Refusal> {
    let sent = uri.path();
    let rebuilt = match &route.shaping.rewrite {
        PathRewrite::Keep => match normalized {
            // Nearly every request: the target goes on as it came.
            None => return Ok(as_sent(uri)),
            Some(_) if !route.path_normalization => return Ok(as_sent(uri)),
            Some(normal) => normal.to_string(),
        },
        PathRewrite::Prefix(replacement) => {
            let routed = normalized.unwrap_or(sent);
            // The bytes after the prefix are kept: those of the path
            // forwarded without a rewrite, so `path_normalization = "off"`
            // still sends what the client wrote when its path starts with
            // the prefix as written. One that reaches the prefix only once
            // normalised gets the normalised rest.
            let rest = if !route.path_normalization && prefix_matches(&route.path, sent) {
                &sent[route.path.len()..]
            } else {
                routed.get(route.path.len()..).unwrap_or("")
            };
            join(replacement, rest)
        }
        PathRewrite::Regex(template) => {
            let routed = normalized.unwrap_or(sent);
            let PathKind::Regex(regex) = &route.shaping.kind else {
                return Err(Refusal::PathNotRebuilt);
            };
            let captures = regex.captures(routed).ok_or(Refusal::PathNotRebuilt)?;
            let mut out = String::with_capacity(template.len() + routed.len());
            captures.expand(template, &mut out);
            out
        }
    };
    let mut text = rebuilt;
    if let Some(query) = uri.query() {
        // A rewrite that writes its own query keeps the client's after it,
        // as nginx's `rewrite` does.
        text.push(if text.contains('?') { '&' } else { '?' });
        text.push_str(query);
    }
    PathAndQuery::try_from(text).map_err(|_| Refusal::PathNotRebuilt)
}

fn as_sent(uri: &Uri) -> PathAndQuery {
    uri.path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"))
}

/// `replacement` then `rest`, with one slash where both bring one.
fn join(replacement: &str, rest: &str) -> String {
    let rest = match (replacement.ends_with('/'), rest.strip_prefix('/')) {
        (true, Some(after)) => after,
        _ => rest,
    };
    let mut out = String::with_capacity(replacement.len() + rest.len());
    out.push_str(replacement);
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_keep_one_slash() {
        assert_eq!(join("/", "/x"), "/x");
        assert_eq!(join("/", "x"), "/x");
        assert_eq!(join("/", ""), "/");
        assert_eq!(join("/api/", "/x%2Fy"), "/api/x%2Fy");
        assert_eq!(join("/api", "/x"), "/api/x");
        assert_eq!(join("/api", ""), "/api");
    }
}
