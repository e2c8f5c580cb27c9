//! The route keys of path matching and rewriting, as the configuration
//! check reports them: file:line:column, the key, what is wrong, and what
//! to write instead.

use std::path::Path;

use portcullis::config::{from_str, ConfigErrors};

const UP: &str = "upstream = \"http://127.0.0.1:8080\"\n";

fn errors(routes: &str) -> ConfigErrors {
    match from_str(routes, Path::new("proxy.toml")) {
        Ok(config) => panic!("expected errors, got {config:#?}"),
        Err(errors) => errors,
    }
}

/// The one error of a single route with `keys`, as printed.
fn error(keys: &str) -> String {
    let errors = errors(&format!("[[route]]\n{UP}{keys}"));
    assert_eq!(errors.len(), 1, "expected exactly one error, got:\n{errors}");
    errors.0[0].to_string()
}

#[test]
fn a_route_matches_its_path_one_way() {
    assert_eq!(
        error("path = \"/a\"\npath_exact = \"/a\"\n"),
        "proxy.toml:4:14: route[0].path_exact: `path` and `path_exact` in one route: a route matches its path one way\n  help: keep one of them, and write another [[route]] for the other"
    );
    let e = error("prefix_wins = true\n");
    assert!(e.contains("route[0].path: this route has no `path`"), "{e}");
}

#[test]
fn an_exact_path_must_be_one_a_request_can_have() {
    assert_eq!(
        error("path_exact = \"/a/./b//c\"\n"),
        "proxy.toml:3:14: route[0].path_exact: `/a/./b//c` is never the path of a request: paths are normalised before matching\n  help: write path_exact = \"/a/b/c\""
    );
    assert!(error("path_exact = \"sw.js\"\n").contains("help: write path = \"/sw.js\""));
}

#[test]
fn a_bad_regex_is_reported_with_its_syntax() {
    let e = error("path_regex = \"^/(a\"\n");
    assert!(
        e.starts_with("proxy.toml:3:14: route[0].path_regex: invalid regex: "),
        "{e}"
    );
    assert!(e.contains("unclosed group"), "{e}");
    assert!(e.contains("help: the syntax is the regex crate's"), "{e}");
    // Look-around, which nginx's PCRE has, is named as missing.
    assert!(error("path_regex = \"^/(?!admin)\"\n").contains("look-around"));
}

#[test]
fn rewrites_apply_to_their_own_kind_of_route() {
    assert_eq!(
        error("path = \"/a\"\nrewrite = \"/b\"\n"),
        "proxy.toml:4:11: route[0].rewrite: `rewrite` applies to a regex route (`path_regex`), and this route has none\n  help: for a prefix route write strip_prefix = true or rewrite_prefix = \"/new/\""
    );
    assert_eq!(
        error("path_regex = \"^/a\"\nstrip_prefix = true\n"),
        "proxy.toml:4:16: route[0].strip_prefix: `strip_prefix` applies to a prefix route (`path`), and this route has none\n  help: match the path with `path`, or remove the key (a regex route rewrites with `rewrite`)"
    );
    assert!(error("path_exact = \"/a\"\nprefix_wins = true\n")
        .contains("route[0].prefix_wins: `prefix_wins` applies to a prefix route"));
    assert_eq!(
        error("path = \"/a\"\nstrip_prefix = true\nrewrite_prefix = \"/b/\"\n"),
        "proxy.toml:5:18: route[0].rewrite_prefix: `strip_prefix` and `rewrite_prefix` in one route\n  help: keep one: strip_prefix = true is rewrite_prefix = \"/\""
    );
    assert!(error("path = \"/a\"\nrewrite_prefix = \"b/\"\n").contains("help: write path = \"/b/\""));
}

#[test]
fn a_rewrite_names_only_groups_the_regex_has() {
    assert_eq!(
        error("path_regex = \"^/s/(.*)$\"\nrewrite = \"/$2\"\n"),
        "proxy.toml:4:11: route[0].rewrite: `/$2` names a group `2` the regex does not have\n  help: the regex has groups $1 to $1; write $$ for a literal $"
    );
    assert!(error("path_regex = \"^/s/(.*)$\"\nrewrite = \"/$1x\"\n")
        .contains("write ${1} to follow a group number with text"));
    assert!(error("path_regex = \"^/s/(.*)$\"\nrewrite = \"s/$1\"\n").contains("does not start with `/`"));
}

