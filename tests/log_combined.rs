//! `[log] format = "combined"` against real nginx: the same request to
//! both, through to the same origin, gives the same line (but for the
//! time, whose shape is checked); fail2ban's stock nginx filter matches
//! it; and `access_template` writes its placeholders.

mod support;

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::from::{fetch_from, request};
use support::process::ProxyProcess;
use support::{full, route, tls_config, wait_until, Origin, Site};

/// A request with everything combined logs: a query, a quoted and
/// escaped user agent, a referer with a backslash, a Basic user.
const HEAD: &str = "GET /wp-login.php?x=1&y=%22 HTTP/1.1\r\n\
    Host: localhost\r\n\
    User-Agent: Mozilla/5.0 \"probe\" \\o/\r\n\
    Referer: http://example.com/a\\b\r\n\
    Authorization: Basic YWxpY2U6c2VjcmV0\r\n\
    Connection: close\r\n\r\n";

/// An origin that answers 404 for WordPress probes, as a site without
/// WordPress does, and 200 otherwise.
async fn origin() -> Origin {
    Origin::start(|req: Request<Incoming>| async move {
        if req.uri().path().starts_with("/wp-") {
            let mut resp = Response::new(full("no such page"));
            *resp.status_mut() = StatusCode::NOT_FOUND;
            resp
        } else {
            Response::new(full("hello"))
        }
    })
    .await
}

/// nginx in front of `origin`, writing `combined` lines to `dir/access.log`.
struct Nginx {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    async fn start(dir: &Path, origin: SocketAddr) -> Nginx {
        // nginx cannot be told port 0: a port the kernel just gave out is
        // free enough.
        let port = StdListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = dir.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\nerror_log stderr;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n access_log {d}/access.log combined;\n\
             client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};\n\
             server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://{origin}; }} }}\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg("stderr")
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx is needed for this test (apt-get install nginx)");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut up = false;
        for _ in 0..200 {
            if TcpStream::connect(addr).await.is_ok() {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(up, "nginx did not start listening on {addr}");
        Nginx { child, addr }
    }
}

/// Sends `head` on `stream` and reads until the server closes.
async fn exchange<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut stream: S, head: &str) {
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out).await;
    assert!(
        out.starts_with(b"HTTP/1.1 404"),
        "{}",
        String::from_utf8_lossy(&out)
    );
}

/// `line` with its `[time]` replaced by `[T]`, after checking the time is
/// `dd/Mon/yyyy:hh:mm:ss +zzzz`.
fn without_time(line: &str) -> String {
    let open = line.find('[').unwrap();
    let close = line.find(']').unwrap();
    let time = &line[open + 1..close];
    let b = time.as_bytes();
    assert_eq!(b.len(), 26, "{time}");
    assert!(
        b[2] == b'/' && b[6] == b'/' && b[11] == b':' && b[20] == b' ',
        "{time}"
    );
    format!("{}[T]{}", &line[..open], &line[close + 1..])
}

#[tokio::test]
async fn the_combined_line_is_nginxs_and_fail2ban_reads_it() {
    let site = Site::new();
    let origin = origin().await;
    let nginx_dir = tempfile::tempdir().unwrap();
    let nginx = Nginx::start(nginx_dir.path(), origin.addr).await;
    exchange(TcpStream::connect(nginx.addr).await.unwrap(), HEAD).await;
    let nginx_log = nginx_dir.path().join("access.log");
    wait_until(Duration::from_secs(10), "nginx's access line", || {
        std::fs::read_to_string(&nginx_log).is_ok_and(|t| t.ends_with('\n'))
    })
    .await;
    let nginx_line = std::fs::read_to_string(&nginx_log)
        .unwrap()
        .trim_end()
        .to_string();

    let config = format!(
        "{}\n[log]\nformat = \"combined\"\n",
        tls_config("", &route("/", &origin.url(), ""))
    );
    let (proxy, addr) = ProxyProcess::start(site.dir.path(), &config).await;
    exchange(support::tls_connect(addr, &site.ca, &[b"http/1.1"]).await, HEAD).await;
    let line = proxy.line_with("\"GET /wp-login.php").await;

    assert_eq!(
        without_time(&line),
        without_time(&nginx_line),
        "\nours:  {line}\nnginx: {nginx_line}"
    );
    assert!(line.starts_with("127.0.0.1 - alice ["), "{line}");

    // fail2ban's stock filter for probes of nginx sites matches it.
    let file = site.path("combined.log");
    std::fs::write(&file, format!("{line}\n")).unwrap();
    let out = Command::new("fail2ban-regex")
        .arg(&file)
        .arg("/etc/fail2ban/filter.d/nginx-botsearch.conf")
        .output()
        .expect("fail2ban-regex is needed for this test (apt-get install fail2ban)");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("Lines: 1 lines, 0 ignored, 1 matched, 0 missed"),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn the_template_writes_its_placeholders_with_the_real_client() {
    let site = Site::new();
    let origin = origin().await;
    let template = r#"{client_ip} {scheme} {host} {method} {path} ?{query} {protocol} {status} {bytes_sent} {request_id} {upstream} {remote_user} {{literal}} $x"#;
    let config = format!(
        "{}\n[log]\naccess_template = '{template}'\n",
        tls_config(
            "trusted_proxies = [\"127.0.0.2\"]",
            &route("/", &origin.url(), "")
        )
    );
    let (proxy, addr) = ProxyProcess::start(site.dir.path(), &config).await;
    let req = request(
        "/templated?a=1",
        &[("x-forwarded-for", "203.0.113.50"), ("x-request-id", "lb-9")],
    );
    fetch_from("127.0.0.2", addr, &site.ca, req).await;
    let line = proxy.line_with("/templated").await;
    assert_eq!(
        line,
        format!(
            "203.0.113.50 https localhost GET /templated ?a=1 HTTP/1.1 200 5 lb-9 {} - {{literal}} $x",
            origin.url()
        )
    );
    // Other events are still text lines.
    assert!(proxy.stderr_text().contains("INFO"), "{}", proxy.stderr_text());
}
