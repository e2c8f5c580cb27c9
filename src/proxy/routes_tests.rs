//! The compiled matcher against the plain definition of which route wins,
//! written as a scan over every route.

use super::*;
use crate::config::RouteConfig;

fn table(toml: &str) -> Option<RouteTable<()>> {
    // A listener on a port chosen at start, so that any route port may be its.
    let toml = format!("[server]\nlisten = [\"127.0.0.1:0\"]\n{toml}");
    let config = crate::config::from_str(&toml, std::path::Path::new("proxy.toml")).ok()?;
    let routes = config
        .routes
        .into_iter()
        .map(|config| Route { config, state: () })
        .collect();
    Some(RouteTable::new(routes))
}

/// The definition: by host (exact, then `*.` of its parent, then none), the
/// routes that take the port; an exact path; else the prefix equal to the
/// path, the slash redirect, or the longest prefix on a segment boundary,
/// if it has `prefix_wins`; else the first regex in file order; else that
/// prefix. Among equal keys, a route bound to ports before one that is
/// not, then file order.
fn linear(routes: &[&RouteConfig], host: Option<&str>, port: u16, path: &str) -> Option<(usize, How)> {
    let host = host.map(|h| strip_port(h).to_ascii_lowercase());
    let wildcard = host
        .as_deref()
        .and_then(|h| h.split_once('.'))
        .map(|(_, parent)| format!("*.{parent}"));
    let groups = [host, wildcard, None];
    for (n, group) in groups.iter().enumerate() {
        if n < 2 && group.is_none() {
            continue;
        }
        let candidates: Vec<usize> = (0..routes.len())
            .filter(|&i| routes[i].host == *group && routes[i].shaping.takes_port(port))
            .collect();
        let rank = |i: &usize| (routes[*i].shaping.ports.is_empty(), *i);
        let exact = candidates
            .iter()
            .filter(|&&i| matches!(routes[i].shaping.kind, PathKind::Exact) && routes[i].path == path)
            .min_by_key(|i| rank(i));
        if let Some(&i) = exact {
            return Some((i, How::Exact));
        }
        let prefixes: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&i| matches!(routes[i].shaping.kind, PathKind::Prefix))
            .collect();
        let equal = prefixes
            .iter()
            .filter(|&&i| routes[i].path == path)
            .min_by_key(|i| rank(i));
        let slash = prefixes
            .iter()
            .filter(|&&i| routes[i].path.len() > 1 && routes[i].path.strip_suffix('/') == Some(path))
            .min_by_key(|i| rank(i));
        let longest = prefixes
            .iter()
            .filter(|&&i| prefix_matches(&routes[i].path, path))
            .min_by_key(|&&i| (std::cmp::Reverse(routes[i].path.len()), rank(&i)));
        let prefix = match (equal, slash, longest) {
            (Some(&i), _, _) => Some((i, How::Prefix)),
            (None, Some(&i), _) => Some((i, How::AddSlash)),
            (None, None, Some(&i)) => Some((i, How::Prefix)),
            _ => None,
        };
        if let Some((i, _)) = prefix {
            if routes[i].shaping.prefix_wins {
                return prefix;
            }
        }
        let regex = candidates
            .iter()
            .find(|&&i| matches!(&routes[i].shaping.kind, PathKind::Regex(r) if r.is_match(path)));
        if let Some(&i) = regex {
            return Some((i, How::Regex));
        }
        if prefix.is_some() {
            return prefix;
        }
    }
    None
}

fn found<T>(table: &RouteTable<T>, host: Option<&str>, port: u16, path: &str) -> Option<(usize, How)> {
    let matched = table.find(host, port, path)?;
    let index = table.iter().position(|r| Arc::ptr_eq(r, matched.route))?;
    Some((index, matched.how))
}

#[test]
fn segment_boundaries() {
    assert!(prefix_matches("/ws", "/ws"));
    assert!(prefix_matches("/ws", "/ws/"));
    assert!(prefix_matches("/ws", "/ws/a"));
    assert!(!prefix_matches("/ws", "/wsx"));
    assert!(!prefix_matches("/ws", "/w"));
    assert!(prefix_matches("/", "/anything"));
    assert!(prefix_matches("/api/", "/api/v1"));
    assert!(!prefix_matches("/api/", "/api"));
}

#[test]
fn ports_are_ignored_in_hosts() {
    assert_eq!(strip_port("example.com:443"), "example.com");
    assert_eq!(strip_port("example.com"), "example.com");
    assert_eq!(strip_port("[::1]:8443"), "[::1]");
    assert_eq!(strip_port("[::1]"), "[::1]");
}

