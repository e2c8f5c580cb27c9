//! A passthrough stream's routes: the ClientHello's server name to an
//! upstream, exact names first, then `*.` wildcards (one label, as in
//! certificates), then the stream's `default`.

use std::collections::HashMap;

use crate::config::{SniRoute, TcpUpstream};

/// Why no route took a connection, when no `default` does either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Miss {
    /// The ClientHello named no server.
    NoSni,
    /// No route has the name.
    Unknown,
}

#[derive(Debug)]
pub(crate) struct SniRoutes {
    exact: HashMap<String, TcpUpstream>,
    /// `*.example.com` kept as `example.com`.
    wildcard: HashMap<String, TcpUpstream>,
    default: Option<TcpUpstream>,
}

impl SniRoutes {
    /// The routes as configured: names in lower case, each once.
    pub(crate) fn new(routes: &[SniRoute], default: Option<TcpUpstream>) -> Self {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for route in routes {
            match route.sni.strip_prefix("*.") {
                Some(parent) => wildcard.insert(parent.to_string(), route.upstream.clone()),
                None => exact.insert(route.sni.clone(), route.upstream.clone()),
            };
        }
        SniRoutes {
            exact,
            wildcard,
            default,
        }
    }

    /// The upstream for a ClientHello naming `sni` (lower case, as
    /// `client_hello` gives it).
    pub(crate) fn pick(&self, sni: Option<&str>) -> Result<&TcpUpstream, Miss> {
        let routed = sni.and_then(|name| {
            self.exact.get(name).or_else(|| {
                let (label, parent) = name.split_once('.')?;
                (!label.is_empty()).then(|| self.wildcard.get(parent)).flatten()
            })
        });
        match (routed, &self.default, sni) {
            (Some(upstream), _, _) => Ok(upstream),
            (None, Some(default), _) => Ok(default),
            (None, None, None) => Err(Miss::NoSni),
            (None, None, Some(_)) => Err(Miss::Unknown),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(port: u16) -> TcpUpstream {
        TcpUpstream {
            host: "127.0.0.1".into(),
            port,
        }
    }

    fn route(sni: &str, port: u16) -> SniRoute {
        SniRoute {
            sni: sni.into(),
            upstream: up(port),
        }
    }

    #[test]
    fn exact_then_one_label_wildcard_then_default() {
        let routes = [
            route("a.example", 1),
            route("*.example", 2),
            route("*.in.example", 3),
        ];
        let table = SniRoutes::new(&routes, None);
        let port = |sni: Option<&str>| table.pick(sni).map(|u| u.port);
        assert_eq!(port(Some("a.example")), Ok(1));
        assert_eq!(port(Some("b.example")), Ok(2));
        assert_eq!(port(Some("x.in.example")), Ok(3));
        assert_eq!(port(Some("x.y.in.example")), Err(Miss::Unknown));
        assert_eq!(port(Some("example")), Err(Miss::Unknown));
        assert_eq!(port(Some(".example")), Err(Miss::Unknown));
        assert_eq!(port(None), Err(Miss::NoSni));
        let table = SniRoutes::new(&routes, Some(up(9)));
        assert_eq!(table.pick(Some("other")).map(|u| u.port), Ok(9));
        assert_eq!(table.pick(None).map(|u| u.port), Ok(9));
    }
}
