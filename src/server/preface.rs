//! The first bytes of a connection, read under `header_read_timeout`.
//!
//! hyper-util's automatic HTTP/1.1-or-HTTP/2 builder first reads up to the
//! 24 bytes of the HTTP/2 connection preface to tell the two apart, and
//! that read has no deadline: a client that completes the TLS handshake
//! and then sends nothing (or part of the preface) would hold its
//! connection, and its place under `max_connections`, for ever. hyper's own
//! `header_read_timeout` only starts once the HTTP/1.1 reader runs.
//!
//! So the same bytes are read here first, under the deadline, into a
//! buffer on the stack, and [`Replay`] hands them to hyper-util before
//! anything else. A connection costs nothing more than those 24 bytes; a
//! read after them costs one comparison.
//!
//! A connection whose protocol ALPN chose is read here too: the deadline
//! is needed just as much, and the bytes tell whether the client keeps to
//! the protocol it chose (see [`super::alpn`]).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A stream whose first bytes were read ahead and are returned again.
pub struct Replay<T> {
    inner: T,
    head: [u8; H2_PREFACE.len()],
    pos: u8,
    len: u8,
}

/// Reads from `io` until the bytes decide between HTTP/1.1 and HTTP/2 the
/// way hyper-util decides (a byte that departs from the HTTP/2 preface, or
/// the whole preface), or until the client closes. The caller puts the
/// deadline around it.
pub async fn read<T: AsyncRead + Unpin>(mut io: T) -> io::Result<Replay<T>> {
    let mut head = [0u8; H2_PREFACE.len()];
    let mut len = 0;
    while len < head.len() {
        let n = io.read(&mut head[len..]).await?;
        if n == 0 {
            break;
        }
        let before = len;
        len += n;
        if head[before..len] != H2_PREFACE[before..len] {
            break;
        }
    }
    Ok(Replay {
        inner: io,
        head,
        pos: 0,
        len: len as u8,
    })
}

impl<T> Replay<T> {
    /// True when the client began with the whole HTTP/2 connection preface.
    pub fn is_h2(&self) -> bool {
        usize::from(self.len) == H2_PREFACE.len() && self.head == *H2_PREFACE
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Replay<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pos < self.len {
            let (pos, len) = (usize::from(self.pos), usize::from(self.len));
            let n = (len - pos).min(buf.remaining());
            buf.put_slice(&self.head[pos..pos + n]);
            self.pos += n as u8;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

super::write_through!(Replay);

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn replayed(chunks: &[&[u8]]) -> (Vec<u8>, usize, bool) {
        let mut builder = tokio_test_io(chunks);
        let replay = read(&mut builder).await.unwrap();
        let ahead = usize::from(replay.len);
        let h2 = replay.is_h2();
        let mut all = Vec::new();
        let mut replay = replay;
        replay.read_to_end(&mut all).await.unwrap();
        (all, ahead, h2)
    }

    /// An in-memory stream that returns `chunks` one read at a time.
    fn tokio_test_io(chunks: &[&[u8]]) -> Chunks {
        Chunks(chunks.iter().rev().map(|c| c.to_vec()).collect())
    }

    struct Chunks(Vec<Vec<u8>>);

    impl AsyncRead for Chunks {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if let Some(mut chunk) = self.0.pop() {
                let n = chunk.len().min(buf.remaining());
                buf.put_slice(&chunk[..n]);
                if n < chunk.len() {
                    self.0.push(chunk.split_off(n));
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn http1_is_decided_at_the_first_byte_and_replayed() {
        let (all, ahead, h2) = replayed(&[b"G", b"ET / HTTP/1.1\r\n\r\n"]).await;
        assert_eq!(all, b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(ahead, 1);
        assert!(!h2);
    }

    #[tokio::test]
    async fn a_long_http1_head_in_one_read_is_not_taken_for_http2() {
        let head = b"GET /a/rather/long/path HTTP/1.1\r\nhost: x\r\n\r\n";
        let (all, ahead, h2) = replayed(&[head]).await;
        assert_eq!(all, head);
        assert_eq!(ahead, 24);
        assert!(!h2);
    }

    #[tokio::test]
    async fn the_http2_preface_is_read_whole_and_nothing_after_it() {
        let mut sent = H2_PREFACE.to_vec();
        sent.extend_from_slice(b"\0\0\0\x04");
        let (all, ahead, h2) = replayed(&[&sent[..5], &sent[5..]]).await;
        assert_eq!(all, sent);
        assert_eq!(ahead, 24);
        assert!(h2);
    }

    #[tokio::test]
    async fn a_close_before_any_byte_replays_nothing() {
        let (all, ahead, h2) = replayed(&[]).await;
        assert!(all.is_empty());
        assert_eq!(ahead, 0);
        assert!(!h2);
    }
}
