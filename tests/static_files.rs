//! Routes that serve files (`root`, `alias`, `try_files`, `index`,
//! `precompressed`), through real TLS clients: the bytes and headers of a
//! file, its type, directories and their index, `try_files` in order with
//! a fallback to a real origin, conditional requests, ranges, HEAD, and
//! the precompressed variant Accept-Encoding picks.

mod support;

use std::path::Path;

use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use support::admin::AdminProxy;
use support::*;

/// A `[[route]]` serving `root` at `path`, with `extra` keys.
fn files_route(path: &str, root: &Path, extra: &str) -> String {
    format!(
        "[[route]]\npath = \"{path}\"\nroot = \"{}\"\n{extra}\n",
        root.display()
    )
}

fn request(method: Method, target: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut builder = Request::builder()
        .method(method)
        .uri(target)
        .header("host", "localhost");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(empty()).unwrap()
}

/// GET `target` with `headers` on a fresh HTTP/1.1 connection.
async fn get_with(
    addr: std::net::SocketAddr,
    ca: &TestCa,
    target: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, http::HeaderMap, String) {
    fetch(addr, ca, request(Method::GET, target, headers)).await
}

/// A web root with a few files of known types and a directory tree.
fn web_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let p = root.path();
    std::fs::write(p.join("hello.txt"), "hello, file\n").unwrap();
    std::fs::write(p.join("app.js"), "console.log('plain');\n").unwrap();
    std::fs::write(p.join("style.css"), "body{}\n").unwrap();
    std::fs::write(p.join("blob.qqqzz"), [0u8, 1, 2]).unwrap();
    std::fs::write(p.join("index.html"), "<h1>home</h1>\n").unwrap();
    std::fs::create_dir(p.join("docs")).unwrap();
    std::fs::write(p.join("docs/index.html"), "<h1>docs</h1>\n").unwrap();
    std::fs::create_dir(p.join("empty")).unwrap();
    std::fs::write(p.join("my file.txt"), "spaced\n").unwrap();
    root
}

#[tokio::test]
async fn a_file_is_served_with_its_type_length_validators_and_header_rules() {
    let site = Site::new();
    let root = web_root();
    let routes = files_route(
        "/",
        root.path(),
        "response.set = { \"Cache-Control\" = \"public, max-age=60\" }",
    );
    let proxy = AdminProxy::start(&site.config(&routes), site.dir.path()).await;

    let (status, headers, body) = get_with(proxy.tls, &site.ca, "/hello.txt", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "hello, file\n");
    assert_eq!(headers["content-type"], "text/plain");
    assert_eq!(headers["content-length"], "12");
    assert_eq!(headers["accept-ranges"], "bytes");
    assert_eq!(headers["cache-control"], "public, max-age=60");
    let modified = std::fs::metadata(root.path().join("hello.txt"))
        .unwrap()
        .modified()
        .unwrap();
    let seconds = modified.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(headers["etag"], format!("\"{seconds:x}-c\"").as_str());
    assert_eq!(
        headers["last-modified"],
        httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds)).as_str()
    );
    assert!(!headers.contains_key("vary"), "no precompressed files, no Vary");

    for (target, mime) in [
        ("/app.js", "javascript"),
        ("/style.css", "text/css"),
        ("/blob.qqqzz", "application/octet-stream"),
        ("/index.html", "text/html"),
    ] {
        let (status, headers, _) = get_with(proxy.tls, &site.ca, target, &[]).await;
        assert_eq!(status, StatusCode::OK, "{target}");
        let got = headers["content-type"].to_str().unwrap();
        assert!(got.contains(mime), "{target}: {got}");
    }
    // A name with an encoded space.
    let (status, _, body) = get_with(proxy.tls, &site.ca, "/my%20file.txt", &[]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "spaced\n"));

    // Over HTTP/2, the same bytes.
    let mut h2 = h2(proxy.tls, &site.ca).await;
    let resp = h2.send_request(get("/hello.txt")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"hello, file\n");

    // The route's own 404 carries its header rules too, and the route's
    // metrics count file answers.
    let (status, headers, _) = get_with(proxy.tls, &site.ca, "/nothing.txt", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers["cache-control"], "public, max-age=60");
    proxy
        .wait_for_metric("portcullis_requests_total{route=\"/\",status=\"2xx\"}", 7.0)
        .await;
    proxy
        .wait_for_metric("portcullis_requests_total{route=\"/\",status=\"4xx\"}", 1.0)
        .await;
    proxy.stop().await;
}

