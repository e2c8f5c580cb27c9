//! Microbenchmarks of the per-request and per-handshake paths that do not
//! touch the network: route matching, header rewriting, certificate lookup
//! by SNI.
//!
//! ```text
//! cargo bench --bench hot_paths
//! cargo bench --bench hot_paths -- route     # a subset, by name filter
//! ```

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::header::{HeaderMap, HeaderName, HeaderValue};

use portcullis::config::RouteConfig;
use portcullis::proxy::client_cert;
use portcullis::proxy::headers::{add_forwarding, join_cookies, remove_hop_by_hop};
use portcullis::proxy::routes::{Route, RouteTable};
use portcullis::tls::selfsigned;
use portcullis::tls::store::CertStore;

// ---------------------------------------------------------------- routes

/// A configuration with the usual two routes plus some host-specific and
/// API routes, so matching has to skip entries before it finds a hit.
fn route_configs() -> Vec<RouteConfig> {
    let mut text = String::from("[server]\nlisten = [\"127.0.0.1:8443\"]\n\n");
    let mut add = |host: Option<&str>, path: &str, port: u16| {
        text.push_str("[[route]]\n");
        if let Some(h) = host {
            text.push_str(&format!("host = \"{h}\"\n"));
        }
        text.push_str(&format!(
            "path = \"{path}\"\nupstream = \"http://127.0.0.1:{port}\"\n\n"
        ));
    };
    add(None, "/", 8080);
    add(None, "/ws", 9222);
    add(None, "/api", 8081);
    add(None, "/api/v2", 8082);
    add(None, "/static/", 8083);
    add(None, "/events", 8084);
    for i in 0..6 {
        add(Some(&format!("tenant{i}.example.com")), "/", 9000 + i);
        add(Some(&format!("tenant{i}.example.com")), "/ws", 9100 + i);
    }
    let config = portcullis::config::from_str(&text, Path::new("bench.toml"))
        .unwrap_or_else(|e| panic!("bench configuration does not parse:\n{e}"));
    config.routes
}

fn routes(c: &mut Criterion) {
    let table = RouteTable::new(
        route_configs()
            .into_iter()
            .map(|config| Route { config, state: () })
            .collect(),
    );
    let mut g = c.benchmark_group("route_match");
    let cases: &[(&str, Option<&str>, &str)] = &[
        ("root", Some("app.example.com"), "/index.html"),
        ("ws", Some("app.example.com:443"), "/ws"),
        ("api_deep", Some("app.example.com"), "/api/v2/users/42/orders"),
        ("host_specific", Some("tenant5.example.com"), "/ws/room/7"),
        ("no_host", None, "/static/app.js"),
    ];
    for &(name, host, path) in cases {
        assert!(table.find(host, 443, path).is_some(), "{name} must match");
        g.bench_function(name, |b| {
            b.iter(|| {
                table
                    .find(black_box(host), 443, black_box(path))
                    .map(|m| m.route.config.path.len())
            })
        });
    }
    g.finish();
}

/// Matching against 2 and against 1000 routes (prefixes, exact paths and
/// hosts): the compiled table should cost the same for both.
fn route_scale(c: &mut Criterion) {
    let table = |n: usize| {
        let mut text = String::from("[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:8080\"\n");
        for i in 1..n {
            let key = match i % 3 {
                0 => format!("path = \"/app{i}/api\""),
                1 => format!("path_exact = \"/exact{i}\""),
                _ => format!("host = \"tenant{i}.example.com\"\npath = \"/\""),
            };
            text.push_str(&format!(
                "[[route]]\n{key}\nupstream = \"http://127.0.0.1:8080\"\n"
            ));
        }
        let config = portcullis::config::from_str(&text, Path::new("bench.toml"))
            .unwrap_or_else(|e| panic!("bench configuration does not parse:\n{e}"));
        RouteTable::new(
            config
                .routes
                .into_iter()
                .map(|config| Route { config, state: () })
                .collect(),
        )
    };
    let mut g = c.benchmark_group("route_scale");
    for n in [2, 1000] {
        let table = table(n);
        let path = "/app999/api/v1/users/42";
        g.bench_function(format!("{n}_routes"), |b| {
            b.iter(|| {
                table
                    .find(black_box(Some("app.example.com")), 443, black_box(path))
                    .map(|m| m.route.config.path.len())
            })
        });
    }
    g.finish();
}

