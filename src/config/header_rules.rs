//! Header rules as the configuration gives them: `[headers]`, the defaults
//! of every route, and a route's own `request.*` and `response.*` keys,
//! with `upstream_host` and `forwarded_for`. Names are checked and values
//! compiled into placeholder templates at load.

use http::{HeaderName, HeaderValue};

use crate::proxy::placeholder::Template;

/// One header a rule writes.
#[derive(Debug, Clone)]
pub struct HeaderRule {
    pub name: HeaderName,
    pub value: Template,
    /// The value ready to insert, when it names no placeholder.
    pub literal: Option<HeaderValue>,
}

impl HeaderRule {
    pub fn new(name: HeaderName, value: Template) -> Self {
        let literal = if value.is_literal() {
            HeaderValue::from_str(&value.render_literal()).ok()
        } else {
            None
        };
        HeaderRule { name, value, literal }
    }

    /// Whether the value depends on the request.
    pub fn needs_request(&self) -> bool {
        self.literal.is_none()
    }
}

/// `set`, `add` and `remove` for one direction.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    /// Replace every value of the name.
    pub set: Vec<HeaderRule>,
    /// Append a value.
    pub add: Vec<HeaderRule>,
    /// Delete every value of the name.
    pub remove: Vec<HeaderName>,
}

impl RuleSet {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }

    /// Whether a value names a placeholder.
    pub fn needs_request(&self) -> bool {
        self.set.iter().chain(&self.add).any(HeaderRule::needs_request)
    }
}

/// Which responses a response rule set applies to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum When {
    /// Every response, the proxy's own 404, 502 and 504 included (nginx's
    /// `add_header ... always`).
    #[default]
    Always,
    /// 200, 201, 204, 206, 301, 302, 303, 304, 307 and 308, as nginx's
    /// `add_header` without `always`.
    Success,
}

impl When {
    pub fn applies(self, status: u16) -> bool {
        match self {
            When::Always => true,
            When::Success => matches!(status, 200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308),
        }
    }
}

/// The rules of `[headers]`, or of one route.
#[derive(Debug, Clone, Default)]
pub struct HeaderRules {
    pub request: RuleSet,
    pub response: RuleSet,
    /// `response.when`.
    pub response_when: When,
}

/// The Host an upstream receives.
#[derive(Debug, Clone, Default)]
pub enum UpstreamHost {
    /// `"client"`: the Host the client sent (the default, nginx's
    /// `proxy_set_header Host $host`).
    #[default]
    Client,
    /// `"upstream"`: the upstream's own authority (nginx's default).
    Upstream,
    /// Any other text: this value.
    Literal(HeaderValue),
}

/// `forwarded_for`: what X-Forwarded-For carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForwardedFor {
    /// The client's list with the client appended (nginx's
    /// `$proxy_add_x_forwarded_for`).
    #[default]
    Append,
    /// The client alone (nginx's `X-Forwarded-For $remote_addr`).
    Replace,
}

/// A route's header keys.
#[derive(Debug, Clone, Default)]
pub struct RouteHeaders {
    pub rules: HeaderRules,
    /// `response.inherit`: the route's response rules add to those of
    /// `[headers]` (true, the default) or replace them.
    pub response_inherit: bool,
    pub upstream_host: UpstreamHost,
    pub forwarded_for: ForwardedFor,
}
