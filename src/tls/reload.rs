//! Certificate hot reload: notices a renewed certificate by itself,
//! validates it, and swaps it in with one atomic store; never serves a bad
//! one, and never touches connections already open.
//!
//! Triggers: filesystem events on the parent directories of the configured
//! files (every renewal tool replaces files by rename or by re-pointing a
//! symlink, which a watch on the file itself would miss), a content poll
//! for filesystems without events, and an explicit request (SIGHUP).
//! Events are debounced so that a key and a certificate written one after
//! the other are read together. Only events that name a configured file
//! (or a directory on its path, or a symlink target) count: a log file
//! written beside the certificates does not make them be read again. Events
//! that name only configured files (or their symlinks' targets) make only
//! the pairs of those files be read again: one renewal among thousands of
//! certificates reads one pair, not all of them.
//!
//! A configuration reload hands over a new list of pairs with their
//! certificates already loaded and checked ([`ReloadHandle::retarget`]);
//! they are published, and watched, from then on.

use std::collections::HashMap;
use std::ffi::OsString;
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
    retarget: tokio::sync::mpsc::UnboundedSender<Retarget>,
}

/// New pairs from a configuration reload, with their certificates.
struct Retarget {
    slots: Vec<Slot>,
    certs: Vec<Arc<LoadedCert>>,
    watch: bool,
    poll: Option<Duration>,
    done: tokio::sync::oneshot::Sender<()>,
}

impl ReloadHandle {
    /// Re-reads every certificate now, as SIGHUP does.
    pub fn reload_now(&self) {
        self.request.notify_one();
    }

