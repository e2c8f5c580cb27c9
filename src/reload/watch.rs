//! `server.watch_config = true`: a reload when the configuration file
//! changes. The file's directory is watched (editors and configuration
//! tools replace a file by rename, which a watch on the file itself would
//! miss), only events naming the file count, and a burst of them is
//! debounced as for certificates, so that a file written in several steps
//! is read once, whole.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Handle;

/// Quiet time after the last event before the file is read.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// Watches `file` until `stop` fires; the watch ends when the returned
/// watcher is dropped. `None`, with a warning, when the platform cannot
/// watch it.
pub(crate) fn start(file: &Path, handle: Handle, stop: CancellationToken) -> Option<RecommendedWatcher> {
    let name = file.file_name()?.to_os_string();
    let dir: PathBuf = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let changed = Arc::new(Notify::new());
    let notify_changed = changed.clone();
    let handler = move |event: notify::Result<notify::Event>| match event {
        Ok(e) if matches!(e.kind, EventKind::Access(_)) => {}
        Ok(e) => {
            if e.paths.is_empty() || e.paths.iter().any(|p| p.file_name() == Some(name.as_os_str())) {
                notify_changed.notify_one();
            }
        }
        Err(_) => notify_changed.notify_one(),
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(file = %file.display(), "cannot watch the configuration ({e}); reload with SIGHUP instead");
            return None;
        }
    };
    if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
        tracing::warn!(dir = %dir.display(), "cannot watch the configuration's directory ({e}); reload with SIGHUP instead");
        return None;
    }
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = changed.notified() => {}
            }
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = changed.notified() => continue,
                    () = tokio::time::sleep(DEBOUNCE) => break,
                }
            }
            handle.request("configuration file changed");
        }
    });
    Some(watcher)
}
