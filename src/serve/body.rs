//! A file's bytes as a response body, read in chunks of at most 64 KiB as
//! the client takes them: hyper asks for the next chunk only when it has
//! room to write it, so a file of any size is served in bounded memory.
//!
//! Each chunk is read where hyper asks for it, in the connection's own
//! task, as nginx reads files in its event loop: a read from the page
//! cache costs a copy, far less than handing it to another thread and
//! back (which doubled the CPU of a 1 KiB file in the benchmark). A file
//! system that stalls reads (a hung network mount) stalls the connections
//! of that thread with it; serve files from local disks.

use std::io::{self, Read as _};

use bytes::{Bytes, BytesMut};

/// The largest read, and so the most a body holds at once.
pub(crate) const CHUNK: usize = 64 * 1024;

/// The next `remaining` bytes of an open file.
#[derive(Debug)]
pub(crate) struct FileBody {
    file: std::fs::File,
    remaining: u64,
}

impl FileBody {
    /// `len` bytes of `file` from its current position.
    pub(crate) fn new(file: std::fs::File, len: u64) -> Self {
        FileBody { file, remaining: len }
    }

    /// The bytes still to be sent.
    pub(crate) fn remaining(&self) -> u64 {
        self.remaining
    }

    /// The next chunk, `None` at the end; an error if the file ends before
    /// its promised length (it shrank while being sent), so the response
    /// is cut rather than ended early as if complete.
    pub(crate) fn next_chunk(&mut self) -> Option<io::Result<Bytes>> {
        if self.remaining == 0 {
            return None;
        }
        let want = usize::try_from(self.remaining).map_or(CHUNK, |r| r.min(CHUNK));
        // Zeroed rather than uninitialised: no unsafe, and the cost is
        // small beside the TLS encryption of the same bytes.
        let mut buf = BytesMut::zeroed(want);
        let n = loop {
            match self.file.read(&mut buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.remaining = 0;
                    return Some(Err(e));
                }
                Ok(n) => break n,
            }
        };
        if n == 0 {
            self.remaining = 0;
            return Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file became shorter while it was sent",
            )));
        }
        self.remaining -= n as u64;
        buf.truncate(n);
        Some(Ok(buf.freeze()))
    }
}
