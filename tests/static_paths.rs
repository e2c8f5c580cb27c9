//! What a liar gets from a route that serves files: paths that climb out
//! of the root, encoded or not, with `/`, `\` or NUL hidden in escapes;
//! symbolic links that lead out of the root; a FIFO that would block a
//! reader. Each is a 400 or 404, fast, and never a byte of what lies
//! outside. And a file larger than memory should hold is streamed.

mod support;

use std::path::Path;
use std::time::Duration;

use support::process::ProxyProcess;
use support::raw::Raw;
use support::*;

const SECRET: &str = "TOP-SECRET-OUTSIDE-THE-ROOT";

/// `<dir>/secret.txt` outside, and `<dir>/public` as the root with one file.
fn layout() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret.txt"), SECRET).unwrap();
    let public = dir.path().join("public");
    std::fs::create_dir_all(public.join("sub")).unwrap();
    std::fs::write(public.join("ok.txt"), "fine").unwrap();
    std::fs::write(public.join("sub/inner.txt"), "inner").unwrap();
    (dir, public)
}

fn files_route(path: &str, key: &str, dir: &Path, extra: &str) -> String {
    format!(
        "[[route]]\npath = \"{path}\"\n{key} = \"{}\"\n{extra}\n",
        dir.display()
    )
}

/// The status and body of a raw GET of `target`, exactly as written.
async fn raw_get(addr: std::net::SocketAddr, ca: &TestCa, target: &str) -> (u16, String) {
    let mut raw = Raw::connect(addr, ca).await;
    raw.send(format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .await;
    match raw.read_response().await {
        Some(resp) => (resp.status, resp.text()),
        None => (0, String::new()),
    }
}

#[tokio::test]
async fn traversal_encoded_or_not_never_leaves_the_root() {
    let site = Site::new();
    let (dir, public) = layout();
    let routes = [
        files_route("/assets/", "alias", &public, ""),
        files_route("/", "root", &public, ""),
    ]
    .concat();
    let proxy = ProxyHandle::start(&site.config(&routes), site.dir.path()).await;

    let (status, body) = raw_get(proxy.addr, &site.ca, "/sub/inner.txt").await;
    assert_eq!((status, body.as_str()), (200, "inner"));
    let (status, body) = raw_get(proxy.addr, &site.ca, "/assets/sub/inner.txt").await;
    assert_eq!((status, body.as_str()), (200, "inner"));

    for prefix in ["", "/assets"] {
        for attack in [
            "/../secret.txt",
            "/sub/../../secret.txt",
            "/%2e%2e/secret.txt",
            "/%2E%2E/secret.txt",
            "/sub/%2e%2e/%2e%2e/secret.txt",
            "/..%2fsecret.txt",
            "/..%2Fsecret.txt",
            "/%2e%2e%2fsecret.txt",
            "/sub%2f..%2f..%2fsecret.txt",
            "/..%5csecret.txt",
            "/..\\secret.txt",
            "/%5c..%5csecret.txt",
            "/ok.txt%00",
            "/ok.txt%00.png",
            "/%00",
            "/%252e%252e/secret.txt",
            "/.%2e/secret.txt",
            &format!("/{}", dir.path().join("secret.txt").display()),
            &format!("/%2F{}", dir.path().join("secret.txt").display()),
        ] {
            let target = format!("{prefix}{attack}");
            let (status, body) = raw_get(proxy.addr, &site.ca, &target).await;
            assert!(status == 400 || status == 404, "{target}: {status} {body}");
            assert!(!body.contains(SECRET), "{target} leaked the secret");
        }
    }
}

#[tokio::test]
async fn symlinks_out_of_the_root_are_refused_and_those_inside_followed() {
    let site = Site::new();
    let (dir, public) = layout();
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), public.join("leak.txt")).unwrap();
    std::os::unix::fs::symlink(dir.path(), public.join("up")).unwrap();
    std::os::unix::fs::symlink("../secret.txt", public.join("relative.txt")).unwrap();
    std::os::unix::fs::symlink(public.join("sub/inner.txt"), public.join("inside.txt")).unwrap();
    std::os::unix::fs::symlink("sub", public.join("subdir")).unwrap();
    let routes = files_route(
        "/",
        "root",
        &public,
        "try_files = [\"{path}\", \"{path}/\"]\nindex = [\"secret.txt\"]",
    );
    let proxy = ProxyHandle::start(&site.config(&routes), site.dir.path()).await;

    for target in ["/leak.txt", "/up/secret.txt", "/relative.txt", "/up/", "/up"] {
        let (status, body) = raw_get(proxy.addr, &site.ca, target).await;
        assert_eq!(status, 404, "{target}: {body}");
        assert!(!body.contains(SECRET), "{target} leaked the secret");
    }
    let (status, body) = raw_get(proxy.addr, &site.ca, "/inside.txt").await;
    assert_eq!((status, body.as_str()), (200, "inner"));
    let (status, body) = raw_get(proxy.addr, &site.ca, "/subdir/inner.txt").await;
    assert_eq!((status, body.as_str()), (200, "inner"));
}