    /// Serves `certs` for `slots` (loaded and checked by the caller) from
    /// now on, watched if `watch`; returns once they are published. Between
    /// two passes of the reloader, so that no pass of the old pairs can
    /// publish over the new ones.
    pub async fn retarget(
        &self,
        slots: Vec<Slot>,
        certs: Vec<Arc<LoadedCert>>,
        watch: bool,
        poll: Option<Duration>,
    ) {
        let (done, published) = tokio::sync::oneshot::channel();
        let sent = self.retarget.send(Retarget {
            slots,
            certs,
            watch,
            poll,
            done,
        });
        if sent.is_ok() {
            let _ = published.await;
        }
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
    /// What those events named, since the last pass.
    seen: Arc<std::sync::Mutex<Seen>>,
    watcher: Option<DirWatcher>,
    /// A pair looked half-written at the last pass.
    retry: bool,
    retargets: tokio::sync::mpsc::UnboundedReceiver<Retarget>,
}

impl Reloader {
    /// Sets up the watches at once, then re-reads the files: a change that
    /// landed between the first load and the first watch is caught here,
    /// before the proxy serves anything.
    pub fn new(slots: Vec<Slot>, store: Arc<CertStore>, watch: bool, poll: Option<Duration>) -> Self {
        let changed = Arc::new(Notify::new());
        let seen = Arc::new(std::sync::Mutex::new(Seen::default()));
        let mut watcher = if watch && !slots.is_empty() {
            DirWatcher::new(changed.clone(), seen.clone(), &slots)
        } else {
            None
        };
        let (retarget, retargets) = tokio::sync::mpsc::unbounded_channel();
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
                retarget,
            },
            changed,
            seen,
            watcher,
            retry: false,
            retargets,
        };
        reloader.retry = reloader.reload_all("start", false);
        reloader
    }

    pub fn handle(&self) -> ReloadHandle {
        self.handle.clone()
    }

    /// Follows the files until `cancel` fires.
    pub async fn run(mut self, cancel: CancellationToken) {
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
                Some(new) = self.retargets.recv() => {
                    self.take(new);
                    retry = false;
                    continue;
                }
                () = poll_sleep => "poll",
                () = sleep_if(retry) => "re-read of a half-written pair",
            };
            let final_try = retry && why != "file change";
            retry = match self.touched_slots(why) {
                // A half-written pair waiting to be read again is read
                // with every other one.
                Some(indices) if !retry => self.reload_some(indices, why, false),
                _ => self.reload_all(why, final_try),
            };
            if let Some(w) = self.watcher.as_mut() {
                w.update(&self.slots);
            }
        }
    }

    /// Serves the pairs of a configuration reload from now on.
    fn take(&mut self, new: Retarget) {
        for (slot, cert) in new.slots.iter().zip(&new.certs) {
            let before = self.slots.iter().find(|s| s.source.cert == slot.source.cert);
            let changed = slot.served.is_some() && before.and_then(|b| b.served) != slot.served;
            if changed {
                self.handle.stats.published.fetch_add(1, Ordering::Relaxed);
                log_published(&slot.source, cert, "configuration reload");
            }
        }
        self.store.publish(new.certs);
        self.slots = new.slots;
        self.poll = new.poll;
        if !new.watch {
            self.watcher = None;
        } else if self.watcher.is_none() && !self.slots.is_empty() {
            self.watcher = DirWatcher::new(self.changed.clone(), self.seen.clone(), &self.slots);
        }
        if let Some(w) = self.watcher.as_mut() {
            w.update(&self.slots);
        }
        let waiting = self.slots.iter().filter(|s| s.served.is_none()).count();
        self.handle.stats.bootstrapping.store(waiting, Ordering::Relaxed);
        let _ = new.done.send(());
    }

    /// Reloads every slot; true when one of them should be read again soon
    /// because its pair looked half-written. `final_try` makes such a pair
    /// count as rejected now.
    fn reload_all(&mut self, why: &str, final_try: bool) -> bool {
        self.reload_some(0..self.slots.len(), why, final_try)
    }

    /// Reloads the slots at `indices`, as `reload_all` does.
    fn reload_some(&mut self, indices: impl IntoIterator<Item = usize>, why: &str, final_try: bool) -> bool {
        let mut retry = false;
        for index in indices {
            retry |= self.reload_one(index, why, final_try);
        }
        let waiting = self.slots.iter().filter(|s| s.served.is_none()).count();
        self.handle.stats.bootstrapping.store(waiting, Ordering::Relaxed);
        retry
    }

    /// After a file change, the slots whose files the events named; `None`
    /// when every slot must be read: another trigger, an event without a
    /// path or a lost one, or a path that is no configured file's (a
    /// directory on a path, a symlink swapped by Kubernetes).
    fn touched_slots(&mut self, why: &str) -> Option<Vec<usize>> {
        let seen = std::mem::take(
            &mut *self
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if why != "file change" || seen.all {
            return None;
        }
        let mut indices = Vec::new();
        let mut matched = vec![false; seen.paths.len()];
        for (index, slot) in self.slots.iter().enumerate() {
            let mut hit = false;
            for path in file_paths(slot) {
                for (i, p) in seen.paths.iter().enumerate() {
                    if *p == path {
                        matched[i] = true;
                        hit = true;
                    }
                }
            }
            if hit {
                indices.push(index);
            }
        }
        matched.iter().all(|&m| m).then_some(indices)
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
                let cert = Arc::new(cert);
                if self.store.replace(index, cert.clone()) {
                    slot.served = Some(hash);
                    stats.published.fetch_add(1, Ordering::Relaxed);
                    log_published(&slot.source, &cert, why);
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

/// The log line of a certificate put in service, and its warning if its
/// chain is incomplete.
fn log_published(source: &CertificateSource, cert: &LoadedCert, why: &str) {
    let f = &cert.facts;
    tracing::info!(
        cert = %source.cert.display(),
        serial = %f.serial,
        sans = %f.sans.join(","),
        not_after = %humantime::format_rfc3339_seconds(f.not_after),
        sha256 = %f.sha256,
        %why,
        "certificate reloaded: new connections get the new certificate"
    );
    warn_if_incomplete(cert);
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

/// The files a slot reads: its certificate and key as configured, and the
/// files their symlinks point to (an event in a watched directory names
/// the file by the directory's path joined with its name, which is one of
/// these when it is one of the slot's).
fn file_paths(slot: &Slot) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for path in [&slot.source.cert, &slot.source.key] {
        paths.push(path.clone());
        paths.extend(std::fs::canonicalize(path).ok());
    }
    paths
}

/// The paths relevant events named since the last pass, or that one named
/// none (or was lost) and every pair must be read.
#[derive(Debug, Default)]
struct Seen {
    all: bool,
    /// Few between two passes: a list is enough.
    paths: Vec<PathBuf>,
}

impl Seen {
    /// Notes the paths of `event` that count (see [`touches`]): a temporary
    /// file renamed over a configured one names both, and only the second
    /// is read.
    fn record(&mut self, event: &notify::Event, wanted: &[OsString]) {
        if event.paths.is_empty() {
            self.all = true;
        }
        for path in &event.paths {
            let Some(name) = path.file_name() else {
                self.all = true;
                continue;
            };
            let counts = wanted.binary_search_by(|w| w.as_os_str().cmp(name)).is_ok()
                || name.to_string_lossy().starts_with("..");
            if counts && !self.paths.contains(path) {
                self.paths.push(path.clone());
            }
        }
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
    /// The names an event must touch to count (see [`relevant_names`]).
    names: Arc<std::sync::RwLock<Vec<std::ffi::OsString>>>,
}

impl DirWatcher {
    fn new(changed: Arc<Notify>, seen: Arc<std::sync::Mutex<Seen>>, slots: &[Slot]) -> Option<Self> {
        let names = Arc::new(std::sync::RwLock::new(relevant_names(slots)));
        let wanted = names.clone();
        let handler = move |event: notify::Result<notify::Event>| match event {
            // Our own reads show up as access events; they change nothing.
            Ok(e) if matches!(e.kind, EventKind::Access(_)) => {}
            Ok(e) => {
                let wanted = wanted.read().unwrap_or_else(std::sync::PoisonError::into_inner);
                if touches(&e, &wanted) {
                    seen.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .record(&e, &wanted);
                    changed.notify_one();
                }
            }
            // An overflowed queue may have lost the event that mattered.
            Err(_) => {
                seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).all = true;
                changed.notify_one();
            }
        };
        match notify::recommended_watcher(handler) {
            Ok(watcher) => Some(DirWatcher {
                watcher,
                watched: HashMap::new(),
                names,
            }),
            Err(e) => {
                tracing::warn!("cannot watch certificate directories ({e}); relying on the poll");
                None
            }
        }
    }

    fn update(&mut self, slots: &[Slot]) {
        *self
            .names
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = relevant_names(slots);
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

/// The file names whose change can change what the pairs read: each
/// configured file's name, every directory name on its path (certbot
/// swaps `live/<name>` links, a Kubernetes secret swaps `..data`), and the
/// names along its symlink's target.
fn relevant_names(slots: &[Slot]) -> Vec<std::ffi::OsString> {
    let mut names = Vec::new();
    for slot in slots {
        for path in [&slot.source.cert, &slot.source.key] {
            let target = std::fs::canonicalize(path).ok();
            for p in std::iter::once(path.as_path()).chain(target.as_deref()) {
                names.extend(p.components().filter_map(|c| match c {
                    std::path::Component::Normal(n) => Some(n.to_os_string()),
                    _ => None,
                }));
            }
        }
    }
    // Kubernetes projects a secret through `..data` -> `..<timestamp>`;
    // the timestamped names are new at every update.
    names.push("..data".into());
    names.sort();
    names.dedup();
    names
}

/// Whether `event` touches one of `names`, or is an event without paths
/// (which may be the one that mattered).
fn touches(event: &notify::Event, names: &[std::ffi::OsString]) -> bool {
    event.paths.is_empty()
        || event.paths.iter().any(|p| {
            p.file_name()
                .is_some_and(|n| names.iter().any(|w| w == n) || n.to_string_lossy().starts_with(".."))
        })
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
