//! The translation of nginx's tricky cases, file in, TOML and report out.

use crate::{import_file, Import, Options};

fn import(text: &str) -> Import {
    let Ok(dir) = tempfile::tempdir() else {
        panic!("no temporary directory")
    };
    let path = dir.path().join("nginx.conf");
    let _ = std::fs::write(&path, text);
    match import_file(&path, &Options::default()) {
        Ok(import) => import,
        Err(e) => panic!("{e}"),
    }
}

/// The `[[route]]` tables, each as its lines without comments.
fn routes(toml: &str) -> Vec<String> {
    toml.split("\n[[route]]\n")
        .skip(1)
        .map(|t| {
            t.lines()
                .take_while(|l| !l.starts_with('[') && !l.starts_with("# nginx:"))
                .map(|l| l.split("  #").next().unwrap_or(l).to_string())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect()
}

const TLS: &str = "listen 443 ssl; ssl_certificate c.pem; ssl_certificate_key k.pem;";

#[test]
fn one_add_header_in_a_location_drops_the_servers() {
    let i = import(&format!(
        "http {{ add_header A 1 always; server {{ {TLS} add_header B 2 always;
           location / {{ proxy_pass http://127.0.0.1:1; }}
           location /x/ {{ proxy_pass http://127.0.0.1:1; add_header C 3 always; }} }} }}"
    ));
    let r = routes(&i.toml);
    assert!(r[0].contains("response.set = { B = \"2\" }"), "{}", i.toml);
    assert!(r[1].contains("response.set = { C = \"3\" }"), "{}", i.toml);
}

#[test]
fn proxy_pass_with_and_without_a_uri() {
    let i = import(&format!(
        "http {{ server {{ {TLS}
           location /a/ {{ proxy_pass http://127.0.0.1:1/; }}
           location /b/ {{ proxy_pass http://127.0.0.1:1/api/; }}
           location /c {{ proxy_pass http://127.0.0.1:1; proxy_set_header Host $host; }}
           location ~ ^/d/(.*)$ {{ rewrite ^/d/(.*)$ /e/$1 break; proxy_pass http://127.0.0.1:1; }}
           location /f/ {{ rewrite ^/f/(.*)$ /$1 break; proxy_pass http://127.0.0.1:1; }} }} }}"
    ));
    let r = routes(&i.toml);
    assert!(
        r[0].contains("strip_prefix = true") && r[0].contains("upstream_host = \"upstream\""),
        "{}",
        r[0]
    );
    assert!(r[1].contains("rewrite_prefix = \"/api/\""), "{}", r[1]);
    assert!(
        !r[2].contains("upstream_host") && r[2].contains("redirect_rewrite = true"),
        "{}",
        r[2]
    );
    assert!(r[3].contains("rewrite = \"/e/$1\""), "{}", r[3]);
    assert!(r[4].contains("strip_prefix = true"), "{}", r[4]);
    assert!(!i.changes_behaviour(), "{:?}", i.report);
}

#[test]
fn upstream_blocks() {
    let i = import(&format!(
        "http {{ upstream app {{ hash $cookie_session consistent; server a:8080 weight=2; server unix:/run/a.sock backup; }}
           server {{ {TLS} location / {{ proxy_pass http://app; }} }} }}"
    ));
    assert!(i.toml.contains("hash_key = \"cookie:session\""), "{}", i.toml);
    assert!(
        i.toml.contains(
            "servers = [{ url = \"http://a:8080\", weight = 2 }, { url = \"unix:/run/a.sock\", backup = true }]"
        ),
        "{}",
        i.toml
    );
    // nginx sends the pool's name as Host.
    assert!(
        routes(&i.toml)[0].contains("upstream_host = \"app\""),
        "{}",
        i.toml
    );
}

#[test]
fn certbots_plain_server_redirects_its_names_and_answers_404_to_others() {
    let i = import(&format!(
        "http {{ server {{ server_name a.example; {TLS} location / {{ proxy_pass http://127.0.0.1:1; }} }}
           server {{ if ($host = a.example) {{ return 301 https://$host$request_uri; }}
             listen 80; server_name a.example; return 404; }} }}"
    ));
    let r = routes(&i.toml);
    assert!(i.toml.contains("redirect_to_https = false"), "{}", i.toml);
    assert!(r.iter().any(|t| t.contains("host = \"a.example\"\nports = [80]\npath = \"/\"\nredirect = \"https://{host}{path}{query}\"\nstatus = 301")), "{}", i.toml);
    assert!(
        r.iter()
            .any(|t| t.contains("ports = [80]\npath = \"/\"\nrespond = { status = 404 }")),
        "{}",
        i.toml
    );
    assert!(
        r.iter()
            .any(|t| t.contains("ports = [443]\npath = \"/\"\nupstream")),
        "{}",
        i.toml
    );
}

#[test]
fn what_is_left_out_is_reported_with_its_line() {
    let i = import(&format!(
        "http {{\n server {{\n {TLS}\n location / {{\n  proxy_pass http://127.0.0.1:1;\n  auth_request /auth;\n  proxy_buffering off;\n }}\n }}\n}}\n"
    ));
    let lines: Vec<String> = i.report.iter().map(|l| l.to_string()).collect();
    assert!(lines.iter().any(|l| l.ends_with("nginx.conf:6: auth_request /auth: needs a decision (portcullis has no forward authentication yet; the location is open without it)")), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.contains(
            "nginx.conf:7: proxy_buffering off: dropped (not needed: portcullis streams responses"
        )),
        "{lines:?}"
    );
    assert!(i.changes_behaviour());
}

#[test]
fn ssl_stapling_turns_on_ocsp_stapling() {
    let i = import(&format!(
        "http {{ ssl_stapling on; ssl_stapling_verify on;
           server {{ {TLS} location / {{ proxy_pass http://127.0.0.1:1; }} }} }}"
    ));
    assert!(i.toml.contains("ocsp_stapling = true"), "{}", i.toml);
    assert!(
        i.report
            .iter()
            .all(|line| !line.directive.starts_with("ssl_stapling on")),
        "{:?}",
        i.report
    );
}
