//! One stream connection, from accept to close: the client leg counted
//! and registered, then by mode: plain TCP straight to the upstream; TLS
//! terminated here; or the ClientHello read, routed by its SNI and
//! replayed. Both legs are then joined, and the access line written.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use super::access::{End, Record};
use super::counted::{ClientLeg, Count, Forwarded, UpstreamLeg};
use super::hello;
use super::metrics::Refusal;
use super::sni::Miss;
use super::{join, protocol, terminate, upstream, Stream};
use crate::config::{StreamMode, StreamProtocol, TcpUpstream};
use crate::connections::{StreamFacts, TlsFacts};
use crate::tls::pieces::Pieces;

/// A connection the listener accepted within `max_connections`.
pub(crate) struct Accepted {
    pub(crate) tcp: TcpStream,
    pub(crate) peer: SocketAddr,
    /// The listener's address the client reached (the PROXY header's
    /// destination).
    pub(crate) local: SocketAddr,
    pub(crate) permit: OwnedSemaphorePermit,
}

pub(crate) type Client = ClientLeg<TcpStream>;

pub(crate) async fn serve(stream: Arc<Stream>, accepted: Accepted) {
    let Accepted {
        tcp,
        peer,
        local,
        permit,
    } = accepted;
    let registration = stream.connections.open(peer);
    let client = ClientLeg::client(tcp, registration, stream.metrics.open(), permit);
    let ends = (peer, local);
    // Each mode's future is boxed on its own: inline, every connection's
    // task would be as large as the largest of them (the passthrough's
    // ClientHello reader, NATS), which is most of an idle stream's memory.
    match &stream.config.mode {
        StreamMode::Plain { upstream } => Box::pin(plain(&stream, client, upstream, ends)).await,
        StreamMode::Terminate {
            upstream,
            protocol: Some(StreamProtocol::Nats),
            ..
        } => Box::pin(protocol::nats::serve(&stream, client, upstream, ends)).await,
        StreamMode::Terminate { upstream, .. } => Box::pin(terminated(&stream, client, upstream, ends)).await,
        StreamMode::Passthrough { .. } => Box::pin(passthrough(&stream, client, ends)).await,
    }
}

async fn plain(stream: &Stream, mut client: Client, to: &TcpUpstream, ends: (SocketAddr, SocketAddr)) {
    let mut record = stream.record(ends.0, None, to);
    let Some(upstream) = stream.open(&mut record, to, ends, &[]).await else {
        return;
    };
    stream.list(client.count_mut(), None, None, to);
    stream.join(client, upstream, record).await;
}

async fn terminated(stream: &Stream, client: Client, to: &TcpUpstream, ends: (SocketAddr, SocketAddr)) {
    let Some(acceptor) = &stream.acceptor else { return };
    // The handshake and the connect are boxed so that their futures are
    // freed once done, not kept in this frame for the stream's life.
    let Some((mut tls, facts)) = Box::pin(terminate::handshake(stream, acceptor, client, ends.0)).await
    else {
        return;
    };
    let mut record = stream.record(ends.0, facts.sni.clone(), to);
    let Some(upstream) = Box::pin(stream.open(&mut record, to, ends, &[])).await else {
        return;
    };
    stream.list(tls.get_mut().0.count_mut(), Some(facts), None, to);
    stream.join(Pieces::new(tls), upstream, record).await;
}

async fn passthrough(stream: &Stream, mut client: Client, ends: (SocketAddr, SocketAddr)) {
    let Some(routes) = &stream.routes else { return };
    let peer = ends.0;
    let read = tokio::time::timeout(stream.config.handshake_timeout, hello::read(&mut client)).await;
    let (first, hello) = match read {
        Ok(Ok(read)) => read,
        Ok(Err(e)) => {
            stream.metrics.refused(Refusal::ClientHello);
            // Scanners send garbage all day: counted, and at debug level
            // kept out of the way, as failed handshakes on the listeners.
            tracing::debug!(stream = %stream.name, %peer, "stream: connection closed: {e}");
            return;
        }
        Err(_) => {
            stream.metrics.refused(Refusal::ClientHello);
            tracing::debug!(stream = %stream.name, %peer, timeout = ?stream.config.handshake_timeout, "stream: no whole ClientHello in time; closing");
            return;
        }
    };
    let to = match routes.pick(hello.sni.as_deref()) {
        Ok(to) => to,
        Err(miss) => {
            let (reason, what) = match miss {
                Miss::NoSni => (Refusal::NoSni, "the ClientHello names no server"),
                Miss::Unknown => (Refusal::UnknownSni, "no route has this name"),
            };
            stream.metrics.refused(reason);
            let sni = hello.sni.as_deref().unwrap_or("-");
            tracing::info!(stream = %stream.name, %peer, sni, "stream: connection refused: {what}, and there is no default");
            return;
        }
    };
    let mut record = stream.record(peer, hello.sni.clone(), to);
    let Some(upstream) = stream.open(&mut record, to, ends, &first).await else {
        return;
    };
    stream.list(client.count_mut(), None, hello.sni, to);
    stream.join(client, upstream, record).await;
}

impl Stream {
    /// The access record of a connection going to `to`.
    pub(crate) fn record(&self, client: SocketAddr, sni: Option<String>, to: &TcpUpstream) -> Record {
        Record {
            client,
            stream: self.name.clone(),
            sni,
            upstream: to.to_string(),
            start: Instant::now(),
            forwarded: Arc::new(Forwarded::default()),
            end: None,
            enabled: self.access_log,
        }
    }

    /// The upstream leg, connected, with the PROXY header and `first`
    /// written; `None` when it could not be reached, which is counted,
    /// logged and noted in `record`.
    pub(crate) async fn open(
        &self,
        record: &mut Record,
        to: &TcpUpstream,
        ends: (SocketAddr, SocketAddr),
        first: &[u8],
    ) -> Option<UpstreamLeg<TcpStream>> {
        let config = &self.config;
        match upstream::connect(to, config.connect_timeout, config.proxy_protocol, ends, first).await {
            Ok(tcp) => {
                let leg = UpstreamLeg::upstream(
                    tcp,
                    self.metrics.to_upstream.clone(),
                    self.metrics.to_client.clone(),
                    record.forwarded.clone(),
                );
                // The replayed bytes are the client's, forwarded.
                leg.count().written(first.len());
                Some(leg)
            }
            Err(e) => {
                self.metrics.refused(Refusal::Upstream);
                tracing::warn!(stream = %self.name, peer = %ends.0, upstream = %to, error = %e, "stream: the upstream cannot be reached");
                record.end = Some(End::Unreachable);
                None
            }
        }
    }

    /// Lists the connection in `/connections`.
    pub(crate) fn list(
        &self,
        client: &mut super::counted::ClientSide,
        tls: Option<TlsFacts>,
        sni: Option<String>,
        to: &TcpUpstream,
    ) {
        let facts = StreamFacts {
            name: self.name.to_string(),
            tls: self.config.mode.as_str(),
            upstream: to.to_string(),
            sni,
        };
        let _ = client.registration.conn().stream.set(facts);
        client.registration.list(tls);
    }

    /// Both legs joined until the end; the access line follows.
    pub(crate) async fn join<C>(&self, client: C, upstream: UpstreamLeg<TcpStream>, mut record: Record)
    where
        C: AsyncRead + AsyncWrite + Unpin,
    {
        let end = join::join(client, upstream, self.config.idle_timeout, self.stop.clone()).await;
        record.end = Some(end);
    }
}
