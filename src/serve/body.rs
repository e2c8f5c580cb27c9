//! A file's bytes as a response body, read in chunks of at most 64 KiB as
//! the client takes them: hyper asks for the next chunk only when it has
//! room to write it, so a file of any size is served in bounded memory.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, ReadBuf};

/// The largest read, and so the most a body holds at once.
pub(crate) const CHUNK: usize = 64 * 1024;

/// The next `remaining` bytes of an open file.
#[derive(Debug)]
pub(crate) struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
    buf: BytesMut,
}

impl FileBody {
    /// `len` bytes of `file` from its current position.
    pub(crate) fn new(file: std::fs::File, len: u64) -> Self {
        FileBody {
            file: tokio::fs::File::from_std(file),
            remaining: len,
            buf: BytesMut::new(),
        }
    }

    /// The bytes still to be sent.
    pub(crate) fn remaining(&self) -> u64 {
        self.remaining
    }

    /// The next chunk; an error if the file ends before its promised
    /// length (it shrank while being sent), so the response is cut rather
    /// than ended early as if complete.
    pub(crate) fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = usize::try_from(self.remaining).map_or(CHUNK, |r| r.min(CHUNK));
        // Zeroed rather than uninitialised: no unsafe, and the cost is
        // small beside the TLS encryption of the same bytes.
        self.buf.resize(want, 0);
        let mut read = ReadBuf::new(&mut self.buf[..want]);
        match Pin::new(&mut self.file).poll_read(cx, &mut read) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) => {
                let n = read.filled().len();
                if n == 0 {
                    self.remaining = 0;
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the file became shorter while it was sent",
                    ))));
                }
                self.remaining -= n as u64;
                self.buf.truncate(n);
                Poll::Ready(Some(Ok(self.buf.split().freeze())))
            }
        }
    }
}
