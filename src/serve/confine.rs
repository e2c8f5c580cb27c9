//! Files looked up and opened under one directory and nowhere else: the
//! hardening that static routes and the ACME webroot share.
//!
//! A request names a file by path segments, each checked here before it
//! touches the file system (no `..`, `.`, `/`, `\` or NUL); the joined path
//! is then resolved with every symbolic link followed, and must still be
//! inside the resolved root, so a link inside the root that points out of
//! it is refused while one that stays inside is followed. The file is then
//! opened read-only by its resolved path with `O_NOFOLLOW` (a last
//! component swapped for a link in between is refused by the open) and
//! `O_NONBLOCK` (a FIFO cannot block the open), and only a regular file is
//! served: a directory, FIFO, socket or device never is.
//!
//! The work is blocking file-system calls, a few per lookup: static routes
//! make them in the connection's task (see `body.rs`), the ACME webroot in
//! one hop to tokio's blocking pool.

use std::cell::RefCell;
use std::fs::{File, Metadata};
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

/// `O_NOFOLLOW` (refuse to open a symlink as the final path component) and
/// `O_NONBLOCK` (so that a FIFO cannot block the open), from the Linux
/// headers. The libc crate is not a dependency, so the values are written
/// here; they differ between architectures (`O_NOFOLLOW` is 0o400000 on
/// x86_64 but 0o100000 on aarch64, where 0o400000 is `O_LARGEFILE`). On
/// other targets no flag is passed and the resolved-path and file-type
/// checks still refuse links and special files.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub(crate) const OPEN_FLAGS: i32 = 0o400000 | 0o4000;
#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
pub(crate) const OPEN_FLAGS: i32 = 0o100000 | 0o4000;
#[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
pub(crate) const OPEN_FLAGS: i32 = 0;

/// Why a path is not served, for debug logs.
pub(crate) type Refused = &'static str;

/// What a path under the root turned out to be.
#[derive(Debug)]
pub(crate) enum Found {
    /// A regular file, by its resolved path.
    File(PathBuf),
    /// A directory, by its resolved path.
    Dir(PathBuf),
}

/// Whether `segment`, already percent-decoded, can name one entry of a
/// directory: not empty, not `.` or `..`, and without `/`, `\` or NUL.
/// A backslash is no separator on Linux, but refusing it keeps a path
/// meant for another system from meaning something here.
pub(crate) fn segment_ok(segment: &[u8]) -> bool {
    !segment.is_empty()
        && segment != b"."
        && segment != b".."
        && !segment.iter().any(|b| matches!(b, b'/' | b'\\' | 0))
}

/// The root resolved (every link followed), as paths under it are compared.
pub(crate) fn resolve_root(root: &Path) -> Result<PathBuf, Refused> {
    std::fs::canonicalize(root).map_err(|_| "the root directory does not exist or cannot be read")
}

/// How long a resolved root is reused: a deploy that re-points a link in
/// the root's path (`current -> releases/42`) is followed within this.
const ROOT_FRESH: Duration = Duration::from_secs(1);

thread_local! {
    /// Roots resolved lately by this thread: (root as configured, when,
    /// resolved). Resolving costs a `readlink` per segment of the root,
    /// as much again as the lookup under it; a few routes' roots fit.
    static ROOTS: RefCell<Vec<(PathBuf, Instant, PathBuf)>> = const { RefCell::new(Vec::new()) };
}

/// `resolve_root`, reused for `ROOT_FRESH` by the thread that resolved it.
pub(crate) fn resolve_root_cached(root: &Path) -> Result<PathBuf, Refused> {
    let now = Instant::now();
    let cached = ROOTS.with_borrow(|roots| {
        roots
            .iter()
            .find(|(configured, at, _)| configured == root && now.duration_since(*at) < ROOT_FRESH)
            .map(|(_, _, real)| real.clone())
    });
    if let Some(real) = cached {
        return Ok(real);
    }
    let real = resolve_root(root)?;
    ROOTS.with_borrow_mut(|roots| {
        roots.retain(|(configured, at, _)| configured != root && now.duration_since(*at) < ROOT_FRESH);
        roots.push((root.to_path_buf(), now, real.clone()));
    });
    Ok(real)
}