#[tokio::test]
async fn directories_answer_with_their_index_a_slash_or_403() {
    let site = Site::new();
    let root = web_root();
    let alias_dir = tempfile::tempdir().unwrap();
    std::fs::write(alias_dir.path().join("logo.svg"), "<svg/>").unwrap();
    std::fs::write(alias_dir.path().join("start.htm"), "start").unwrap();
    let routes = [
        format!(
            "[[route]]\npath = \"/static/\"\nalias = \"{}\"\nindex = [\"missing.html\", \"start.htm\"]\n",
            alias_dir.path().display()
        ),
        files_route("/", root.path(), ""),
    ]
    .concat();
    let proxy = ProxyHandle::start(&site.config(&routes), site.dir.path()).await;

    let (status, _, body) = get_with(proxy.addr, &site.ca, "/", &[]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "<h1>home</h1>\n"));
    let (status, headers, _) = get_with(proxy.addr, &site.ca, "/docs?x=1", &[]).await;
    assert_eq!(status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(headers["location"], "/docs/?x=1");
    let (status, _, body) = get_with(proxy.addr, &site.ca, "/docs/", &[]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "<h1>docs</h1>\n"));
    // No listing: a directory without an index is refused.
    let (status, _, body) = get_with(proxy.addr, &site.ca, "/empty/", &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // A file asked as a directory is not there.
    let (status, _, _) = get_with(proxy.addr, &site.ca, "/hello.txt/", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // alias: the prefix is replaced by the directory.
    let (status, headers, body) = get_with(proxy.addr, &site.ca, "/static/logo.svg", &[]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "<svg/>"));
    assert_eq!(headers["content-type"], "image/svg+xml");
    let (status, _, body) = get_with(proxy.addr, &site.ca, "/static/", &[]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "start"));
    // Under root, the same name is looked up with the whole path.
    let (status, _, _) = get_with(proxy.addr, &site.ca, "/logo.svg", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn try_files_in_order_then_the_application() {
    let site = Site::new();
    let root = web_root();
    std::fs::write(root.path().join("about.html"), "about page").unwrap();
    std::fs::write(root.path().join("about"), "the bare file wins").unwrap();
    std::fs::write(root.path().join("contact.html"), "contact page").unwrap();
    let origin = Origin::hello().await;
    let routes = format!(
        "[[upstream]]\nname = \"app\"\nservers = [\"{}\"]\n\n{}{}",
        origin.url(),
        files_route(
            "/",
            root.path(),
            "try_files = [\"{path}\", \"{path}.html\", \"{path}/\", \"@app\"]"
        ),
        files_route("/spa/", root.path(), "try_files = [\"{path}\", \"/index.html\"]"),
    );
    let routes = format!(
        "{routes}{}",
        files_route("/teapot/", root.path(), "try_files = [\"{path}\", \"=418\"]")
    );
    let proxy = ProxyHandle::start(&site.config(&routes), site.dir.path()).await;

    let (status, _, body) = get_with(proxy.addr, &site.ca, "/about", &[]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "the bare file wins"));
    let (status, _, body) = get_with(proxy.addr, &site.ca, "/contact", &[]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "contact page"));
    let (status, _, body) = get_with(proxy.addr, &site.ca, "/docs", &[]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "<h1>docs</h1>\n"));
    assert_eq!(origin.count(), 0, "a file request reached the application");

    // Nothing on disk: the application answers, with the path as sent.
    let (status, _, body) = get_with(proxy.addr, &site.ca, "/api/users?page=2", &[]).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "hello from /api/users?page=2")
    );
    // A directory without an index falls through to the next entry.
    let (_, _, body) = get_with(proxy.addr, &site.ca, "/empty", &[]).await;
    assert_eq!(body, "hello from /empty");
    // %2F names no file; the application gets the path as it was.
    let (_, _, body) = get_with(proxy.addr, &site.ca, "/projects/a%2Fb", &[]).await;
    assert_eq!(body, "hello from /projects/a%2Fb");
    // Files are only read: other methods go to the application.
    let (status, _, body) = fetch(proxy.addr, &site.ca, request(Method::POST, "/about", &[])).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello from /about"));
    assert_eq!(origin.count(), 4);
    let seen = origin.last_seen();
    assert_eq!(seen.method, Method::POST);
    assert!(seen.headers.contains_key("x-forwarded-for"));

    // A path as the last entry, looked up like the others.
    let (status, _, body) = get_with(proxy.addr, &site.ca, "/spa/some/deep/link", &[]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "<h1>home</h1>\n"));
    // `=code` answers with that status.
    let (status, _, _) = get_with(proxy.addr, &site.ca, "/teapot/none", &[]).await;
    assert_eq!(status, StatusCode::IM_A_TEAPOT);
    // Without a fallback pool, other methods are refused.
    let (status, headers, _) = fetch(proxy.addr, &site.ca, request(Method::PUT, "/spa/x", &[])).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "GET, HEAD");
    assert_eq!(origin.count(), 4);
}

