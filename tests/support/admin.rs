//! The proxy started in-process with its admin listener on 127.0.0.1:0 too,
//! and a plain HTTP/1.1 client for that listener.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::empty;

/// GET `path` on the admin listener at `admin` over plain HTTP/1.1.
pub async fn get(admin: SocketAddr, path: &str) -> (u16, String) {
    exchange(admin, http::Method::GET, path).await
}

/// POST `path` (with no body) on the admin listener at `admin`.
pub async fn post(admin: SocketAddr, path: &str) -> (u16, String) {
    exchange(admin, http::Method::POST, path).await
}

async fn exchange(admin: SocketAddr, method: http::Method, path: &str) -> (u16, String) {
    let tcp = TcpStream::connect(admin).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "admin")
        .body(empty())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The value of the sample `name_and_labels` in a Prometheus text page.
pub fn sample(page: &str, name_and_labels: &str) -> Option<f64> {
    page.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The value of the sample `name_and_labels` on `/metrics` at `admin`.
pub async fn metric(admin: SocketAddr, name_and_labels: &str) -> Option<f64> {
    let (_, page) = get(admin, "/metrics").await;
    sample(&page, name_and_labels)
}

/// Waits until the sample `name_and_labels` on `/metrics` at `admin` is
/// `want`: the proxy counts a refused handshake or a connection's error
/// just after the client saw it end. Panics with the whole page if it is
/// not within 10 s.
pub async fn wait_for_metric(admin: SocketAddr, name_and_labels: &str, want: f64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, page) = get(admin, "/metrics").await;
        let got = sample(&page, name_and_labels);
        if got == Some(want) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name_and_labels} is {got:?}, want {want}:\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A running proxy with `[admin]` on 127.0.0.1:0.
pub struct AdminProxy {
    /// The first TLS listener.
    pub tls: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
    /// The plain-HTTP listeners, when the configuration has `[http]`.
    pub plain: Vec<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), portcullis::Error>>,
}

impl AdminProxy {
    pub async fn start(toml: &str, dir: &Path) -> AdminProxy {
        let mut config =
            portcullis::config::from_str(toml, &dir.join("proxy.toml")).unwrap_or_else(|e| panic!("{e}"));
        config.admin = Some(portcullis::config::AdminConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
        });
        let proxy = portcullis::Proxy::bind(config).unwrap_or_else(|e| panic!("{e}"));
        let (tls, admin) = (proxy.local_addrs()[0], proxy.admin_addr().unwrap());
        let plain = proxy.plain_addrs();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(proxy.run(async move {
            let _ = stopped.await;
        }));
        AdminProxy {
            tls,
            admin,
            plain,
            stop: Some(stop),
            task,
        }
    }

    /// GET `path` on the admin listener over plain HTTP/1.1.
    pub async fn get(&self, path: &str) -> (u16, String) {
        get(self.admin, path).await
    }

    /// The value of the sample `name_and_labels` on `/metrics`.
    pub async fn metric(&self, name_and_labels: &str) -> Option<f64> {
        metric(self.admin, name_and_labels).await
    }

    /// Waits until the sample `name_and_labels` is `want`, and panics with
    /// the whole page if it is not within 10 s.
    pub async fn wait_for_metric(&self, name_and_labels: &str, want: f64) {
        wait_for_metric(self.admin, name_and_labels, want).await;
    }

    /// Stops the proxy and waits for it to end cleanly.
    pub async fn stop(mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        self.task.await.unwrap().unwrap();
    }
}