/// What `target` (the resolved `root` and checked segments) is: a regular
/// file or a directory inside the root, or why not.
///
/// Each entry below the root is looked at without following it; a path
/// with no link in it is inside the root as written, and the last look
/// says what it is. Only a path with a link is resolved whole, and must
/// still lead inside the root. The common case costs one `lstat` per
/// segment rather than a `readlink` per segment of the whole path.
pub(crate) fn locate(root: &Path, target: &Path) -> Result<Found, Refused> {
    let below = target
        .strip_prefix(root)
        .map_err(|_| "the path leads outside the root")?;
    let mut at = root.to_path_buf();
    let mut last = None;
    for component in below.components() {
        let Component::Normal(name) = component else {
            return Err("the path is not made of names");
        };
        at.push(name);
        let meta = std::fs::symlink_metadata(&at).map_err(|e| match e.kind() {
            ErrorKind::NotFound => "no such file",
            _ => "the path cannot be read",
        })?;
        if meta.file_type().is_symlink() {
            return resolved(root, target);
        }
        last = Some(meta);
    }
    let meta = match last {
        Some(meta) => meta,
        None => std::fs::metadata(root).map_err(|_| "the root cannot be read")?,
    };
    kind(at, &meta)
}

/// `locate` for a path with a link in it: resolved whole, then compared.
fn resolved(root: &Path, target: &Path) -> Result<Found, Refused> {
    let real = std::fs::canonicalize(target).map_err(|e| match e.kind() {
        ErrorKind::NotFound => "no such file",
        _ => "the path cannot be resolved",
    })?;
    if !real.starts_with(root) {
        return Err("the path leads outside the root");
    }
    // The resolved path holds no link, so this is the entry itself.
    let meta = std::fs::metadata(&real).map_err(|_| "the file cannot be read")?;
    kind(real, &meta)
}

/// A directory or a regular file at `path`; anything else is refused.
fn kind(path: PathBuf, meta: &Metadata) -> Result<Found, Refused> {
    if meta.is_dir() {
        Ok(Found::Dir(path))
    } else if meta.is_file() {
        Ok(Found::File(path))
    } else {
        Err("not a regular file")
    }
}

/// Opens the regular file at the resolved path `real`, read-only and
/// refusing a link; the metadata is the open file's own.
pub(crate) fn open_regular(real: &Path) -> Result<(File, Metadata), Refused> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(OPEN_FLAGS)
        .open(real)
        .map_err(|e| match e.kind() {
            ErrorKind::NotFound => "no such file",
            // ELOOP: the file became a symlink after it was resolved.
            _ => "the file cannot be opened",
        })?;
    let meta = file.metadata().map_err(|_| "the file cannot be read")?;
    if !meta.is_file() {
        return Err("not a regular file");
    }
    Ok((file, meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments() {
        assert!(segment_ok(b"a.js"));
        assert!(segment_ok(b"..a"));
        assert!(segment_ok(b"caf\xc3\xa9"));
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\\b", b"a\0"] {
            assert!(!segment_ok(bad), "{bad:?}");
        }
    }

    /// The flag constants are right for this architecture: a symlink is
    /// refused by the open itself, and a regular file still opens.
    #[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
    #[test]
    fn open_flags_refuse_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(open_regular(&file).is_ok());
        assert_eq!(open_regular(&link).unwrap_err(), "the file cannot be opened");
    }

    #[test]
    fn links_out_of_the_root_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = resolve_root(dir.path()).unwrap();
        std::fs::write(root.join("in"), "i").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.join("out")).unwrap();
        std::os::unix::fs::symlink(root.join("in"), root.join("alias")).unwrap();
        assert!(matches!(locate(&root, &root.join("in")), Ok(Found::File(_))));
        assert!(matches!(locate(&root, &root.join("alias")), Ok(Found::File(_))));
        assert_eq!(
            locate(&root, &root.join("out")).unwrap_err(),
            "the path leads outside the root"
        );
        assert!(matches!(locate(&root, &root), Ok(Found::Dir(_))));
        assert!(locate(&root, &root.join("..")).is_err());
        assert!(locate(&root, outside.path()).is_err());
        std::fs::create_dir(root.join("d")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("d/up")).unwrap();
        assert!(locate(&root, &root.join("d/up/secret")).is_err());
        assert!(matches!(locate(&root, &root.join("d")), Ok(Found::Dir(_))));
    }
}
