//! Which file a request path names under a route's `root` or `alias`:
//! `try_files` in order, a directory's `index`, and without `try_files`
//! nginx's own lookup (the file; for a path ending in `/`, the directory's
//! index or 403; for a directory asked without its `/`, a 301 to it).
//!
//! Request paths arrive normalised (`proxy/path.rs`), with reserved
//! escapes such as `%2F` still encoded. Each segment is decoded here and
//! must name one directory entry (`confine::segment_ok`): a segment that
//! decodes to `..`, or holds `/`, `\` or NUL, names no file, so the lookup
//! goes on to the next entry, as for a missing file (an application behind
//! `@name` may use `%2F` in its own paths).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use percent_encoding::percent_decode_str;

use super::confine::{self, Found};
use crate::config::{FilesDir, StaticFiles};

/// What a request path leads to.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// A regular file inside the root, by its resolved path.
    File(PathBuf),
    /// A directory asked without its trailing `/`, and no `try_files`: 301.
    AddSlash,
    /// A directory without an index file, and no `try_files`: 403.
    Forbidden,
    /// Nothing: the fallback answers.
    Missing,
}

/// Where a route's request paths lead on disk, resolved for one request.
pub(crate) struct Base<'f> {
    files: &'f StaticFiles,
    /// The directory (or, for an alias of an exact path, the file) with
    /// every link followed.
    real: PathBuf,
}

impl<'f> Base<'f> {
    /// The route's directory resolved, as of at most a second ago, so that
    /// a deploy that re-points a symlink (`current -> releases/42`) is
    /// followed within a second.
    pub(crate) fn resolve(files: &'f StaticFiles) -> Result<Self, confine::Refused> {
        let real = confine::resolve_root_cached(files.dir.path())?;
        Ok(Base { files, real })
    }

    /// The file `path` (the request's normalised path) names.
    pub(crate) fn lookup(&self, path: &str) -> Lookup {
        if self.files.try_files.is_empty() {
            return self.plain(path);
        }
        for entry in &self.files.try_files {
            let candidate = entry.render(path);
            let found = if candidate.ends_with('/') {
                match self.find(&candidate) {
                    Some(Found::Dir(dir)) => self.index(&dir),
                    _ => None,
                }
            } else {
                match self.find(&candidate) {
                    Some(Found::File(file)) => Some(file),
                    _ => None,
                }
            };
            if let Some(file) = found {
                return Lookup::File(file);
            }
        }
        Lookup::Missing
    }

    /// nginx's lookup without `try_files`.
    fn plain(&self, path: &str) -> Lookup {
        match self.find(path) {
            Some(Found::File(file)) if !path.ends_with('/') => Lookup::File(file),
            Some(Found::Dir(dir)) if path.ends_with('/') => {
                self.index(&dir).map_or(Lookup::Forbidden, Lookup::File)
            }
            Some(Found::Dir(_)) => Lookup::AddSlash,
            Some(Found::File(..)) | None => Lookup::Missing,
        }
    }

    /// The first of the route's index files in the directory `dir`.
    fn index(&self, dir: &Path) -> Option<PathBuf> {
        self.files
            .index
            .iter()
            .find_map(|name| match confine::locate(&self.real, &dir.join(name)) {
                Ok(Found::File(file)) => Some(file),
                _ => None,
            })
    }

    /// What the URL path `path` names inside the root, if anything.
    fn find(&self, path: &str) -> Option<Found> {
        let rest = match &self.files.dir {
            FilesDir::Root(_) => path,
            FilesDir::Alias { prefix, .. } => path.strip_prefix(prefix.as_str())?,
        };
        let mut target = self.real.clone();
        for segment in rest.split('/').filter(|s| !s.is_empty()) {
            let decoded: Vec<u8> = percent_decode_str(segment).collect();
            if !confine::segment_ok(&decoded) {
                tracing::debug!(path, "static file refused: a segment names no file");
                return None;
            }
            target.push(OsStr::from_bytes(&decoded));
        }
        match confine::locate(&self.real, &target) {
            Ok(found) => Some(found),
            Err(reason) => {
                tracing::debug!(path, reason, "static file not found");
                None
            }
        }
    }

    /// The precompressed file beside `file` for `suffix` (`.br`), if one
    /// is there and inside the root.
    pub(crate) fn beside(&self, file: &Path, suffix: &str) -> Option<PathBuf> {
        let mut name = file.as_os_str().to_owned();
        name.push(suffix);
        match confine::locate(&self.real, Path::new(&name)) {
            Ok(Found::File(found)) => Some(found),
            _ => None,
        }
    }
}