#[test]
fn ports_are_listening_ports() {
    assert_eq!(
        error("path = \"/\"\nports = [9001]\n"),
        "proxy.toml:4:10: route[0].ports[0]: nothing listens on port 9001: this route would never be matched\n  help: add an address with port 9001 to [server] listen (or [http] listen), or write a port listened on: 8443"
    );
    let listening = "[server]\nlisten = [\"127.0.0.1:8443\", \"127.0.0.1:9001\"]\n[http]\nlisten = [\"127.0.0.1:8080\"]\n";
    let ok = format!("{listening}[[route]]\n{UP}path = \"/\"\nports = [9001, 8080]\n");
    if let Err(e) = from_str(&ok, Path::new("proxy.toml")) {
        panic!("{e}");
    }
    assert_eq!(
        error("path = \"/\"\nports = []\n"),
        "proxy.toml:4:9: route[0].ports: an empty list would match no request\n  help: remove `ports` to answer on every listening port, or list some: ports = [9001]"
    );
    assert_eq!(
        error("path = \"/\"\nports = [0, 8443]\n"),
        "proxy.toml:4:10: route[0].ports[0]: a listening port is a number from 1 to 65535\n  help: for example: ports = [9001]"
    );
    assert!(error("path = \"/\"\nports = 9001\n").contains("expected a list of ports, found an integer"));
    assert!(error("path = \"/\"\nport = [9001]\n").contains("portcullis calls this setting `ports`"));
}

#[test]
fn two_routes_alike_in_kind_path_and_ports_are_one_too_many() {
    let route = |keys: &str| format!("[[route]]\n{UP}{keys}");
    let server = "[server]\nlisten = [\"127.0.0.1:0\"]\n".to_string();
    let text = [
        server.clone(),
        route("path_exact = \"/a\"\n"),
        route("path = \"/a\"\n"),
        route("path = \"/a\"\nports = [1]\n"),
        route("path_exact = \"/a\"\n"),
    ]
    .concat();
    let errors = errors(&text);
    assert_eq!(errors.len(), 1, "{errors}");
    assert!(
        errors.0[0]
            .to_string()
            .contains("already has path `= /a` (any host)"),
        "{errors}"
    );
    // Told apart by host, kind or ports, they are fine.
    let ok = [
        server,
        route("path_exact = \"/a\"\n"),
        route("path = \"/a\"\n"),
        route("path = \"/a\"\nports = [1]\n"),
        route("path = \"/a\"\nhost = \"*.example.com\"\n"),
        route("path_regex = \"^/a\"\n"),
    ]
    .concat();
    if let Err(e) = from_str(&ok, Path::new("proxy.toml")) {
        panic!("{e}");
    }
}

#[test]
fn a_route_forwards_redirects_or_responds() {
    let e = error("path = \"/\"\nredirect = \"/x\"\n");
    assert_eq!(
        e,
        "proxy.toml:4:12: route[0].redirect: `upstream` and `redirect` in one route: a route forwards, redirects or responds\n  help: keep one of them, and write another [[route]] for the other"
    );
    let answer = |keys: &str| {
        let errors = errors(&format!("[[route]]\npath = \"/\"\n{keys}"));
        assert_eq!(errors.len(), 1, "{errors}");
        errors.0[0].to_string()
    };
    assert_eq!(
        answer("redirect = \"https://x{uri}\"\n"),
        "proxy.toml:3:12: route[0].redirect: unknown placeholder `{uri}`\n  help: valid placeholders: {client_ip}, {client_port}, {scheme}, {host}, {server_port}, {request_id}, {path}, {query}, {tls_version}, {tls_cipher}, {sni}, {client_cert_subject}, {client_cert_sha256}; write {{ for a literal {"
    );
    assert_eq!(
        answer("redirect = \"/x\"\nstatus = 200\n"),
        "proxy.toml:4:10: route[0].status: 200 is not a redirect status\n  help: write 301 or 308 (permanent), 302 or 307 (temporary); 307 and 308 keep the method and body"
    );
    assert!(answer(&format!("{UP}status = 301\n")).contains("route[0].status: `status` goes with `redirect`"));
    assert!(answer("respond = { status = 99 }\n")
        .contains("route[0].respond.status: 99 is not a status a route can answer with"));
    assert!(answer("respond = { code = 404 }\n").contains("portcullis calls this setting `status`"));
    assert!(answer("respond = 404\n").contains("route[0].respond: expected a table, found an integer"));
    assert!(answer(&format!("{UP}methods = [\"get\"]\n"))
        .contains("`get` is not written in capitals; methods are case-sensitive\n  help: write \"GET\""));
    assert!(answer(&format!("{UP}methods = []\n")).contains("expected a non-empty list of methods"));
    assert!(answer(&format!("{UP}return = \"/x\"\n")).contains("portcullis calls this setting `redirect`"));
    // Without `upstream`, `redirect` or `respond`, the upstream is what is missing.
    assert!(answer("").contains("route[0].upstream: this route has no `upstream`"));
}

