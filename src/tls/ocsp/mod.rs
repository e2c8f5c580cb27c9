//! OCSP stapling (`[tls] ocsp_stapling = true`): for every certificate in
//! service whose CA runs a responder, a response is fetched, checked, and
//! handed to rustls, which sends it to clients that ask (`status_request`).
//!
//! One task does it all, off the handshake path: start-up and handshakes
//! never wait for a responder. A response is refreshed at half its
//! validity; a failed fetch is retried with a growing delay, and the last
//! good response is served until its `nextUpdate`, then none. A response
//! that does not verify (see [`response`]) is never served. New and
//! renewed certificates are stapled as soon as the store publishes them.
//!
//! Parts, in the order a staple is made: [`request`] (the responder's URL,
//! the issuer, the request), [`fetch`] (one HTTP POST), [`response`] (the
//! checks), [`der`] (the encoding both use).

pub(crate) mod der;
mod fetch;
mod request;
mod response;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::certs::LoadedCert;
use super::store::CertStore;
use request::{Target, Unstapleable};

/// The first retry after a failed fetch; each further failure doubles it.
const FIRST_RETRY: Duration = Duration::from_secs(5);
const LONGEST_RETRY: Duration = Duration::from_secs(3600);
/// No responder is asked about one certificate more often than this, even
/// when its responses are valid for less than twice as long.
const SHORTEST_REFRESH: Duration = Duration::from_secs(30);
/// A response without nextUpdate ("newer information is always available")
/// is served and refreshed for this long.
const WITHOUT_NEXT_UPDATE: Duration = Duration::from_secs(3600);
/// Responders asked at once when many certificates are due.
const CONCURRENT_FETCHES: usize = 8;

/// Whether stapling is on (a configuration reload turns it on or off),
/// and what the responders answered.
#[derive(Debug)]
pub(crate) struct Stapling {
    enabled: AtomicBool,
    wake: Notify,
    /// `portcullis_ocsp_responses_total{result}`: good (stapled), refused
    /// (an answer that did not verify, or not good), failed (no answer).
    responses: Family<Outcome, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    result: String,
}

impl Stapling {
    pub(crate) fn new(enabled: bool, registry: &mut Registry) -> Arc<Self> {
        let responses = Family::<Outcome, Counter>::default();
        registry.register(
            "ocsp_responses",
            "OCSP responses asked for stapling, by result: good (stapled), refused (did not \
             verify, or the certificate is revoked or unknown), failed (no answer)",
            responses.clone(),
        );
        Arc::new(Stapling {
            enabled: AtomicBool::new(enabled),
            wake: Notify::new(),
            responses,
        })
    }

    fn count(&self, result: &str) {
        self.responses
            .get_or_create(&Outcome {
                result: result.to_owned(),
            })
            .inc();
    }

    pub(crate) fn set(&self, enabled: bool) {
        if self.enabled.swap(enabled, Ordering::Relaxed) != enabled {
            self.wake.notify_one();
        }
    }
}

/// What is known about one certificate (by its leaf's SHA-256).
struct Entry {
    target: Result<Target, Unstapleable>,
    staple: Option<Staple>,
    next_fetch: Instant,
    failures: u32,
}

struct Staple {
    der: Arc<[u8]>,
    expires: SystemTime,
}

/// Keeps the certificates of `store` stapled until `cancel`.
pub(crate) async fn run(store: Arc<CertStore>, stapling: Arc<Stapling>, cancel: CancellationToken) {
    let mut changes = store.subscribe();
    let mut entries: HashMap<String, Entry> = HashMap::new();
    loop {
        let next = pass(&store, &stapling, &mut entries).await;
        tokio::select! {
            () = cancel.cancelled() => return,
            changed = changes.changed() => if changed.is_err() { return },
            () = stapling.wake.notified() => {}
            () = tokio::time::sleep_until(next) => {}
        }
    }
}

/// Brings every staple up to date; returns when the next one falls due.
async fn pass(store: &CertStore, stapling: &Stapling, entries: &mut HashMap<String, Entry>) -> Instant {
    let idle = Instant::now() + LONGEST_RETRY;
    if !stapling.enabled.load(Ordering::Relaxed) {
        entries.clear();
        apply(store, entries);
        return idle;
    }
    let snapshot = store.snapshot();
    let in_service: HashSet<&str> = snapshot.certs().iter().map(|c| c.facts.sha256.as_str()).collect();
    entries.retain(|sha, _| in_service.contains(sha.as_str()));
    for cert in snapshot.certs() {
        if !entries.contains_key(&cert.facts.sha256) {
            entries.insert(cert.facts.sha256.clone(), Entry::new(cert));
        }
    }
    let now = Instant::now();
    let mut due = Vec::new();
    for (sha, entry) in entries.iter_mut() {
        let Ok(target) = &entry.target else { continue };
        if entry
            .staple
            .as_ref()
            .is_some_and(|s| s.expires <= SystemTime::now())
        {
            tracing::warn!(responder = %target.url,
                "OCSP stapling: the stapled response expired before a new one could be fetched; \
                 serving none");
            entry.staple = None;
        }
        if entry.next_fetch <= now {
            due.push((sha.clone(), target.clone()));
        }
    }
    let results: Vec<_> = futures_util::stream::iter(due)
        .map(|(sha, target)| async move {
            let outcome = ask(&target).await;
            (sha, outcome)
        })
        .buffer_unordered(CONCURRENT_FETCHES)
        .collect()
        .await;
    for (sha, outcome) in results {
        let Some(entry) = entries.get_mut(&sha) else {
            continue;
        };
        stapling.count(match &outcome {
            Ok(_) => "good",
            Err(Failed { refused: true, .. }) => "refused",
            Err(_) => "failed",
        });
        entry.settle(outcome);
    }
    apply(store, entries);
    entries
        .values()
        .filter(|entry| entry.target.is_ok())
        .flat_map(|entry| {
            let expiry = entry.staple.as_ref().map(|s| {
                let left = s.expires.duration_since(SystemTime::now()).unwrap_or_default();
                Instant::now() + left
            });
            std::iter::once(entry.next_fetch).chain(expiry)
        })
        .min()
        .map_or(idle, |next| next.min(idle))
}

