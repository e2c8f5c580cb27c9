//! The certificates in service, and the choice of one for each handshake.
//!
//! The whole set lives in one immutable [`Snapshot`] behind an
//! [`ArcSwap`], so a reload replaces every certificate in a single atomic
//! store while handshakes keep reading without locks. A handshake that has
//! already picked a certificate holds its own `Arc` to it and is unaffected.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::certs::{self, LoadedCert};

/// Longest DNS name (RFC 1035); longer SNI cannot match any entry.
const MAX_DNS_NAME: usize = 253;

/// One immutable generation of the certificate set, with its lookup tables.
pub struct Snapshot {
    certs: Vec<Arc<LoadedCert>>,
    /// Lowercase name -> index into `certs`.
    exact: HashMap<Box<str>, usize>,
    /// Parent of a `*.parent` entry -> index into `certs`.
    wildcard: HashMap<Box<str>, usize>,
}

impl Snapshot {
    fn build(certs: Vec<Arc<LoadedCert>>) -> Self {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for (index, cert) in certs.iter().enumerate() {
            for name in &cert.names {
                // Names are normally normalized already; this keeps lookups
                // right for a LoadedCert built by hand.
                let name = certs::normalize_name(name);
                let (table, key) = match name.strip_prefix("*.") {
                    Some(parent) if !parent.is_empty() => (&mut wildcard, parent.to_owned()),
                    _ => (&mut exact, name),
                };
                // The first certificate to claim a name keeps it, so the
                // configuration's order decides overlaps.
                table.entry(key.into_boxed_str()).or_insert(index);
            }
        }
        Snapshot {
            certs,
            exact,
            wildcard,
        }
    }

    pub fn certs(&self) -> &[Arc<LoadedCert>] {
        &self.certs
    }

    /// Exact name, then a one-label wildcard, then the first certificate.
    fn lookup(&self, sni: Option<&str>) -> Option<&Arc<LoadedCert>> {
        let index = sni.and_then(|name| self.index_for(name)).unwrap_or(0);
        self.certs.get(index)
    }

    fn index_for(&self, sni: &str) -> Option<usize> {
        let sni = sni.strip_suffix('.').unwrap_or(sni);
        // rustls hands SNI over already lowercased, so the copy below only
        // happens for callers of `resolve_name` with mixed case, and then on
        // the stack rather than the heap.
        let mut buf = [0u8; MAX_DNS_NAME];
        let name: &str = if sni.bytes().any(|b| b.is_ascii_uppercase()) {
            let dst = buf.get_mut(..sni.len())?;
            dst.copy_from_slice(sni.as_bytes());
            let lowered = std::str::from_utf8_mut(dst).ok()?;
            lowered.make_ascii_lowercase();
            lowered
        } else {
            sni
        };
        if let Some(&i) = self.exact.get(name) {
            return Some(i);
        }
        let (label, parent) = name.split_once('.')?;
        if label.is_empty() {
            return None;
        }
        self.wildcard.get(parent).copied()
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.certs.iter().map(|c| &c.names))
            .finish()
    }
}

/// The certificates in service; rustls asks it for one on every handshake.
pub struct CertStore {
    current: ArcSwap<Snapshot>,
    /// Counts the sets put in service, so that the OCSP stapler hears of a
    /// new or renewed certificate at once instead of at its next refresh.
    changes: tokio::sync::watch::Sender<u64>,
}

