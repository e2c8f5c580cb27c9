//! The TLS policy of the listeners: which cipher suites and key-exchange
//! groups are offered, in what order, and how sessions are resumed.
//!
//! The configuration has already checked every name against what the
//! aws-lc-rs provider implements, so this only picks them out in order.

use std::sync::Arc;

use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::server::{
    NoServerSessionStorage, ProducesTickets, ServerSessionMemoryCache, StoresServerSessions,
};

use crate::config::TlsConfig;

/// Sessions kept for TLS 1.2 session-ID resumption. An entry is a few
/// hundred bytes, so this is a few MiB at most; TLS 1.3 clients use the
/// stateless tickets instead and cost nothing here.
const SESSION_CACHE_ENTRIES: usize = 20_000;

/// The provider with only the configured suites and groups, in the
/// configured order.
pub fn provider(tls: &TlsConfig) -> CryptoProvider {
    let cipher_suites = tls
        .cipher_suites
        .iter()
        .filter_map(|wanted| {
            aws_lc_rs::ALL_CIPHER_SUITES
                .iter()
                .find(|s| s.suite() == *wanted)
                .copied()
        })
        .collect();
    let kx_groups = tls
        .groups
        .iter()
        .filter_map(|wanted| {
            aws_lc_rs::ALL_KX_GROUPS
                .iter()
                .find(|g| g.name() == *wanted)
                .copied()
        })
        .collect();
    CryptoProvider {
        cipher_suites,
        kx_groups,
        ..aws_lc_rs::default_provider()
    }
}

/// How sessions are resumed: with `session_resumption`, stateless tickets
/// whose keys rotate every six hours (the previous key still decrypts
/// for one more period) plus an in-memory session cache; without it,
/// every connection makes a full handshake.
///
/// Both live in the server configuration, which is built once: a
/// certificate reload swaps the certificate store only, so resumption
/// keeps working across renewals.
pub struct Resumption {
    pub ticketer: Arc<dyn ProducesTickets>,
    pub storage: Arc<dyn StoresServerSessions + Send + Sync>,
    pub tls13_tickets: usize,
}

pub fn resumption(enabled: bool) -> Result<Resumption, rustls::Error> {
    if enabled {
        Ok(Resumption {
            ticketer: aws_lc_rs::Ticketer::new()?,
            storage: ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES),
            // rustls's default: two, so a client can open two connections
            // in parallel that both resume.
            tls13_tickets: 2,
        })
    } else {
        Ok(Resumption {
            ticketer: Arc::new(NeverProducesTickets),
            storage: Arc::new(NoServerSessionStorage {}),
            tls13_tickets: 0,
        })
    }
}

/// A ticketer that issues nothing, for `session_resumption = false`.
#[derive(Debug)]
struct NeverProducesTickets;

impl ProducesTickets for NeverProducesTickets {
    fn enabled(&self) -> bool {
        false
    }
    fn lifetime(&self) -> u32 {
        0
    }
    fn encrypt(&self, _: &[u8]) -> Option<Vec<u8>> {
        None
    }
    fn decrypt(&self, _: &[u8]) -> Option<Vec<u8>> {
        None
    }
}