#[tokio::test]
async fn only_regular_files_are_served() {
    let site = Site::new();
    let (_dir, public) = layout();
    let fifo = public.join("pipe");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo failed");
    std::os::unix::fs::symlink("/dev/zero", public.join("zero")).unwrap();
    let proxy = ProxyHandle::start(
        &site.config(&files_route("/", "root", &public, "")),
        site.dir.path(),
    )
    .await;

    // A FIFO nobody writes to would block a reader for ever: refused at
    // once (the test's own deadline is the hang detector).
    for target in ["/pipe", "/zero"] {
        let (status, _) = within(
            Duration::from_secs(10),
            target,
            raw_get(proxy.addr, &site.ca, target),
        )
        .await;
        assert_eq!(status, 404, "{target}");
    }
    let (status, body) = raw_get(proxy.addr, &site.ca, "/ok.txt").await;
    assert_eq!((status, body.as_str()), (200, "fine"));
}

/// A 64 MiB file, sparse on disk, fetched whole through the binary: the
/// proxy's peak memory grows by far less than the file, and the access
/// line counts every byte.
#[tokio::test]
async fn a_large_file_streams_in_bounded_memory() {
    const SIZE: u64 = 64 * 1024 * 1024;
    let site = Site::new();
    let root = tempfile::tempdir().unwrap();
    let big = std::fs::File::create(root.path().join("big.bin")).unwrap();
    big.set_len(SIZE - 3).unwrap();
    drop(big);
    let mut tail = std::fs::OpenOptions::new()
        .append(true)
        .open(root.path().join("big.bin"))
        .unwrap();
    std::io::Write::write_all(&mut tail, b"END").unwrap();
    let config = site.config(&files_route("/", "root", root.path(), ""));
    let (proxy, addr) = ProxyProcess::start(site.dir.path(), &config).await;
    // Warm up: a first request settles TLS and the runtime's allocations.
    let (status, _, _) = fetch(addr, &site.ca, get("/big.bin").map_range("bytes=0-99")).await;
    assert_eq!(status, 206);
    let before = proxy.memory("VmHWM");

    let mut send = h1(addr, &site.ca).await;
    let resp = send.send_request(get("/big.bin")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], SIZE.to_string().as_str());
    let mut body = resp.into_body();
    let mut received = 0u64;
    let mut last = Vec::new();
    while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
        let frame = frame.unwrap();
        if let Some(data) = frame.data_ref() {
            received += data.len() as u64;
            last = data.to_vec();
        }
    }
    assert_eq!(received, SIZE);
    assert!(last.ends_with(b"END"));
    let grown = proxy.memory("VmHWM").saturating_sub(before);
    assert!(
        grown < SIZE / 4,
        "the proxy's peak memory grew by {grown} bytes serving a {SIZE}-byte file"
    );
    // The access line of the whole file, with every byte counted.
    proxy.line_with(&format!("\"GET /big.bin\" 200 {SIZE} ")).await;
}

/// A request with a Range header.
trait MapRange {
    fn map_range(self, range: &str) -> Self;
}

impl MapRange for http::Request<Body> {
    fn map_range(mut self, range: &str) -> Self {
        self.headers_mut().insert("range", range.parse().unwrap());
        self
    }
}