#[tokio::test]
async fn conditional_requests_answer_304() {
    let site = Site::new();
    let root = web_root();
    let proxy = ProxyHandle::start(&site.config(&files_route("/", root.path(), "")), site.dir.path()).await;
    let (_, headers, _) = get_with(proxy.addr, &site.ca, "/hello.txt", &[]).await;
    let etag = headers["etag"].to_str().unwrap().to_string();
    let modified = headers["last-modified"].to_str().unwrap().to_string();

    for asked in [
        vec![("if-none-match", etag.clone())],
        vec![("if-none-match", format!("\"other\", W/{etag}"))],
        vec![("if-none-match", "*".to_string())],
        vec![("if-modified-since", modified.clone())],
        vec![("if-modified-since", "Fri, 01 Jan 2100 00:00:00 GMT".to_string())],
    ] {
        let headers: Vec<(&str, &str)> = asked.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let (status, got, body) = get_with(proxy.addr, &site.ca, "/hello.txt", &headers).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "{asked:?}");
        assert_eq!(body, "");
        assert_eq!(got["etag"], etag.as_str());
    }
    for asked in [
        vec![("if-none-match", "\"other\"".to_string())],
        // If-None-Match decides when both are sent.
        vec![
            ("if-none-match", "\"other\"".to_string()),
            ("if-modified-since", modified.clone()),
        ],
        vec![("if-modified-since", "Thu, 01 Jan 1970 00:00:00 GMT".to_string())],
        vec![("if-modified-since", "not a date".to_string())],
    ] {
        let headers: Vec<(&str, &str)> = asked.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let (status, _, body) = get_with(proxy.addr, &site.ca, "/hello.txt", &headers).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "hello, file\n"),
            "{asked:?}"
        );
    }
}

