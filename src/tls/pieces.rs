//! A TLS stream whose plaintext crosses rustls' boundary in slices of at
//! most [`PIECE`] bytes, so that every copy of it runs in memcpy's vector
//! loop.
//!
//! rustls copies the plaintext of each record it seals into a buffer of its
//! own, five bytes in (behind the record header), with one `memcpy` per
//! slice it is given; on reading it copies the opened plaintext out the same
//! way. glibc's `memcpy` switches to `rep movsb` from about 2 KiB up, and on
//! some CPUs (the AMD EPYC of benches/profile/README.md among them) `rep movsb`
//! runs at a twentieth of its usual speed when the destination lies 1 to 15
//! bytes past the source, counted modulo 4 KiB. A body chunk that starts on
//! a page boundary, sealed into a buffer that starts on one, is exactly that
//! case: a 1 MiB response spent more time in that one copy than in AES-GCM.
//! In slices of 2 KiB the same bytes are copied by the vector loop, which
//! has no such case, at full speed whatever the alignment; the slices cost
//! nothing else, since rustls takes a whole list of them in one call.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, ReadBuf};

/// Below glibc's smallest `rep movsb` threshold on CPUs with fast short
/// `rep movsb` (2,112 bytes); larger thresholds are used elsewhere.
pub const PIECE: usize = 2048;

/// The most slices handed over in one write: 128 KiB, more than rustls
/// takes in one call (it buffers 64 KiB of records by default).
const MAX_SLICES: usize = 64;

/// A TLS stream (or any buffered stream) read and written in pieces.
pub struct Pieces<T> {
    inner: T,
}

impl<T> Pieces<T> {
    pub fn new(inner: T) -> Self {
        Pieces { inner }
    }
}

/// Appends `src` to `dst` in copies of at most [`PIECE`] bytes.
pub fn extend_in_pieces(dst: &mut Vec<u8>, src: &[u8]) {
    dst.reserve(src.len());
    for piece in src.chunks(PIECE) {
        dst.extend_from_slice(piece);
    }
}

/// `bufs` cut into slices of at most [`PIECE`] bytes, as many as fit in
/// `out`; the number of slices written. What is handed on is always a
/// prefix of `bufs`.
fn cut<'b>(bufs: &'b [IoSlice<'_>], out: &mut [IoSlice<'b>; MAX_SLICES]) -> usize {
    let mut n = 0;
    for piece in bufs.iter().flat_map(|b| b.chunks(PIECE)).take(MAX_SLICES) {
        out[n] = IoSlice::new(piece);
        n += 1;
    }
    n
}

impl<T: AsyncBufRead + Unpin> AsyncRead for Pieces<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let data = ready!(Pin::new(&mut this.inner).poll_fill_buf(cx))?;
        let amount = buf.remaining().min(data.len());
        for piece in data[..amount].chunks(PIECE) {
            buf.put_slice(piece);
        }
        Pin::new(&mut this.inner).consume(amount);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Pieces<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(data)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if bufs.iter().all(|b| b.len() <= PIECE) {
            return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        }
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let n = cut(bufs, &mut slices);
        Pin::new(&mut this.inner).poll_write_vectored(cx, &slices[..n])
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A stream that takes at most `take` bytes per write and records the
    /// length of every slice it was handed and the bytes it took.
    #[derive(Clone, Default)]
    struct Recorder {
        take: usize,
        slices: Arc<Mutex<Vec<usize>>>,
        bytes: Arc<Mutex<Vec<u8>>>,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
            self.poll_write_vectored(cx, &[IoSlice::new(data)])
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let mut left = self.take;
            for b in bufs {
                self.slices.lock().unwrap().push(b.len());
                let n = b.len().min(left);
                self.bytes.lock().unwrap().extend_from_slice(&b[..n]);
                left -= n;
            }
            Poll::Ready(Ok(self.take - left))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn patterned(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[tokio::test]
    async fn writes_arrive_whole_in_slices_no_larger_than_a_piece() {
        let recorder = Recorder {
            take: 70_001,
            ..Recorder::default()
        };
        let mut pieces = Pieces::new(recorder.clone());
        let big = patterned(300_000);
        pieces.write_all(&big).await.unwrap();
        let (head, tail) = (patterned(100), patterned(9_000));
        let bufs = [IoSlice::new(&head), IoSlice::new(&big), IoSlice::new(&tail)];
        let mut left: &mut [IoSlice<'_>] = &mut bufs.clone();
        while !left.is_empty() {
            let n = pieces.write_vectored(left).await.unwrap();
            IoSlice::advance_slices(&mut left, n);
        }
        let expected = [&big[..], &head[..], &big[..], &tail[..]].concat();
        assert!(
            *recorder.bytes.lock().unwrap() == expected,
            "bytes lost, doubled or reordered"
        );
        let slices = recorder.slices.lock().unwrap();
        assert!(
            slices.iter().all(|&n| n <= PIECE),
            "a slice over {PIECE} bytes: {slices:?}"
        );
        assert!(slices.contains(&PIECE));
    }

    #[tokio::test]
    async fn reads_arrive_whole() {
        let (mut far, near) = tokio::io::duplex(64 * 1024);
        let sent = patterned(500_000);
        let writer = {
            let sent = sent.clone();
            tokio::spawn(async move { far.write_all(&sent).await })
        };
        let mut pieces = Pieces::new(tokio::io::BufReader::with_capacity(40_000, near));
        let mut got = Vec::new();
        let mut buf = vec![0u8; 33_333];
        // Bounded by a count, not a clock: reads that keep handing back
        // bytes already read never give a timer the chance to fire.
        for _ in 0..10_000 {
            if got.len() >= sent.len() {
                break;
            }
            let n = pieces.read(&mut buf).await.unwrap();
            assert!(n > 0, "end of stream after {} bytes", got.len());
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got == sent, "bytes lost, doubled or reordered");
        writer.await.unwrap().unwrap();
    }
}
