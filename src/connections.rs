//! Live client connections: what the admin `/connections` page lists (peer,
//! TLS facts, age, bytes each way, tunnels) and what `/metrics` sums for
//! bytes in and out. Each connection registers once its handshake is done
//! and leaves on drop; the hot path only touches its own atomics.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime};

/// What the TLS handshake settled.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TlsFacts {
    pub sni: Option<String>,
    pub alpn: Option<String>,
    pub version: String,
    pub cipher: String,
    /// The verified client certificate's subject, with mutual TLS.
    pub client_subject: Option<String>,
}

/// What a stream connection was joined to (`[[stream]]`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct StreamFacts {
    /// The stream's name.
    pub name: String,
    /// `terminate`, `passthrough` or `none`.
    pub tls: &'static str,
    /// The upstream, `tcp://host:port`.
    pub upstream: String,
    /// The server name of a passthrough ClientHello; with `terminate` it
    /// is in the TLS facts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
}

/// One client connection.
#[derive(Debug)]
pub struct Conn {
    pub id: u64,
    pub peer: SocketAddr,
    pub started: Instant,
    pub started_at: SystemTime,
    pub tls: OnceLock<TlsFacts>,
    /// Set for a stream's connections.
    pub stream: OnceLock<StreamFacts>,
    /// Bytes read from the client, on the wire (TLS records included).
    pub bytes_in: AtomicU64,
    /// Bytes written to the client, on the wire.
    pub bytes_out: AtomicU64,
    /// Upgraded tunnels open on this connection (0 or 1 for HTTP/1.1).
    pub tunnels: AtomicU32,
    /// Requests between their head and their response head.
    pub requests_in_flight: AtomicU32,
    /// Requests begun on this connection so far.
    pub requests_begun: AtomicU32,
}

/// Every live connection, and the bytes of those already closed.
#[derive(Debug, Default)]
pub struct ConnRegistry {
    next_id: AtomicU64,
    live: Mutex<HashMap<u64, Arc<Conn>>>,
    closed_in: AtomicU64,
    closed_out: AtomicU64,
}

/// Keeps a connection listed; dropping it moves its byte counts to the
/// closed totals and unlists it.
pub struct Registration {
    registry: Arc<ConnRegistry>,
    conn: Arc<Conn>,
    listed: bool,
}

impl ConnRegistry {
    /// A connection that is counted from its first byte but not yet listed.
    pub fn open(self: &Arc<Self>, peer: SocketAddr) -> Registration {
        let conn = Arc::new(Conn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed) + 1,
            peer,
            started: Instant::now(),
            started_at: SystemTime::now(),
            tls: OnceLock::new(),
            stream: OnceLock::new(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            tunnels: AtomicU32::new(0),
            requests_in_flight: AtomicU32::new(0),
            requests_begun: AtomicU32::new(0),
        });
        Registration {
            registry: self.clone(),
            conn,
            listed: false,
        }
    }

    /// The live connections, oldest first.
    pub fn snapshot(&self) -> Vec<Arc<Conn>> {
        let mut conns: Vec<Arc<Conn>> = match self.live.lock() {
            Ok(live) => live.values().cloned().collect(),
            Err(poisoned) => poisoned.into_inner().values().cloned().collect(),
        };
        conns.sort_by_key(|c| c.id);
        conns
    }

    /// (bytes in, bytes out) over every connection ever accepted.
    pub fn total_bytes(&self) -> (u64, u64) {
        let (mut bytes_in, mut bytes_out) = (
            self.closed_in.load(Ordering::Relaxed),
            self.closed_out.load(Ordering::Relaxed),
        );
        for c in self.snapshot() {
            bytes_in += c.bytes_in.load(Ordering::Relaxed);
            bytes_out += c.bytes_out.load(Ordering::Relaxed);
        }
        (bytes_in, bytes_out)
    }

    fn with_live<R>(&self, f: impl FnOnce(&mut HashMap<u64, Arc<Conn>>) -> R) -> R {
        match self.live.lock() {
            Ok(mut live) => f(&mut live),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }
}

impl Registration {
    pub fn conn(&self) -> &Arc<Conn> {
        &self.conn
    }

    /// Lists the connection, with what its handshake settled.
    pub fn list(&mut self, tls: Option<TlsFacts>) {
        if let Some(tls) = tls {
            let _ = self.conn.tls.set(tls);
        }
        self.registry
            .with_live(|live| live.insert(self.conn.id, self.conn.clone()));
        self.listed = true;
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // Counted here, while the entry is still listed, so a concurrent
        // total never misses these bytes (it may see them twice for an
        // instant, which a counter scrape tolerates better than a dip).
        self.registry
            .closed_in
            .fetch_add(self.conn.bytes_in.load(Ordering::Relaxed), Ordering::Relaxed);
        self.registry
            .closed_out
            .fetch_add(self.conn.bytes_out.load(Ordering::Relaxed), Ordering::Relaxed);
        if self.listed {
            self.registry.with_live(|live| live.remove(&self.conn.id));
        }
    }
}
