//! A raw TLS client (ALPN http/1.1) that writes exact bytes to the proxy and
//! reads exactly what comes back, with a reader for one HTTP/1.1 response
//! framed by its own headers.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{tls_connect, within, TestCa};

/// The longest any single read may take before the test calls it a hang.
const HANG: Duration = Duration::from_secs(10);

/// A TLS connection (ALPN http/1.1) to the proxy that speaks raw bytes.
pub struct Raw {
    tls: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    pending: Vec<u8>,
    closed: bool,
}

/// One response as it arrived on the wire.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    /// The head as received, status line to the blank line.
    pub head: Vec<u8>,
    /// Names lowercased, values with surrounding whitespace trimmed.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// The body ended where its framing says it ends.
    pub complete: bool,
}

impl Resp {
    pub fn values(&self, name: &str) -> Vec<&[u8]> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn head_text(&self) -> String {
        String::from_utf8_lossy(&self.head).into_owned()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl Raw {
    pub async fn connect(addr: SocketAddr, ca: &TestCa) -> Raw {
        Raw {
            tls: tls_connect(addr, ca, &[b"http/1.1"]).await,
            pending: Vec::new(),
            closed: false,
        }
    }

    /// A connection whose receive buffer is `bytes` (the kernel's own
    /// growth off): a client that does not read soon stops the proxy's
    /// writes, as a slow link would.
    pub async fn connect_with_receive_buffer(addr: SocketAddr, ca: &TestCa, bytes: u32) -> Raw {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(bytes).unwrap();
        let tcp = socket.connect(addr).await.unwrap();
        let connector = tokio_rustls::TlsConnector::from(ca.client_config(&[b"http/1.1"]));
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        Raw {
            tls: connector.connect(name, tcp).await.unwrap(),
            pending: Vec::new(),
            closed: false,
        }
    }

    /// Writes `bytes`. A proxy that refuses early may close before it has
    /// read them all; that shows up in what is read next, not here.
    pub async fn send(&mut self, bytes: &[u8]) {
        let _ = self.tls.write_all(bytes).await;
        let _ = self.tls.flush().await;
    }

    /// Writes a plain GET for `path`; the write itself must succeed.
    pub async fn get(&mut self, path: &str) {
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        self.tls.write_all(request.as_bytes()).await.unwrap();
        self.tls.flush().await.unwrap();
    }

    /// Reads more bytes into `pending`; false once the connection has ended.
    async fn fill(&mut self) -> bool {
        if self.closed {
            return false;
        }
        let mut buf = [0u8; 16384];
        match within(HANG, "bytes from the proxy", self.tls.read(&mut buf)).await {
            Ok(0) | Err(_) => {
                self.closed = true;
                false
            }
            Ok(n) => {
                self.pending.extend_from_slice(&buf[..n]);
                true
            }
        }
    }

    /// Reads up to the end of the next response head (the bytes after it
    /// stay for the next call), or until the proxy closes. Returns the head
    /// (or whatever came before the close) and whether the connection closed.
    pub async fn read_head(&mut self) -> (String, bool) {
        let (head, closed) = self.read_head_bytes().await;
        (String::from_utf8_lossy(&head).into_owned(), closed)
    }

    /// As `read_head`, the head as the bytes received.
    async fn read_head_bytes(&mut self) -> (Vec<u8>, bool) {
        loop {
            if let Some(end) = find(&self.pending, b"\r\n\r\n") {
                return (self.pending.drain(..end + 4).collect(), false);
            }
            if !self.fill().await {
                return (std::mem::take(&mut self.pending), true);
            }
        }
    }

    /// Takes `n` bytes, or fewer if the connection ends first.
    async fn take(&mut self, n: usize) -> Vec<u8> {
        while self.pending.len() < n && self.fill().await {}
        let n = n.min(self.pending.len());
        self.pending.drain(..n).collect()
    }

    /// Takes one CRLF-terminated line, without the CRLF.
    async fn line(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(end) = find(&self.pending, b"\r\n") {
                let line: Vec<u8> = self.pending.drain(..end + 2).collect();
                return Some(line[..end].to_vec());
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// Reads one whole response, its body by its own framing; `None` if the
    /// connection ended before a whole head arrived.
    pub async fn read_response(&mut self) -> Option<Resp> {
        let (head, closed) = self.read_head_bytes().await;
        if closed {
            return None;
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let mut lines = text.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers: Vec<(String, Vec<u8>)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().as_bytes().to_vec()))
            .collect();
        let mut resp = Resp {
            status,
            head,
            headers,
            body: Vec::new(),
            complete: false,
        };
        if (100..200).contains(&status) || status == 204 || status == 304 {
            resp.complete = true;
        } else if !resp.values("transfer-encoding").is_empty() {
            loop {
                let Some(size_line) = self.line().await else { break };
                let hex = String::from_utf8_lossy(&size_line);
                let Ok(size) = usize::from_str_radix(hex.split(';').next().unwrap_or("").trim(), 16) else {
                    break;
                };
                if size == 0 {
                    while let Some(trailer) = self.line().await {
                        if trailer.is_empty() {
                            resp.complete = true;
                            break;
                        }
                    }
                    break;
                }
                let data = self.take(size).await;
                resp.body.extend_from_slice(&data);
                if data.len() < size || self.take(2).await != b"\r\n" {
                    break;
                }
            }
        } else if let Some(len) = resp.values("content-length").first() {
            let len: usize = String::from_utf8_lossy(len).parse().unwrap_or(0);
            resp.body = self.take(len).await;
            resp.complete = resp.body.len() == len;
        } else {
            while self.fill().await {}
            resp.body = std::mem::take(&mut self.pending);
            resp.complete = true;
        }
        Some(resp)
    }

    /// The next `n` bytes (after a head `read_head` took), or fewer if the
    /// connection ends first.
    pub async fn read_body(&mut self, n: usize) -> Vec<u8> {
        self.take(n).await
    }

    /// Whatever bytes come next; empty once the connection has ended.
    pub async fn read_some(&mut self) -> Vec<u8> {
        if self.pending.is_empty() {
            self.fill().await;
        }
        std::mem::take(&mut self.pending)
    }

    /// Ends our side of the connection and returns everything the proxy
    /// sends until it ends its side.
    pub async fn finish(&mut self) -> Vec<u8> {
        let _ = self.tls.shutdown().await;
        self.read_to_close().await
    }

    /// Everything the proxy sends until it closes the connection.
    pub async fn read_to_close(&mut self) -> Vec<u8> {
        while self.fill().await {}
        std::mem::take(&mut self.pending)
    }
}
