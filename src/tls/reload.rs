//! Certificate hot reload: notices a renewed certificate by itself,
//! validates it, and swaps it in with one atomic store; never serves a bad
//! one, and never touches connections already open.
//!
//! Triggers: filesystem events on the parent directories of the configured
//! files (every renewal tool replaces files by rename or by re-pointing a
//! symlink, which a watch on the file itself would miss), a content poll
//! for filesystems without events, and an explicit request (SIGHUP).
//! Events are debounced so that a key and a certificate written one after
//! the other are read together.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::certs::{self, CertError, FileRole, LoadedCert};
use super::store::CertStore;
use crate::config::CertificateSource;

/// Quiet time after the last filesystem event before files are read.
const DEBOUNCE: Duration = Duration::from_millis(300);
/// A key that does not match its certificate is most often a pair caught
/// half-written (one file replaced, the other not yet): it is read once
/// more after this long before it counts as rejected.
const MISMATCH_RETRY: Duration = Duration::from_secs(1);
/// How often files are polled while a slot still serves its bootstrap
/// certificate: the first real certificate should appear quickly.
const BOOTSTRAP_POLL: Duration = Duration::from_secs(2);

/// A digest of a certificate file and its key file, to publish only changes.
pub type ContentHash = [u8; 32];

/// Reads a pair through the configured paths and validates it; its SANs
/// must cover `names`.
pub fn read_pair(
    source: &CertificateSource,
    names: &[String],
) -> Result<(LoadedCert, ContentHash), CertError> {
    let cert = certs::read_file(FileRole::Cert, &source.cert)?;
    let key = certs::read_file(FileRole::Key, &source.key)?;
    let hash = content_hash(&cert, &key);
    let loaded = certs::from_pem(&cert, &key, names, &source.cert, &source.key)?;
    Ok((loaded, hash))
}

