//! `request_buffering`: the whole request body is read before the upstream
//! is contacted (no connection, no pool checkout until it is complete), so
//! a slow upload never holds an application worker. Up to the route's size
//! it is held in memory; the rest goes to a temporary file that has no name
//! from the moment it exists (`O_TMPFILE`, or a name removed at once), so
//! it is gone when the request ends, whatever ends it. The body is then
//! sent with its exact length, and, being kept whole, may be sent again
//! under the pool's retry rules.

use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::Body as _;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;

use super::refusal::Refusal;
use super::request_body::{RequestBody, Tracking};

/// The most read back from the file for one frame sent upstream.
const CHUNK: u64 = 64 * 1024;

/// The most memory reserved for a body before its bytes arrive.
const FIRST_RESERVE: u64 = 256 * 1024;

/// The part of a buffered body that is in its temporary file.
#[derive(Debug)]
pub(crate) struct Spilled {
    /// Shared by the copies a retry sends; each reads at its own offset.
    file: Arc<File>,
    at: u64,
    len: u64,
}

impl Spilled {
    /// A copy that sends the file from its start.
    pub(crate) fn again(&self) -> Spilled {
        Spilled {
            file: self.file.clone(),
            at: 0,
            len: self.len,
        }
    }

    pub(crate) fn remaining(&self) -> u64 {
        self.len - self.at
    }

    /// The next piece of the file, or `None` at its end. The read is
    /// synchronous: the file was just written and is in the page cache, as
    /// for static files (`serve::body`).
    pub(crate) fn next_chunk(&mut self) -> Option<std::io::Result<Bytes>> {
        let want = self.remaining().min(CHUNK);
        if want == 0 {
            return None;
        }
        // `want` is at most CHUNK, which fits a usize.
        let mut buf = vec![0; want as usize];
        Some(match self.file.read_at(&mut buf, self.at) {
            Ok(0) => Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf.truncate(n);
                self.at += n as u64;
                Ok(buf.into())
            }
            Err(e) => Err(e),
        })
    }
}

/// What a route's buffering needs to read a body.
pub(crate) struct Limits<'a> {
    /// `request_buffering`: bytes held in memory.
    pub(crate) memory: u64,
    /// `max_body`.
    pub(crate) max_body: Option<u64>,
    /// The longest wait for the next piece of the body.
    pub(crate) wait: Duration,
    /// `[buffering] temp_dir`, or the system's.
    pub(crate) temp_dir: Option<&'a Path>,
}

/// Reads `inner` whole; with whether part of it went to a file. Trailers
/// are dropped: a body sent with its length has none.
pub(crate) async fn read_whole(
    mut inner: Incoming,
    limits: Limits<'_>,
) -> Result<(RequestBody, Tracking, bool), Refusal> {
    let limit = limits.max_body.unwrap_or(u64::MAX);
    // Room for what the client declared, but no more than a first piece
    // of it: a length is a claim, and memory is taken as bytes arrive.
    let declared = inner.size_hint().exact().unwrap_or(0);
    let first = declared.min(limits.memory).min(FIRST_RESERVE);
    let mut held = BytesMut::with_capacity(usize::try_from(first).unwrap_or(0));
    let mut file: Option<File> = None;
    let mut spilled = 0u64;
    let mut total = 0u64;
    loop {
        let frame = match tokio::time::timeout(limits.wait, inner.frame()).await {
            Err(_) => return Err(Refusal::BodyTimeout),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(Refusal::MalformedBody(e)),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len() as u64;
        if total > limit {
            return Err(Refusal::TooLargeAhead { max_body: limit });
        }
        if file.is_none() && total <= limits.memory {
            held.extend_from_slice(&data);
            continue;
        }
        let out = match &mut file {
            Some(out) => out,
            None => {
                let dir = limits.temp_dir.map_or_else(std::env::temp_dir, Path::to_path_buf);
                file.insert(temp_file(&dir).map_err(Refusal::SpillFailed)?)
            }
        };
        // A write to a fresh file lands in the page cache; it is done here
        // rather than on a blocking thread, as static files are read.
        out.write_all(&data).map_err(Refusal::SpillFailed)?;
        spilled += data.len() as u64;
    }
    let spill = file.map(|file| Spilled {
        file: Arc::new(file),
        at: 0,
        len: spilled,
    });
    let was_spilled = spill.is_some();
    let (body, tracking) = RequestBody::buffered(held.freeze(), spill);
    Ok((body, tracking, was_spilled))
}

/// A new file in `dir` that only this process can reach: readable and
/// writable by the owner alone, and without a name.
fn temp_file(dir: &Path) -> std::io::Result<File> {
    let unnamed = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(dir);
    match unnamed {
        Ok(file) => return Ok(file),
        // A filesystem without O_TMPFILE: a new name, removed at once.
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
            ) => {}
        Err(e) => return Err(e),
    }
    named_then_removed(dir)
}

/// A new file in `dir` under a name no one else chose, removed at once.
fn named_then_removed(dir: &Path) -> std::io::Result<File> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        ".portcullis-body-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let path = dir.join(name);
    // create_new: never a file or link that is there already.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .create_new(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    fn collect(body: RequestBody) -> Vec<u8> {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async { body.collect().await.unwrap().to_bytes().to_vec() })
    }

    /// Both ways of making a file leave nothing in the directory, and the
    /// file works.
    #[test]
    fn temporary_files_have_no_name() {
        let dir = tempfile::tempdir().unwrap();
        for make in [temp_file, named_then_removed] {
            let mut file = make(dir.path()).unwrap();
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
            file.write_all(b"body").unwrap();
            let mut back = String::new();
            std::io::Seek::rewind(&mut file).unwrap();
            file.read_to_string(&mut back).unwrap();
            assert_eq!(back, "body");
        }
    }

    /// Memory first, then the file; a copy for a retry sends the same.
    #[test]
    fn a_buffered_body_is_sent_and_sent_again_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = temp_file(dir.path()).unwrap();
        let tail: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        file.write_all(&tail).unwrap();
        let spilled = Spilled {
            file: Arc::new(file),
            at: 0,
            len: tail.len() as u64,
        };
        let (body, _tracking) = RequestBody::buffered(Bytes::from_static(b"head:"), Some(spilled));
        assert_eq!(body.size_hint().exact(), Some(5 + tail.len() as u64));
        let again = body.replay().expect("a buffered body is kept whole");
        let mut want = b"head:".to_vec();
        want.extend_from_slice(&tail);
        assert!(collect(body) == want);
        assert!(collect(again) == want);
    }
}
