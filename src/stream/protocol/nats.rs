//! `protocol = "nats"`: NATS clients get TLS from portcullis without any
//! change on their side.
//!
//! A NATS server speaks first: `INFO {...}` in plaintext, and a client
//! upgrades to TLS only when INFO says `tls_required`. A plain TLS
//! terminator therefore serves only clients that start with TLS (NATS's
//! `handshake_first`). Here the stream connects to the upstream (a NATS
//! server without TLS), reads its INFO, sends the client that INFO with
//! `tls_required` and `tls_available` set, shakes hands, and joins the
//! two.
//!
//! A TLS-first client sends its ClientHello without waiting for INFO: the
//! stream gives every client [`TLS_FIRST_WAIT`] to do so before it sends
//! INFO (as nats-server's own `handshake_first` fallback does). A client
//! whose first byte is a TLS handshake record's then gets the handshake
//! first, and the INFO over TLS after it.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::nats_info::{self, BadInfo};
use crate::config::TcpUpstream;
use crate::stream::access::End;
use crate::stream::conn::Client;
use crate::stream::metrics::Refusal;
use crate::stream::{terminate, Stream};
use crate::tls::pieces::Pieces;

/// How long a client has to show it starts with TLS before INFO is sent.
/// Long enough for a client's first write after its connect returned, even
/// on a busy machine; it delays only the first INFO of default clients.
pub(crate) const TLS_FIRST_WAIT: Duration = Duration::from_millis(100);

/// The longest INFO line taken; a server's is a few hundred bytes, more
/// with a cluster's `connect_urls`.
const MAX_INFO: usize = 64 * 1024;

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// What the client did while the stream waited.
enum First {
    /// Nothing: a default client waiting for INFO.
    Waiting,
    /// It began with a TLS handshake record.
    Tls,
    /// It sent something else, or failed.
    Other(&'static str),
    /// It closed: a port probe, or a client that gave up.
    Left,
}

pub(crate) async fn serve(
    stream: &Stream,
    mut client: Client,
    to: &TcpUpstream,
    ends: (SocketAddr, SocketAddr),
) {
    let Some(acceptor) = &stream.acceptor else { return };
    let peer = ends.0;
    let mut record = stream.record(peer, None, to);
    let (upstream, first) = tokio::join!(stream.open(&mut record, to, ends, &[]), first_byte(&client));
    let Some(mut upstream) = upstream else { return };
    let refuse = |record: &mut crate::stream::access::Record, why: &str| {
        stream.metrics.refused(Refusal::Protocol);
        tracing::info!(stream = %stream.name, %peer, upstream = %to, "stream: NATS connection closed: {why}");
        record.end = Some(End::Protocol);
    };
    let info = match first {
        First::Left => {
            tracing::debug!(stream = %stream.name, %peer, "stream: the client closed before INFO");
            // Nothing was exchanged: no more a stream than a port probe.
            record.enabled = false;
            return;
        }
        First::Other(why) => return refuse(&mut record, why),
        First::Waiting | First::Tls => {
            match tokio::time::timeout(stream.config.handshake_timeout, read_info(&mut upstream)).await {
                Ok(Ok(info)) => info,
                Ok(Err(e)) => return refuse(&mut record, &e.to_string()),
                Err(_) => return refuse(&mut record, "no INFO from the upstream within handshake_timeout"),
            }
        }
    };
    let (line, after) = info;
    let line = match nats_info::rewrite(&line) {
        Ok(line) => line,
        Err(bad @ BadInfo::UpstreamRequiresTls) => {
            tracing::warn!(stream = %stream.name, upstream = %to, "{}", bad.describe());
            return refuse(&mut record, bad.describe());
        }
        Err(bad) => return refuse(&mut record, bad.describe()),
    };
    let tls_first = matches!(first, First::Tls);
    if !tls_first {
        // The default handshake: INFO in plaintext, then TLS.
        let sent = async {
            client.write_all(&line).await?;
            client.flush().await
        };
        if sent.await.is_err() {
            record.end = Some(End::Error);
            return;
        }
    }
    let Some((mut tls, facts)) = terminate::handshake(stream, acceptor, client, peer).await else {
        record.end = Some(End::Handshake);
        return;
    };
    // What the client has not seen yet of the upstream's first bytes:
    // INFO itself for a TLS-first client, and whatever followed it.
    let mut pending = if tls_first { line } else { Vec::new() };
    pending.extend_from_slice(&after);
    if !pending.is_empty() {
        let sent = async {
            tls.write_all(&pending).await?;
            tls.flush().await
        };
        if sent.await.is_err() {
            record.end = Some(End::Error);
            return;
        }
    }
    record.sni.clone_from(&facts.sni);
    stream.list(tls.get_mut().0.count_mut(), Some(facts), None, to);
    stream.join(Pieces::new(tls), upstream, record).await;
}

/// Waits up to [`TLS_FIRST_WAIT`] for the client's first byte, without
/// taking it.
async fn first_byte(client: &Client) -> First {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(TLS_FIRST_WAIT, client.get_ref().peek(&mut byte)).await {
        Err(_) => First::Waiting,
        Ok(Ok(0)) => First::Left,
        Ok(Ok(_)) if byte[0] == TLS_HANDSHAKE => First::Tls,
        Ok(Ok(_)) => First::Other("the client spoke before INFO, and not TLS"),
        Ok(Err(_)) => First::Other("the client's connection failed before INFO"),
    }
}

/// The upstream's first line without its CRLF, and the bytes read after it.
async fn read_info<R: AsyncRead + Unpin>(upstream: &mut R) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let mut bytes = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = memchr::memmem::find(&bytes, b"\r\n") {
            let after = bytes.split_off(end + 2);
            bytes.truncate(end);
            return Ok((bytes, after));
        }
        if bytes.len() >= MAX_INFO {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the upstream's first line is longer than 64 KiB",
            ));
        }
        let room = (MAX_INFO + 2 - bytes.len()).min(chunk.len());
        let n = upstream.read(&mut chunk[..room]).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the upstream closed before its INFO line",
            ));
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
}