/// The request header rules of a route with five `set` rules (three
/// literal, two placeholders), as nginx configurations write them.
fn header_rules(c: &mut Criterion) {
    let text = r#"
[headers]
request.set = { "X-Forwarded-Port" = "{server_port}", "X-Forwarded-Ssl" = "on" }
[[route]]
path = "/"
upstream = "http://127.0.0.1:8080"
request.set = { "X-Scheme" = "{scheme}", "Accept-Encoding" = "gzip", "X-Frame" = "1" }
"#;
    let config = portcullis::config::from_str(text, Path::new("bench.toml"))
        .unwrap_or_else(|e| panic!("bench configuration does not parse:\n{e}"));
    let registry = Arc::new(portcullis::connections::ConnRegistry::default());
    let registration = registry.open(([203, 0, 113, 7], 50000).into());
    let conn = portcullis::proxy::ConnInfo::new(registration.conn().clone(), true).with_server_port(443);
    let upstream = HeaderValue::from_static("127.0.0.1:8080");
    let route = &config.routes[0].shaping.headers;
    let h1 = browser_h1();
    c.bench_function("header_rules/five_set", |b| {
        b.iter_batched_ref(
            || h1.clone(),
            |m| {
                portcullis::proxy::rules::apply_request(
                    black_box(m),
                    &config.headers,
                    route,
                    &upstream,
                    (&conn, conn.peer),
                    ("/index.html", None),
                )
            },
            BatchSize::SmallInput,
        )
    });
}

// --------------------------------------------------------------- headers

fn header_map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut m = HeaderMap::new();
    for (k, v) in pairs {
        m.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    m
}

