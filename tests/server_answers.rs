//! Answers given before any route: `[tls] unknown_sni = "reject"` refuses
//! the handshake for names no certificate covers (checked with openssl
//! s_client), and `[http] unknown_host = "close"` closes a plain-HTTP
//! connection without a byte for hosts no route or certificate names.

mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::{route, tls_config, within, Origin, ProxyHandle, Site};

/// Whether `openssl s_client` completes a handshake with `addr`, sending
/// `name` as SNI (none with `None`).
fn handshake(addr: SocketAddr, name: Option<&str>) -> (bool, String) {
    let mut cmd = Command::new("openssl");
    cmd.arg("s_client")
        .arg("-connect")
        .arg(addr.to_string())
        .arg("-brief");
    match name {
        Some(name) => cmd.arg("-servername").arg(name),
        None => cmd.arg("-noservername"),
    };
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .expect("openssl is needed for this test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success() && text.contains("CONNECTION ESTABLISHED"),
        text,
    )
}

#[tokio::test]
async fn unknown_sni_reject_refuses_names_no_certificate_covers() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let config = tls_config("", &route("/", &origin.url(), ""))
        .replace("[tls]\n", "[tls]\nunknown_sni = \"reject\"\n");
    let proxy = ProxyHandle::start(&config, site.dir.path()).await;
    let addr = proxy.addr;
    let checks = tokio::task::spawn_blocking(move || {
        (
            handshake(addr, Some("localhost")),
            handshake(addr, Some("unknown.example")),
            handshake(addr, None),
        )
    })
    .await
    .unwrap();
    let (known, unknown, nameless) = checks;
    assert!(known.0, "{}", known.1);
    assert!(!unknown.0, "{}", unknown.1);
    assert!(unknown.1.to_lowercase().contains("alert"), "{}", unknown.1);
    assert!(!nameless.0, "{}", nameless.1);

    // By default the first certificate answers any name.
    let proxy = ProxyHandle::start(&tls_config("", &route("/", &origin.url(), "")), site.dir.path()).await;
    let addr = proxy.addr;
    let default = tokio::task::spawn_blocking(move || handshake(addr, Some("unknown.example")))
        .await
        .unwrap();
    assert!(default.0, "{}", default.1);
}

/// Sends `head` to the plain listener; everything it answers.
async fn plain_exchange(addr: SocketAddr, head: &str) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    within(Duration::from_secs(10), "the plain listener's answer", async {
        let _ = tcp.read_to_end(&mut out).await;
    })
    .await;
    out
}

#[tokio::test]
async fn unknown_host_close_answers_unknown_hosts_with_nothing() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let toml = format!(
        "{}\n[http]\nlisten = [\"127.0.0.1:0\"]\nunknown_host = \"close\"\n",
        tls_config("", &route("/", &origin.url(), "host = \"app.test\""))
    );
    let (plain, _stop) = support::from::start_plain(&toml, &site).await;

    // A route's host and a certificate's name are redirected as usual.
    for host in ["app.test", "APP.test:80", "localhost"] {
        let answer = plain_exchange(
            plain,
            &format!("GET /x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 308"), "{host}: {text}");
    }
    // Anything else gets nothing at all, as nginx's return 444.
    for head in [
        "GET / HTTP/1.1\r\nHost: 203.0.113.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: scanner.invalid\r\n\r\n",
        "GET / HTTP/1.0\r\n\r\n",
    ] {
        let answer = plain_exchange(plain, head).await;
        assert!(
            answer.is_empty(),
            "{head:?}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
}