#[test]
fn exact_then_regex_then_prefix_and_prefix_wins() {
    let up = "upstream = \"http://127.0.0.1:1\"";
    let toml = format!(
        "[[route]]\npath = \"/\"\n{up}\n\
         [[route]]\npath_exact = \"/static/a.js\"\n{up}\n\
         [[route]]\npath_regex = \"\\\\.js$\"\n{up}\n\
         [[route]]\npath = \"/static\"\n{up}\n\
         [[route]]\npath = \"/assets\"\nprefix_wins = true\n{up}\n\
         [[route]]\npath = \"/gitea/\"\n{up}\n\
         [[route]]\nhost = \"*.example.com\"\npath = \"/\"\n{up}\n\
         [[route]]\npath = \"/\"\nports = [9001]\n{up}\n"
    );
    let table = table(&toml).expect("valid");
    let at = |path: &str| found(&table, Some("localhost"), 443, path);
    assert_eq!(at("/static/a.js"), Some((1, How::Exact)));
    assert_eq!(at("/static/b.js"), Some((2, How::Regex)));
    assert_eq!(at("/static/b.css"), Some((3, How::Prefix)));
    assert_eq!(at("/assets/b.js"), Some((4, How::Prefix)));
    assert_eq!(at("/gitea"), Some((5, How::AddSlash)));
    assert_eq!(at("/gitea/x"), Some((5, How::Prefix)));
    assert_eq!(at("/giteax"), Some((0, How::Prefix)));
    assert_eq!(
        found(&table, Some("A.Example.com:8443"), 443, "/x"),
        Some((6, How::Prefix))
    );
    assert_eq!(
        found(&table, Some("a.b.example.com"), 443, "/x"),
        Some((0, How::Prefix))
    );
    assert_eq!(
        found(&table, Some("example.com"), 443, "/x"),
        Some((0, How::Prefix))
    );
    assert_eq!(
        found(&table, Some("localhost"), 9001, "/x"),
        Some((7, How::Prefix))
    );
    assert_eq!(
        found(&table, Some("localhost"), 9001, "/static/x"),
        Some((3, How::Prefix))
    );
}

/// One random route: host, how its path matches, ports, prefix_wins.
fn route_text(host: u8, kind: u8, path: &str, ports: u8, wins: bool) -> String {
    let mut text = String::from("[[route]]\nupstream = \"http://127.0.0.1:1\"\n");
    match host {
        0 => {}
        1 => text.push_str("host = \"x.test\"\n"),
        _ => text.push_str("host = \"*.test\"\n"),
    }
    match kind {
        0 => text.push_str(&format!("path_exact = \"{path}\"\n")),
        1 => {
            let regex = format!("^{}", regex::escape(path)).replace('\\', "\\\\");
            text.push_str(&format!("path_regex = \"{regex}\"\n"));
        }
        2 => text.push_str("path_regex = \"b$\"\n"),
        _ => {
            text.push_str(&format!("path = \"{path}\"\n"));
            if wins {
                text.push_str("prefix_wins = true\n");
            }
        }
    }
    match ports {
        0 | 1 => {}
        2 => text.push_str("ports = [1]\n"),
        _ => text.push_str("ports = [1, 2]\n"),
    }
    text
}

fn paths() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::strategy::Strategy as _;
    (
        proptest::collection::vec(proptest::sample::select(&["a", "b", "ab", ""][..]), 0..4),
        proptest::bool::ANY,
    )
        .prop_map(|(segments, slash)| {
            let mut path = format!("/{}", segments.join("/"));
            if slash && !path.ends_with('/') {
                path.push('/');
            }
            crate::proxy::path::normalize(&path).map_or(path.clone(), |p| p.into_owned())
        })
}

proptest::proptest! {
    /// Whatever the routes and the request, the compiled table picks the
    /// route the scan picks.
    #[test]
    fn compiled_matcher_agrees_with_the_definition(
        specs in proptest::collection::vec(
            (0u8..3, 0u8..6, paths(), 0u8..4, proptest::bool::ANY),
            1..12,
        ),
        requests in proptest::collection::vec(
            (proptest::sample::select(&["x.test", "y.test", "X.TEST:8443", "z.y.test", "other"][..]), 1u16..4, paths()),
            1..16,
        ),
    ) {
        // Random sets hold duplicates, which the configuration refuses.
        let mut seen = std::collections::HashSet::new();
        let toml: String = specs
            .iter()
            .filter(|(host, kind, path, ports, _)| {
                let path = if *kind == 2 { "" } else { path.as_str() };
                let kind = if *kind > 2 { 3 } else { *kind };
                seen.insert((*host, kind, path.to_string(), ports.max(&1)))
            })
            .map(|(host, kind, path, ports, wins)| route_text(*host, *kind, path, *ports, *wins))
            .collect();
        let table = table(&toml);
        proptest::prop_assert!(table.is_some(), "{}", toml);
        let Some(table) = table else {
            return Ok(());
        };
        let configs: Vec<&RouteConfig> = table.iter().map(|r| &r.config).collect();
        for (host, port, path) in requests {
            let path = match crate::proxy::path::normalize(&path) {
                Ok(p) => p.into_owned(),
                Err(_) => continue,
            };
            proptest::prop_assert_eq!(
                found(&table, Some(host), port, &path),
                linear(&configs, Some(host), port, &path),
                "{} {} {}\n{}", host, port, path, toml
            );
        }
    }
}