fn content_hash(cert: &[u8], key: &[u8]) -> ContentHash {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(&(cert.len() as u64).to_be_bytes());
    ctx.update(cert);
    ctx.update(key);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// One configured pair and what is known of what is served for it.
#[derive(Debug, Clone)]
pub struct Slot {
    pub source: CertificateSource,
    /// Digest of the files behind the certificate in service; `None` while a
    /// bootstrap certificate stands in for files that do not exist yet.
    pub served: Option<ContentHash>,
}

/// Reload counters, for logs and metrics.
#[derive(Debug, Default)]
pub struct ReloadStats {
    pub published: AtomicU64,
    pub rejected: AtomicU64,
    /// Configured certificates still served by a bootstrap certificate.
    pub bootstrapping: AtomicUsize,
}

/// A handle to ask for a reload (what SIGHUP does) and read the counters.
#[derive(Debug, Clone)]
pub struct ReloadHandle {
    request: Arc<Notify>,
    pub stats: Arc<ReloadStats>,
}

impl ReloadHandle {
    /// Re-reads every certificate now, as SIGHUP does.
    pub fn reload_now(&self) {
        self.request.notify_one();
    }
}

/// The reloader before it runs: built at bind time, started by `run`.
pub struct Reloader {
    slots: Vec<Slot>,
    store: Arc<CertStore>,
    poll: Option<Duration>,
    handle: ReloadHandle,
    /// Signalled by the watcher's thread on every relevant event.
    changed: Arc<Notify>,
    watcher: Option<DirWatcher>,
    /// A pair looked half-written at the last pass.
    retry: bool,
}

impl Reloader {
    /// Sets up the watches at once, then re-reads the files: a change that
    /// landed between the first load and the first watch is caught here,
    /// before the proxy serves anything.
    pub fn new(slots: Vec<Slot>, store: Arc<CertStore>, watch: bool, poll: Option<Duration>) -> Self {
        let changed = Arc::new(Notify::new());
        let mut watcher = if watch && !slots.is_empty() {
            DirWatcher::new(changed.clone())
        } else {
            None
        };
        if let Some(w) = watcher.as_mut() {
            w.update(&slots);
        }
        // The certificates loaded at start, in slot order; a bootstrap
        // certificate stands in for files that are not there yet.
        let snapshot = store.snapshot();
        for (slot, cert) in slots.iter().zip(snapshot.certs()) {
            if slot.served.is_some() {
                warn_if_incomplete(cert);
            }
        }
        drop(snapshot);
        let mut reloader = Reloader {
            slots,
            store,
            poll,
            handle: ReloadHandle {
                request: Arc::new(Notify::new()),
                stats: Arc::new(ReloadStats::default()),
            },
            changed,
            watcher,
            retry: false,
        };
        reloader.retry = reloader.reload_all("start", false);
        reloader
    }

    pub fn handle(&self) -> ReloadHandle {
        self.handle.clone()
    }

    /// Follows the files until `cancel` fires.
    pub async fn run(mut self, cancel: CancellationToken) {
        if self.slots.is_empty() {
            return;
        }
        let changed = self.changed.clone();
        let mut retry = self.retry;
        loop {
            let poll = if self.slots.iter().any(|s| s.served.is_none()) {
                Some(self.poll.map_or(BOOTSTRAP_POLL, |p| p.min(BOOTSTRAP_POLL)))
            } else {
                self.poll
            };
            let poll_sleep = async {
                match poll {
                    Some(p) => tokio::time::sleep(p).await,
                    None => std::future::pending().await,
                }
            };
            let why = tokio::select! {
                () = cancel.cancelled() => return,
                () = changed.notified() => {
                    // Let a burst of events (key, then cert, then symlinks)
                    // settle, so the pair is read together.
                    loop {
                        tokio::select! {
                            () = cancel.cancelled() => return,
                            () = changed.notified() => continue,
                            () = tokio::time::sleep(DEBOUNCE) => break,
                        }
                    }
                    "file change"
                }
                () = self.handle.request.notified() => "reload request",
                () = poll_sleep => "poll",
                () = sleep_if(retry) => "re-read of a half-written pair",
            };
            retry = self.reload_all(why, retry && why != "file change");
            if let Some(w) = self.watcher.as_mut() {
                w.update(&self.slots);
            }
        }
    }

    /// Reloads every slot; true when one of them should be read again soon
    /// because its pair looked half-written. `final_try` makes such a pair
    /// count as rejected now.
    fn reload_all(&mut self, why: &str, final_try: bool) -> bool {
        let mut retry = false;
        for index in 0..self.slots.len() {
            retry |= self.reload_one(index, why, final_try);
        }
        let waiting = self.slots.iter().filter(|s| s.served.is_none()).count();
        self.handle.stats.bootstrapping.store(waiting, Ordering::Relaxed);
        retry
    }

    fn reload_one(&mut self, index: usize, why: &str, final_try: bool) -> bool {
        let slot = &mut self.slots[index];
        let stats = &self.handle.stats;
        let bootstrapping = slot.served.is_none();
        // A renewal must keep serving every name served so far: without
        // configured names, those are the names of the certificate in
        // service. A bootstrap certificate's names bind nothing.
        let required = if slot.source.names.is_empty() && !bootstrapping {
            let snapshot = self.store.snapshot();
            snapshot
                .certs()
                .get(index)
                .map(|c| c.names.clone())
                .unwrap_or_default()
        } else {
            slot.source.names.clone()
        };
        match read_pair(&slot.source, &required) {
            Ok((_, hash)) if slot.served == Some(hash) => {
                tracing::debug!(cert = %slot.source.cert.display(), %why, "certificate unchanged");
            }
            Ok((cert, hash)) => {
                let f = cert.facts.clone();
                let cert = Arc::new(cert);
                if self.store.replace(index, cert.clone()) {
                    slot.served = Some(hash);
                    stats.published.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        cert = %slot.source.cert.display(),
                        serial = %f.serial,
                        sans = %f.sans.join(","),
                        not_after = %humantime::format_rfc3339_seconds(f.not_after),
                        sha256 = %f.sha256,
                        %why,
                        "certificate reloaded: new connections get the new certificate"
                    );
                    warn_if_incomplete(&cert);
                }
            }
            // While bootstrapping, missing files are the expected state.
            Err(CertError::NotFound { .. }) if bootstrapping => {
                tracing::debug!(cert = %slot.source.cert.display(), "still waiting for the first certificate");
            }
            Err(CertError::KeyMismatch { .. }) if !final_try => {
                tracing::debug!(cert = %slot.source.cert.display(), "key and certificate do not match yet; reading them again shortly");
                return true;
            }
            Err(e) => {
                stats.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    cert = %slot.source.cert.display(),
                    %why,
                    "new certificate rejected, the current one stays in service; will retry at the next change: {e}"
                );
            }
        }
        false
    }
}

