//! A stream's connection to its upstream: the name resolved at every
//! connection (a restarted container is found at its new address), TCP
//! within `connect_timeout`, keepalive and no Nagle delay as on the
//! client leg, and the first bytes the upstream must see (the PROXY
//! header, a replayed ClientHello) written in one go.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::config::{ProxyProtocol, TcpUpstream};

use super::proxy_header;

/// The upstream, connected, with the PROXY header (for `client` reaching
/// `local`) and then `first` written to it.
pub(crate) async fn connect(
    upstream: &TcpUpstream,
    timeout: Duration,
    proxy_protocol: Option<ProxyProtocol>,
    (client, local): (SocketAddr, SocketAddr),
    first: &[u8],
) -> io::Result<TcpStream> {
    let connect = TcpStream::connect((upstream.host.as_str(), upstream.port));
    let mut tcp = match tokio::time::timeout(timeout, connect).await {
        Ok(connected) => connected?,
        Err(_) => {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no connection within {timeout:?}"),
            ))
        }
    };
    crate::server::listener::tune_accepted(&tcp);
    let mut head = match proxy_protocol {
        Some(version) => proxy_header::header(version, client, local),
        None => Vec::new(),
    };
    head.extend_from_slice(first);
    if !head.is_empty() {
        tcp.write_all(&head).await?;
    }
    Ok(tcp)
}