/// What a browser sends on HTTP/1.1 to an application page.
fn browser_h1() -> HeaderMap {
    header_map(&[
        ("host", "app.example.com"),
        ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"),
        ("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
        ("accept-language", "en-US,en;q=0.9"),
        ("accept-encoding", "gzip, deflate, br"),
        ("connection", "keep-alive"),
        ("keep-alive", "timeout=5"),
        ("cookie", "session=abcdef0123456789; theme=dark; csrftoken=zyx987"),
        ("sec-fetch-mode", "navigate"),
        ("sec-fetch-site", "same-origin"),
        ("upgrade-insecure-requests", "1"),
        ("referer", "https://app.example.com/dashboard"),
    ])
}

/// The same over HTTP/2: no Connection header, cookies split in fields.
fn browser_h2() -> HeaderMap {
    header_map(&[
        ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"),
        ("accept", "application/json"),
        ("accept-language", "en-US,en;q=0.9"),
        ("accept-encoding", "gzip, deflate, br"),
        ("cookie", "session=abcdef0123456789"),
        ("cookie", "theme=dark"),
        ("cookie", "csrftoken=zyx987"),
        ("sec-fetch-mode", "cors"),
        ("referer", "https://app.example.com/dashboard"),
    ])
}

fn headers(c: &mut Criterion) {
    let client_ip = HeaderValue::from_static("203.0.113.7");
    let https = HeaderValue::from_static("https");
    let host = HeaderValue::from_static("app.example.com");
    let mut g = c.benchmark_group("headers");

    let h1 = browser_h1();
    g.bench_function("remove_hop_by_hop/h1_keep_alive", |b| {
        b.iter_batched_ref(
            || h1.clone(),
            |m| remove_hop_by_hop(black_box(m), false),
            BatchSize::SmallInput,
        )
    });
    let upgrade = header_map(&[
        ("host", "app.example.com"),
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "13"),
    ]);
    g.bench_function("remove_hop_by_hop/ws_upgrade", |b| {
        b.iter_batched_ref(
            || upgrade.clone(),
            |m| remove_hop_by_hop(black_box(m), true),
            BatchSize::SmallInput,
        )
    });
    let h2 = browser_h2();
    g.bench_function("remove_hop_by_hop/h2_none", |b| {
        b.iter_batched_ref(
            || h2.clone(),
            |m| remove_hop_by_hop(black_box(m), false),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("add_forwarding/first_hop", |b| {
        b.iter_batched_ref(
            || h1.clone(),
            |m| add_forwarding(black_box(m), &client_ip, &https, Some(&host)),
            BatchSize::SmallInput,
        )
    });
    let mut behind = h1.clone();
    behind.append("x-forwarded-for", HeaderValue::from_static("198.51.100.1"));
    behind.append("x-forwarded-for", HeaderValue::from_static("10.0.0.2"));
    g.bench_function("add_forwarding/after_two_proxies", |b| {
        b.iter_batched_ref(
            || behind.clone(),
            |m| add_forwarding(black_box(m), &client_ip, &https, Some(&host)),
            BatchSize::SmallInput,
        )
    });
    // A TLS request without a client certificate: no copies to remove,
    // one header to say so.
    g.bench_function("client_cert/none_sent", |b| {
        b.iter_batched_ref(
            || h1.clone(),
            |m| client_cert::forward(black_box(m), true, None),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("join_cookies/h2_three_fields", |b| {
        b.iter_batched_ref(
            || h2.clone(),
            |m| join_cookies(black_box(m)),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("join_cookies/h1_one_field", |b| {
        b.iter_batched_ref(
            || h1.clone(),
            |m| join_cookies(black_box(m)),
            BatchSize::SmallInput,
        )
    });
    // What a request goes through, end to end.
    g.bench_function("all/h2_request", |b| {
        b.iter_batched_ref(
            || h2.clone(),
            |m| {
                remove_hop_by_hop(m, false);
                join_cookies(m);
                add_forwarding(m, &client_ip, &https, Some(&host));
                client_cert::forward(m, true, None);
            },
            BatchSize::SmallInput,
        )
    });
    // The cost of the clone the batched benches pay in setup, for scale.
    g.bench_function("baseline/clone_h1_map", |b| b.iter(|| black_box(&h1).clone()));
    g.finish();
}

// ----------------------------------------------------------- certificates

fn certs(c: &mut Criterion) {
    let names = |list: &[&str]| -> Vec<String> { list.iter().map(|s| s.to_string()).collect() };
    let generate = |extra: &[&str]| {
        Arc::new(
            selfsigned::generate(&names(extra))
                .unwrap_or_else(|e| panic!("cannot generate a certificate: {e}")),
        )
    };
    let mut list = vec![
        generate(&["default.example.net"]),
        generate(&["*.example.org"]),
        generate(&["www.example.com", "example.com"]),
    ];
    for i in 0..20 {
        list.push(generate(&[&format!("site{i}.example.io")]));
    }
    let store = CertStore::new(list);
    let mut g = c.benchmark_group("cert_by_sni");
    let cases: &[(&str, Option<&str>)] = &[
        ("exact", Some("www.example.com")),
        ("exact_among_many", Some("site17.example.io")),
        ("wildcard", Some("api.example.org")),
        ("mixed_case", Some("WWW.Example.COM")),
        ("unknown_falls_back", Some("nowhere.test")),
        ("no_sni", None),
    ];
    for &(name, sni) in cases {
        assert!(store.resolve_name(sni).is_some(), "{name} must resolve");
        g.bench_function(name, |b| b.iter(|| store.resolve_name(black_box(sni))));
    }
    g.finish();
}

criterion_group!(benches, routes, route_scale, header_rules, headers, certs);
criterion_main!(benches);