/// A chain without its intermediates is served, but said loudly: every
/// load and every reload that publishes it warns, naming the file. The
/// serial tells one certificate's warning from the next one's, which
/// repeated warnings are limited by (see `log_limit`).
fn warn_if_incomplete(cert: &LoadedCert) {
    if let Some(gap) = &cert.incomplete_chain {
        tracing::warn!(serial = %cert.facts.serial, "{gap}");
    }
}

async fn sleep_if(armed: bool) {
    if armed {
        tokio::time::sleep(MISMATCH_RETRY).await;
    } else {
        std::future::pending::<()>().await;
    }
}

/// Watches the directories that hold the configured files, the
/// directories their symlinks point into, and, for files that do not exist
/// yet, the nearest ancestor that does.
struct DirWatcher {
    watcher: RecommendedWatcher,
    /// Watched directory -> (device, inode), to notice a directory that was
    /// replaced and needs watching again.
    watched: HashMap<PathBuf, (u64, u64)>,
}

impl DirWatcher {
    fn new(changed: Arc<Notify>) -> Option<Self> {
        let handler = move |event: notify::Result<notify::Event>| match event {
            // Our own reads show up as access events; they change nothing.
            Ok(e) if matches!(e.kind, EventKind::Access(_)) => {}
            Ok(_) => changed.notify_one(),
            // An overflowed queue may have lost the event that mattered.
            Err(_) => changed.notify_one(),
        };
        match notify::recommended_watcher(handler) {
            Ok(watcher) => Some(DirWatcher {
                watcher,
                watched: HashMap::new(),
            }),
            Err(e) => {
                tracing::warn!("cannot watch certificate directories ({e}); relying on the poll");
                None
            }
        }
    }

    fn update(&mut self, slots: &[Slot]) {
        let mut wanted: Vec<PathBuf> = Vec::new();
        for slot in slots {
            for path in [&slot.source.cert, &slot.source.key] {
                wanted.extend(dirs_for(path));
            }
        }
        for dir in wanted {
            let Ok(meta) = std::fs::metadata(&dir) else {
                continue;
            };
            let id = (meta.dev(), meta.ino());
            if self.watched.get(&dir) == Some(&id) {
                continue;
            }
            if self.watched.contains_key(&dir) {
                let _ = self.watcher.unwatch(&dir);
            }
            match self.watcher.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    tracing::debug!(dir = %dir.display(), "watching for certificate changes");
                    self.watched.insert(dir, id);
                }
                Err(e) => tracing::warn!(dir = %dir.display(), "cannot watch ({e}); relying on the poll"),
            }
        }
    }
}

/// The directories whose changes can change what `path` reads.
fn dirs_for(path: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(parent) = path.parent() {
        dirs.push(nearest_existing(parent));
    }
    // certbot's live/ links into archive/; an in-place edit of the target
    // is seen in the target's directory.
    if let Ok(target) = std::fs::canonicalize(path) {
        if let Some(parent) = target.parent() {
            dirs.push(parent.to_path_buf());
        }
    }
    dirs
}

fn nearest_existing(dir: &Path) -> PathBuf {
    let mut candidate = dir;
    loop {
        if candidate.is_dir() {
            return candidate.to_path_buf();
        }
        match candidate.parent() {
            Some(p) if !p.as_os_str().is_empty() => candidate = p,
            _ => return PathBuf::from("."),
        }
    }
}
