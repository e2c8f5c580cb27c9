//! What a route matches besides its host (`path_exact`, `path_regex`,
//! `prefix_wins`, `ports`, `methods`), how it rewrites the path it forwards
//! (`strip_prefix`, `rewrite_prefix`, `rewrite`) and whether it answers by
//! itself (`redirect`, `respond`): the typed values `parse/route_shaping.rs`
//! and `parse/route_action.rs` check, grouped so that a route's other keys
//! stay apart from them.

/// A route's path matching and path rewriting.
#[derive(Debug, Clone, Default)]
pub struct RouteShaping {
    /// How the route's `path` text is matched.
    pub kind: PathKind,
    /// `ports`: the listening ports this route answers on; empty for every
    /// port.
    pub ports: Vec<u16>,
    /// `prefix_wins`: a matching prefix route is taken before any regex
    /// route is tried, as nginx's `location ^~`.
    pub prefix_wins: bool,
    /// How the forwarded path is made from the request's.
    pub rewrite: PathRewrite,
    /// `methods`: the methods the route takes (HEAD with GET); empty for
    /// every method. Others are answered 405 with `Allow`.
    pub methods: Vec<http::Method>,
    /// What the route does with a request it takes.
    pub action: RouteAction,
    /// `request.*`, `response.*`, `upstream_host`, `forwarded_for`.
    pub headers: crate::config::RouteHeaders,
    /// `redirect_rewrite`, `cookie_path`, `cookie_flags`.
    pub upstream_urls: UpstreamUrls,
}

/// How the upstream's own URLs in a response are made the client's.
#[derive(Debug, Clone, Default)]
pub struct UpstreamUrls {
    /// `redirect_rewrite`: `Location` and `Refresh` naming the upstream, or
    /// `http://` and the client's host, are rewritten to what the client
    /// used, the path prefix mapped back. Default: on with `strip_prefix`
    /// or `rewrite_prefix`.
    pub redirects: bool,
    /// `cookie_path`: a `Set-Cookie` `Path=` under the upstream's prefix
    /// mapped back to the route's.
    pub cookie_path: bool,
    /// `cookie_flags`: per cookie name, the attributes set on it, as
    /// (lower-case attribute name, text to append).
    pub cookie_flags: Vec<(String, Vec<(String, String)>)>,
}

impl UpstreamUrls {
    /// Whether any response rewriting is configured.
    pub fn any(&self) -> bool {
        self.redirects || self.cookie_path || !self.cookie_flags.is_empty()
    }
}

/// What a route does with a request: forward it, or answer by itself.
#[derive(Debug, Clone, Default)]
pub enum RouteAction {
    /// `upstream`: forward it.
    #[default]
    Proxy,
    /// `redirect` with `status`: answer with a `Location` made from the
    /// request by the template.
    Redirect {
        to: crate::proxy::placeholder::Template,
        status: http::StatusCode,
    },
    /// `respond = { status, body }`: a fixed answer.
    Respond { status: http::StatusCode, body: String },
    /// `root` or `alias`: serve files (`RouteConfig::files`), forwarding
    /// only what `try_files` sends to its `@name`.
    Files,
}

/// How a route's path is matched against the normalised request path.
#[derive(Debug, Clone, Default)]
pub enum PathKind {
    /// `path`: the longest prefix on a segment boundary wins.
    #[default]
    Prefix,
    /// `path_exact`: the whole path, byte for byte.
    Exact,
    /// `path_regex`: a regex (linear time), first match in file order.
    Regex(regex::Regex),
}

/// How the forwarded path is made.
#[derive(Debug, Clone, Default)]
pub enum PathRewrite {
    /// The path as routing read it (or as sent, with `path_normalization = "off"`).
    #[default]
    Keep,
    /// `strip_prefix = true` (`"/"`) or `rewrite_prefix`: the route's prefix
    /// replaced by this text, the bytes after it kept.
    Prefix(String),
    /// `rewrite` of a `path_regex` route: `$1`, `${name}` expanded from the
    /// regex's captures.
    Regex(String),
}

impl RouteShaping {
    /// Whether the route takes requests arriving on listening port `port`.
    pub fn takes_port(&self, port: u16) -> bool {
        self.ports.is_empty() || self.ports.contains(&port)
    }

    /// Whether the route takes `method`: HEAD goes with GET, as in nginx's
    /// `limit_except`.
    pub fn takes_method(&self, method: &http::Method) -> bool {
        self.methods.is_empty()
            || self.methods.contains(method)
            || (method == http::Method::HEAD && self.methods.contains(&http::Method::GET))
    }
}
