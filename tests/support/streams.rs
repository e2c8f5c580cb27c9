//! Streams under test: the proxy started in-process with its `[[stream]]`
//! listeners and its admin listener on 127.0.0.1:0; TCP upstreams whose
//! connections the test scripts; TLS upstreams that say who they are; and
//! a TLS client driven by hand, whose first flight the test cuts as it
//! likes.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{admin, within, TestCa};

/// The longest any one step may take before the test calls it a hang.
pub const HANG: Duration = Duration::from_secs(10);

/// A running proxy with its streams and `[admin]` on 127.0.0.1:0.
pub struct StreamProxy {
    pub streams: Vec<(String, SocketAddr)>,
    pub admin: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), portcullis::Error>>,
}

impl StreamProxy {
    /// Starts the proxy from `toml`, as if read from `dir/proxy.toml`.
    pub async fn start(toml: &str, dir: &Path) -> StreamProxy {
        let mut config =
            portcullis::config::from_str(toml, &dir.join("proxy.toml")).unwrap_or_else(|e| panic!("{e}"));
        config.admin = Some(portcullis::config::AdminConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
        });
        let proxy = portcullis::Proxy::bind(config).unwrap_or_else(|e| panic!("{e}"));
        let streams = proxy.stream_addrs();
        let admin = proxy.admin_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(proxy.run(async move {
            let _ = stopped.await;
        }));
        StreamProxy {
            streams,
            admin,
            stop: Some(stop),
            task,
        }
    }

    /// The first address of the stream `name`.
    pub fn addr(&self, name: &str) -> SocketAddr {
        self.streams
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("no stream {name} in {:?}", self.streams))
    }

    /// A sample of `/metrics`; 0 when absent.
    pub async fn metric(&self, name_and_labels: &str) -> f64 {
        admin::metric(self.admin, name_and_labels).await.unwrap_or(0.0)
    }

    /// Polls the sample until it is `value`.
    pub async fn wait_metric(&self, name_and_labels: &str, value: f64) {
        admin::wait_for_metric(self.admin, name_and_labels, value).await;
    }

    /// `/connections`, parsed.
    pub async fn connections(&self) -> serde_json::Value {
        let (status, body) = admin::get(self.admin, "/connections").await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Signals shutdown, as SIGTERM does, without waiting for the drain.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Signals shutdown and waits for the proxy to return.
    pub async fn shutdown(mut self) {
        self.begin_shutdown();
        within(Duration::from_secs(30), "the proxy to stop", self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

/// `tcp://addr`, for an upstream key.
pub fn tcp(addr: SocketAddr) -> String {
    format!("tcp://{addr}")
}

/// An upstream whose connections are handed to the test.
pub struct Upstream {
    pub addr: SocketAddr,
    conns: mpsc::UnboundedReceiver<TcpStream>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, conns) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                if tx.send(tcp).is_err() {
                    return;
                }
            }
        });
        Upstream { addr, conns }
    }

    /// The next connection the proxy made.
    pub async fn next(&mut self) -> TcpStream {
        within(HANG, "a connection at the upstream", self.conns.recv())
            .await
            .unwrap()
    }
}

/// A TCP upstream that echoes every connection until its end, then closes.
pub async fn echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = tcp.into_split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
                let _ = write.shutdown().await;
            });
        }
    });
    addr
}

/// A TLS upstream with a certificate for `names` from `ca`: after the
/// handshake it writes `tag` and a newline, then echoes.
pub async fn tls_upstream(
    ca: &TestCa,
    names: &[&str],
    tag: &'static str,
) -> (SocketAddr, CertificateDer<'static>) {
    let issued = ca.issue(names);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(issued.chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let (mut read, mut write) = tokio::io::split(tls);
                if write.write_all(format!("{tag}\n").as_bytes()).await.is_err() {
                    return;
                }
                let _ = tokio::io::copy(&mut read, &mut write).await;
                let _ = write.shutdown().await;
            });
        }
    });
    (addr, issued.leaf_der)
}

/// A tokio-rustls client connection to `addr` asking for `name`.
pub async fn tls_connect_name(
    addr: SocketAddr,
    ca: &TestCa,
    name: &str,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(ca.client_config(&[]));
    let name = ServerName::try_from(name.to_string()).unwrap();
    within(HANG, "the TLS handshake", connector.connect(name, tcp))
        .await
        .unwrap()
}

/// A TLS client connection driven by hand over a TCP stream, so that the
/// test decides how its first flight (the ClientHello) is sent.
pub struct Manual {
    pub conn: rustls::ClientConnection,
    pub tcp: TcpStream,
}

impl Manual {
    /// Connects to `addr` asking for `sni` (no SNI for an IP address),
    /// trusting `ca`; the first flight is sent as the segments `cut`
    /// makes of it, each written and flushed on its own; then the
    /// handshake is completed.
    pub async fn connect(
        addr: SocketAddr,
        ca: &TestCa,
        sni: &str,
        cut: impl FnOnce(Vec<u8>) -> Vec<Vec<u8>>,
    ) -> io::Result<Manual> {
        let name = ServerName::try_from(sni.to_string()).unwrap();
        let mut conn = rustls::ClientConnection::new(ca.client_config(&[]), name).unwrap();
        let mut tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let mut flight = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut flight)?;
        }
        for segment in cut(flight) {
            tcp.write_all(&segment).await?;
            tcp.flush().await?;
            tokio::task::yield_now().await;
        }
        let mut manual = Manual { conn, tcp };
        while manual.conn.is_handshaking() {
            manual.write_out().await?;
            if manual.conn.is_handshaking() {
                manual.read_in().await?;
            }
        }
        manual.write_out().await?;
        Ok(manual)
    }

    async fn write_out(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            let mut out = Vec::new();
            self.conn.write_tls(&mut out)?;
            self.tcp.write_all(&out).await?;
        }
        Ok(())
    }

    async fn read_in(&mut self) -> io::Result<()> {
        let mut buf = vec![0u8; 16 * 1024];
        let n = within(HANG, "bytes from the proxy", self.tcp.read(&mut buf)).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.conn.read_tls(&mut &buf[..n])?;
        self.conn
            .process_new_packets()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(())
    }

    /// The certificate the server presented.
    pub fn leaf(&self) -> CertificateDer<'static> {
        self.conn.peer_certificates().unwrap()[0].clone().into_owned()
    }

    /// The first line of plaintext from the server.
    pub async fn read_line(&mut self) -> io::Result<String> {
        use std::io::Read;
        let mut text = Vec::new();
        loop {
            let mut buf = [0u8; 256];
            match self.conn.reader().read(&mut buf) {
                Ok(n) if n > 0 => {
                    text.extend_from_slice(&buf[..n]);
                    if let Some(end) = text.iter().position(|&b| b == b'\n') {
                        return Ok(String::from_utf8_lossy(&text[..end]).into_owned());
                    }
                }
                Ok(_) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            self.read_in().await?;
        }
    }
}

/// Whether the peer closed `tcp` (end of stream or reset) without
/// sending anything, within [`HANG`].
pub async fn closed_without_a_byte(tcp: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match within(HANG, "the proxy to close the connection", tcp.read(&mut buf)).await {
        Ok(0) | Err(_) => true,
        Ok(_) => false,
    }
}

/// `len` bytes that do not repeat in any short period.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

pub fn sha256(bytes: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}