impl CertStore {
    /// The first certificate is the default for clients whose SNI matches
    /// nothing or who send none; an empty store refuses every handshake.
    pub fn new(certs: Vec<Arc<LoadedCert>>) -> Self {
        CertStore {
            current: ArcSwap::from_pointee(Snapshot::build(certs)),
            changes: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Puts a whole new set in service at once.
    pub fn publish(&self, certs: Vec<Arc<LoadedCert>>) {
        self.current
            .rcu(|current| Arc::new(Snapshot::build(keep_staples(current, certs.clone()))));
        self.changes.send_modify(|n| *n += 1);
    }

    /// Wakes when a set is published or a certificate replaced.
    pub(crate) fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Staples each response of `staples` (or removes the staple, with
    /// `None`) to every certificate in service whose leaf has that SHA-256,
    /// in one new set. Matching on the leaf rather than on a position keeps
    /// a response from landing on a certificate that a reload put in its
    /// place.
    pub(crate) fn staple(&self, staples: &HashMap<&str, Option<&[u8]>>) {
        if staples.is_empty() {
            return;
        }
        self.current.rcu(|current| {
            let mut changed = false;
            let certs: Vec<Arc<LoadedCert>> = current
                .certs
                .iter()
                .map(|cert| match staples.get(cert.facts.sha256.as_str()) {
                    Some(&ocsp) if cert.certified.ocsp.as_deref() != ocsp => {
                        changed = true;
                        with_staple(cert, ocsp.map(<[u8]>::to_vec))
                    }
                    _ => Arc::clone(cert),
                })
                .collect();
            if changed {
                Arc::new(Snapshot::build(certs))
            } else {
                Arc::clone(current)
            }
        });
    }

    /// Swaps one certificate, keeping the others; false if `index` is out of
    /// range. Safe against a concurrent `publish` or `replace`: the change is
    /// applied to whichever set is current.
    pub fn replace(&self, index: usize, cert: Arc<LoadedCert>) -> bool {
        let mut in_range = false;
        self.current.rcu(|current| {
            in_range = index < current.certs.len();
            if !in_range {
                return Arc::clone(current);
            }
            let mut certs = current.certs.clone();
            certs[index] = Arc::clone(&cert);
            Arc::new(Snapshot::build(keep_staples(current, certs)))
        });
        if in_range {
            self.changes.send_modify(|n| *n += 1);
        }
        in_range
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Whether a certificate names `sni` (exactly or by a wildcard), as
    /// opposed to `sni` getting the first certificate by default.
    pub fn covers(&self, sni: &str) -> bool {
        self.current.load().index_for(sni).is_some()
    }

    /// The certificate a handshake with this SNI would get.
    pub fn resolve_name(&self, sni: Option<&str>) -> Option<Arc<LoadedCert>> {
        self.current.load().lookup(sni).cloned()
    }
}

/// A certificate read again from unchanged files keeps the OCSP response
/// stapled to it, so that a reload never serves a handshake without one.
fn keep_staples(current: &Snapshot, certs: Vec<Arc<LoadedCert>>) -> Vec<Arc<LoadedCert>> {
    let stapled: HashMap<&str, &Vec<u8>> = current
        .certs
        .iter()
        .filter_map(|old| Some((old.facts.sha256.as_str(), old.certified.ocsp.as_ref()?)))
        .collect();
    if stapled.is_empty() {
        return certs;
    }
    certs
        .into_iter()
        .map(|cert| match stapled.get(cert.facts.sha256.as_str()) {
            Some(&ocsp) if cert.certified.ocsp.is_none() => with_staple(&cert, Some(ocsp.clone())),
            _ => cert,
        })
        .collect()
}

/// `cert` with `ocsp` as its staple.
fn with_staple(cert: &LoadedCert, ocsp: Option<Vec<u8>>) -> Arc<LoadedCert> {
    let mut certified = CertifiedKey::clone(&cert.certified);
    certified.ocsp = ocsp;
    Arc::new(LoadedCert {
        certified: Arc::new(certified),
        ..LoadedCert::clone(cert)
    })
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let snapshot = self.current.load();
        snapshot
            .lookup(client_hello.server_name())
            .map(|cert| Arc::clone(&cert.certified))
    }
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore")
            .field("certs", &*self.current.load())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::selfsigned;

    fn cert(names: &[&str]) -> Arc<LoadedCert> {
        let mut c = selfsigned::generate(&[]).unwrap();
        c.names = names.iter().map(|s| s.to_string()).collect();
        Arc::new(c)
    }

    fn which(store: &CertStore, sni: Option<&str>) -> Option<String> {
        store.resolve_name(sni).map(|c| c.names[0].clone())
    }

    #[test]
    fn exact_then_wildcard_then_first() {
        let store = CertStore::new(vec![
            cert(&["default.test"]),
            cert(&["*.example.com"]),
            cert(&["www.example.com", "Example.com"]),
        ]);
        let w = |s| which(&store, s);
        assert_eq!(w(Some("www.example.com")).unwrap(), "www.example.com");
        assert_eq!(w(Some("example.com")).unwrap(), "www.example.com");
        assert_eq!(w(Some("api.example.com")).unwrap(), "*.example.com");
        assert_eq!(w(Some("a.b.example.com")).unwrap(), "default.test");
        assert_eq!(w(Some("elsewhere.test")).unwrap(), "default.test");
        assert_eq!(w(None).unwrap(), "default.test");
    }

    #[test]
    fn case_and_trailing_dot_do_not_matter() {
        let store = CertStore::new(vec![cert(&["a.test"]), cert(&["b.test", "*.w.test"])]);
        assert_eq!(which(&store, Some("B.Test.")).unwrap(), "b.test");
        assert_eq!(which(&store, Some("X.W.TEST")).unwrap(), "b.test");
    }

    #[test]
    fn odd_sni_falls_back_to_default() {
        let store = CertStore::new(vec![cert(&["a.test"]), cert(&["*.test"])]);
        let long = "A".repeat(300);
        assert_eq!(which(&store, Some(&long)).unwrap(), "a.test");
        assert_eq!(which(&store, Some(".test")).unwrap(), "a.test");
        assert_eq!(which(&store, Some("")).unwrap(), "a.test");
        assert_eq!(which(&store, Some("é.TEST")).unwrap(), "*.test");
    }

    #[test]
    fn first_claim_on_a_name_wins() {
        let store = CertStore::new(vec![cert(&["x.test", "dup.test"]), cert(&["dup.test"])]);
        assert!(Arc::ptr_eq(
            &store.resolve_name(Some("dup.test")).unwrap(),
            &store.snapshot().certs()[0]
        ));
    }

    #[test]
    fn empty_store_resolves_nothing() {
        let store = CertStore::new(Vec::new());
        assert!(store.resolve_name(Some("a.test")).is_none());
        assert!(store.resolve_name(None).is_none());
        assert!(!store.replace(0, cert(&["a.test"])));
    }

    #[test]
    fn publish_and_replace_swap_what_resolves() {
        let store = CertStore::new(vec![cert(&["a.test"])]);
        let before = store.snapshot();
        store.publish(vec![cert(&["b.test"]), cert(&["c.test"])]);
        assert_eq!(which(&store, None).unwrap(), "b.test");
        // Whoever held the old generation still sees it whole.
        assert_eq!(before.certs()[0].names, ["a.test"]);

        assert!(store.replace(1, cert(&["d.test"])));
        assert_eq!(which(&store, Some("d.test")).unwrap(), "d.test");
        assert_eq!(which(&store, Some("c.test")).unwrap(), "b.test");
        assert!(!store.replace(2, cert(&["e.test"])));
        assert_eq!(store.snapshot().certs().len(), 2);
        assert!(format!("{store:?}").contains("d.test"));
    }
}