#[tokio::test]
async fn ranges_206_416_and_the_whole_file_for_several() {
    let site = Site::new();
    let root = tempfile::tempdir().unwrap();
    let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.path().join("data.bin"), &content).unwrap();
    let proxy = ProxyHandle::start(&site.config(&files_route("/", root.path(), "")), site.dir.path()).await;
    let len = content.len();

    let ranged = |range: &'static str| {
        let ca = &site.ca;
        let addr = proxy.addr;
        async move {
            let mut send = h1(addr, ca).await;
            let resp = send
                .send_request(request(Method::GET, "/data.bin", &[("range", range)]))
                .await
                .unwrap();
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (status, headers, body)
        }
    };
    let (status, headers, body) = ranged("bytes=0-9").await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(headers["content-range"], format!("bytes 0-9/{len}").as_str());
    assert_eq!(headers["content-length"], "10");
    assert_eq!(&body[..], &content[..10]);

    let (status, headers, body) = ranged("bytes=-100").await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        headers["content-range"],
        format!("bytes {}-{}/{len}", len - 100, len - 1).as_str()
    );
    assert_eq!(&body[..], &content[len - 100..]);

    // An open range past one chunk: streamed from the offset.
    let (status, headers, body) = ranged("bytes=100-").await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        headers["content-range"],
        format!("bytes 100-{}/{len}", len - 1).as_str()
    );
    assert_eq!(body.len(), len - 100);
    assert_eq!(&body[..], &content[100..]);

    let (status, headers, _) = ranged("bytes=300000-").await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(headers["content-range"], format!("bytes */{len}").as_str());

    for range in ["bytes=-0", "bytes=99999999999999999999999-"] {
        let (status, _, _) = ranged(range).await;
        assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
    }

    // Several ranges, or one that does not parse: the whole file.
    for range in [
        "bytes=0-1,5-6",
        "bytes=9-2",
        "bytes=zz",
        "lines=1-2",
        "bytes=1-2-3",
        "bytes= -",
    ] {
        let (status, headers, body) = ranged(range).await;
        assert_eq!(status, StatusCode::OK, "{range}");
        assert!(!headers.contains_key("content-range"));
        assert_eq!(body.len(), len, "{range}");
    }

    // If-Range: the range only for the same file.
    let (_, headers, _) = ranged("bytes=0-0").await;
    let etag = headers["etag"].to_str().unwrap().to_string();
    let (status, _, body) = get_with(
        proxy.addr,
        &site.ca,
        "/data.bin",
        &[("range", "bytes=0-1"), ("if-range", &etag)],
    )
    .await;
    assert_eq!((status, body.len()), (StatusCode::PARTIAL_CONTENT, 2));
    let (status, _, _) = get_with(
        proxy.addr,
        &site.ca,
        "/data.bin",
        &[("range", "bytes=0-1"), ("if-range", "\"changed\"")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn head_has_the_headers_of_get_and_no_body() {
    let site = Site::new();
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("big.bin"), vec![7u8; 200_000]).unwrap();
    std::fs::write(root.path().join("small.txt"), "small").unwrap();
    let proxy = ProxyHandle::start(&site.config(&files_route("/", root.path(), "")), site.dir.path()).await;

    // Raw bytes: a body after a HEAD answer would show as a broken next
    // response on the same connection.
    let mut raw = raw::Raw::connect(proxy.addr, &site.ca).await;
    for (target, length) in [("/big.bin", "200000"), ("/small.txt", "5")] {
        raw.send(format!("HEAD {target} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
            .await;
        let (head, closed) = raw.read_head().await;
        assert!(!closed, "{head}");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("content-length: {length}\r\n")),
            "{head}"
        );
    }
    raw.get("/small.txt").await;
    let resp = raw.read_response().await.expect("a response");
    assert_eq!((resp.status, resp.text().as_str()), (200, "small"));

    // Over HTTP/2 too: the length of a GET, no DATA.
    let mut h2 = h2(proxy.addr, &site.ca).await;
    let resp = h2
        .send_request(request(Method::HEAD, "https://localhost/big.bin", &[]))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-length"], "200000");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(body.is_empty());
}

#[tokio::test]
async fn precompressed_files_follow_accept_encoding() {
    let site = Site::new();
    let root = web_root();
    std::fs::write(root.path().join("app.js.br"), "BROTLI").unwrap();
    std::fs::write(root.path().join("app.js.gz"), "GZIP").unwrap();
    let routes = files_route("/", root.path(), "precompressed = [\"br\", \"gzip\"]");
    let proxy = ProxyHandle::start(&site.config(&routes), site.dir.path()).await;

    for (accept, body, encoding) in [
        (Some("gzip, deflate, br"), "BROTLI", Some("br")),
        (Some("gzip"), "GZIP", Some("gzip")),
        (Some("br;q=0, gzip;q=0.5"), "GZIP", Some("gzip")),
        (Some("*"), "BROTLI", Some("br")),
        (Some("*, br;q=0"), "GZIP", Some("gzip")),
        (Some("br;q=0, gzip;q=0"), "console.log('plain');\n", None),
        // A q-value that does not parse refuses; garbage is ignored.
        (Some("br;q=abc, gzip"), "GZIP", Some("gzip")),
        (Some(";;,,q=,br;;"), "BROTLI", Some("br")),
        (Some("identity"), "console.log('plain');\n", None),
        (None, "console.log('plain');\n", None),
    ] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("accept-encoding", a)).into_iter().collect();
        let (status, got, text) = get_with(proxy.addr, &site.ca, "/app.js", &headers).await;
        assert_eq!((status, text.as_str()), (StatusCode::OK, body), "{accept:?}");
        assert_eq!(
            got.get("content-encoding").map(|v| v.to_str().unwrap()),
            encoding,
            "{accept:?}"
        );
        assert!(got["content-type"].to_str().unwrap().contains("javascript"));
        assert_eq!(got["vary"], "accept-encoding");
    }
    // A file without a compressed copy is served as it is.
    let (_, got, text) = get_with(proxy.addr, &site.ca, "/hello.txt", &[("accept-encoding", "br")]).await;
    assert_eq!(text, "hello, file\n");
    assert!(!got.contains_key("content-encoding"));
}