/// Makes the certificates in service carry the staples of `entries`, and
/// none where there is none, in one new set if anything differs.
fn apply(store: &CertStore, entries: &HashMap<String, Entry>) {
    let snapshot = store.snapshot();
    let mut changes: HashMap<&str, Option<&[u8]>> = HashMap::new();
    for cert in snapshot.certs() {
        let sha = cert.facts.sha256.as_str();
        let wanted = entries.get(sha).and_then(|e| e.staple.as_ref()).map(|s| &*s.der);
        if cert.certified.ocsp.as_deref() != wanted {
            changes.insert(sha, wanted);
        }
    }
    store.staple(&changes);
}

/// Why no response was stapled this time.
struct Failed {
    why: String,
    /// An answer came, and did not verify or was not `good`.
    refused: bool,
    /// The responder says the certificate is revoked: a good response
    /// stapled earlier must not be served any longer.
    revoked: bool,
}

impl From<String> for Failed {
    fn from(why: String) -> Self {
        Failed {
            why,
            refused: false,
            revoked: false,
        }
    }
}

/// Fetches and checks a response for `target`.
async fn ask(target: &Target) -> Result<(Vec<u8>, response::Good), Failed> {
    let request = request::encode(target).ok_or_else(|| "the issuer's key could not be read".to_owned())?;
    let answer = fetch::post(&target.url, &request).await?;
    let good = response::verify(&answer, target, SystemTime::now()).map_err(|refused| {
        let revoked = refused == response::Refused::Revoked;
        if revoked {
            tracing::error!(responder = %target.url, "OCSP: {refused}");
        }
        Failed {
            why: refused.to_string(),
            refused: true,
            revoked,
        }
    })?;
    Ok((answer, good))
}

impl Entry {
    /// A certificate seen for the first time: what stapling it takes, due now.
    fn new(cert: &LoadedCert) -> Entry {
        let target = request::target(&cert.certified.cert);
        match &target {
            Ok(target) => tracing::info!(certificate = %cert.facts.subject, responder = %target.url,
                "OCSP stapling: asking the responder"),
            Err(Unstapleable::NoResponder) => tracing::info!(certificate = %cert.facts.subject,
                "OCSP stapling: the certificate names no responder, so it is served without a staple"),
            Err(why) => tracing::warn!(certificate = %cert.facts.subject,
                "OCSP stapling is not possible: {why}"),
        }
        Entry {
            target,
            staple: None,
            next_fetch: Instant::now(),
            failures: 0,
        }
    }

    /// Keeps a verified response, or schedules the next try after a failure.
    fn settle(&mut self, outcome: Result<(Vec<u8>, response::Good), Failed>) {
        let Ok(target) = &self.target else { return };
        match outcome {
            Ok((der, good)) => {
                let now = SystemTime::now();
                let expires = good.next_update.unwrap_or(now + WITHOUT_NEXT_UPDATE);
                let lifetime = expires.duration_since(good.this_update).unwrap_or_default();
                let refresh_at = good.this_update + lifetime / 2;
                let wait = refresh_at
                    .duration_since(now)
                    .unwrap_or_default()
                    .max(SHORTEST_REFRESH);
                tracing::info!(responder = %target.url, valid_for_s = expires.duration_since(now)
                    .unwrap_or_default().as_secs(), refresh_in_s = wait.as_secs(),
                    "OCSP stapling: a good response is stapled");
                self.staple = Some(Staple {
                    der: der.into(),
                    expires,
                });
                self.next_fetch = Instant::now() + wait;
                self.failures = 0;
            }
            Err(Failed { why, revoked, .. }) => {
                self.failures = self.failures.saturating_add(1);
                let wait = FIRST_RETRY
                    .saturating_mul(1 << self.failures.saturating_sub(1).min(16))
                    .min(LONGEST_RETRY);
                let keeping = if revoked {
                    "the stapled response, if any, is withdrawn"
                } else if self.staple.is_some() {
                    "the last good response stays stapled until it expires"
                } else {
                    "handshakes go on without a staple"
                };
                tracing::warn!(responder = %target.url, retry_in_s = wait.as_secs(),
                    "OCSP stapling: {why}; {keeping}");
                if revoked {
                    self.staple = None;
                }
                self.next_fetch = Instant::now() + wait;
            }
        }
    }
}