#[test]
fn header_rules_are_checked_by_name_and_placeholder() {
    let one = |text: &str| {
        let errors = errors(&format!("{text}\n[[route]]\npath = \"/\"\n{UP}"));
        assert_eq!(errors.len(), 1, "{errors}");
        errors.0[0].to_string()
    };
    assert_eq!(
        one("[headers]\nrequest.set = { \"X-Port\" = \"{port}\" }"),
        "proxy.toml:2:28: headers.request.set.\"X-Port\": unknown placeholder `{port}`\n  help: valid placeholders: {client_ip}, {client_port}, {scheme}, {host}, {server_port}, {request_id}, {path}, {query}, {tls_version}, {tls_cipher}, {sni}, {client_cert_subject}, {client_cert_sha256}; write {{ for a literal {"
    );
    assert_eq!(
        one("[headers]\nrequest.set = { \"Host\" = \"x\" }"),
        "proxy.toml:2:17: headers.request.set.\"Host\": `Host` is the proxy's own header: rules cannot change it\n  help: write upstream_host = \"upstream\" or upstream_host = \"name\" on the route"
    );
    assert!(one("[headers]\nrequest.remove = [\"X-Forwarded-For\"]")
        .contains("write forwarded_for = \"replace\""));
    assert!(one("[headers]\nresponse.set = { \"Connection\" = \"close\" }")
        .contains("hop-by-hop headers belong to each connection"));
    // X-Real-IP is the proxy's on the way in only.
    let ok = format!("[headers]\nresponse.set = {{ \"X-Real-IP\" = \"x\" }}\n[[route]]\npath = \"/\"\n{UP}");
    if let Err(e) = from_str(&ok, Path::new("proxy.toml")) {
        panic!("{e}");
    }
    assert!(one("[headers]\nresponse.inherit = false").contains("`inherit` is a route's choice"));
    assert!(one("[headers]\nresponse.when = \"never\"").contains("write \"always\" (every response"));
    assert!(one("[headers]\nresponse.set = { \"X-A\" = \"a\\nb\" }")
        .contains("a header value cannot hold a line break"));
    assert!(
        one("[headers]\nresponse.set = { \"Bad Name\" = \"1\" }").contains("`Bad Name` is not a header name")
    );
    assert!(one("[headers]\nresponse.add_header = { \"X-A\" = \"1\" }")
        .contains("portcullis calls this setting `add`"));
    assert!(error("path = \"/\"\nupstream_host = \"a b\"\n").contains("`a b` is not a host[:port]"));
    assert!(error("path = \"/\"\nforwarded_for = \"remote_addr\"\n").contains("write \"append\""));
    assert!(error("path = \"/\"\nproxy_set_header = 1\n").contains("portcullis calls this setting `request`"));
}

#[test]
fn cookie_flags_are_flags_portcullis_sets() {
    assert_eq!(
        error("path = \"/\"\ncookie_flags = { sid = \"secure; partitioned\" }\n"),
        "proxy.toml:4:24: route[0].cookie_flags.sid: `partitioned` is not a cookie flag portcullis sets\n  help: write some of: secure, httponly, samesite=strict, samesite=lax, samesite=none, separated by `;`"
    );
    assert!(error("path = \"/\"\ncookie_flags = \"secure\"\n")
        .contains("expected a table of cookie names and flags"));
    assert!(error("path = \"/\"\nproxy_redirect = false\n")
        .contains("portcullis calls this setting `redirect_rewrite`"));
}