/// curl, as an operator would check a deployment: a range, and the file.
#[tokio::test]
async fn curl_fetches_a_file_and_a_range() {
    let site = Site::new();
    let root = web_root();
    std::fs::write(site.path("ca.pem"), &site.ca.pem).unwrap();
    let proxy = ProxyHandle::start(&site.config(&files_route("/", root.path(), "")), site.dir.path()).await;
    let ca = site.path("ca.pem");
    let port = proxy.addr.port();
    let url = format!("https://localhost:{port}/hello.txt");
    let resolve = format!("localhost:{port}:127.0.0.1");
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(&ca)
            .args(["--resolve", &resolve, "-r", "7-10", "-D", "-", &url])
            .output()
            .expect("curl must be installed (.ci/run installs it)")
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.starts_with("HTTP/2 206") || text.starts_with("HTTP/1.1 206"),
        "{text}"
    );
    assert!(text.contains("content-range: bytes 7-10/12"), "{text}");
    assert!(text.ends_with("file"), "{text}");
}

/// A root behind a link (`current -> releases/1`) follows the link when a
/// deploy re-points it, within a second or so.
#[tokio::test]
async fn a_root_behind_a_link_follows_a_deploy() {
    let site = Site::new();
    let dir = tempfile::tempdir().unwrap();
    for (release, text) in [("1", "first"), ("2", "second")] {
        std::fs::create_dir_all(dir.path().join("releases").join(release)).unwrap();
        std::fs::write(dir.path().join("releases").join(release).join("v.txt"), text).unwrap();
    }
    let current = dir.path().join("current");
    std::os::unix::fs::symlink("releases/1", &current).unwrap();
    let proxy = ProxyHandle::start(&site.config(&files_route("/", &current, "")), site.dir.path()).await;
    let (_, _, body) = get_with(proxy.addr, &site.ca, "/v.txt", &[]).await;
    assert_eq!(body, "first");

    // Re-pointed as deploy tools do: a new link renamed over the old one.
    let next = dir.path().join("current.next");
    std::os::unix::fs::symlink("releases/2", &next).unwrap();
    std::fs::rename(&next, &current).unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, _, body) = get_with(proxy.addr, &site.ca, "/v.txt", &[]).await;
        if body == "second" {
            break;
        }
        assert_eq!(body, "first");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new release was never served"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
