//! A client stream that remembers it had nothing to read.
//!
//! The client's stream is polled for reading more often than data comes:
//! hyper looks for the next request right after each response and again
//! when it waits for it, and a tunnel reads until nothing is left. Each
//! such poll of the TLS stream runs rustls and tokio's readiness check only
//! to find nothing. Once a read came back `Pending`, [`Quiet`] answers
//! `Pending` at once until something that read registered (the socket's
//! readiness, or rustls asking to be polled again) has fired; then the
//! read goes through. The stream's own wake-ups reach the task through a
//! waker of its own that notes them. Writes pass straight through.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

use crate::side::OwnWaker;

pub struct Quiet<T> {
    inner: T,
    waker: OwnWaker,
    /// The last read came back `Pending`, registered with `waker`.
    waiting: bool,
}

impl<T> Quiet<T> {
    pub fn new(inner: T) -> Self {
        Quiet {
            inner,
            waker: OwnWaker::new(),
            waiting: false,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Quiet<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.waker.register(cx.waker());
        if this.waiting && !this.waker.woken() {
            return Poll::Pending;
        }
        // A wake-up from here on is for the read below or a later one.
        this.waker.clear();
        let polled = Pin::new(&mut this.inner).poll_read(&mut Context::from_waker(this.waker.waker()), buf);
        this.waiting = polled.is_pending();
        polled
    }
}

super::write_through!(Quiet);

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_quiet_stream_is_not_polled_again_until_it_wakes_and_then_reads() {
        let (near, mut far) = tokio::io::duplex(64);
        let mut quiet = Quiet::new(near);
        let mut buf = [0u8; 8];
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut read = ReadBuf::new(&mut buf);
        assert!(Pin::new(&mut quiet).poll_read(&mut cx, &mut read).is_pending());
        assert!(quiet.waiting && !quiet.waker.woken());
        // Data arriving wakes the stream's own waker; the read then goes through.
        far.write_all(b"hello").await.unwrap();
        assert!(quiet.waker.woken());
        let mut got = [0u8; 5];
        quiet.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
        // And an end of stream is seen.
        drop(far);
        assert_eq!(quiet.read(&mut buf).await.unwrap(), 0);
    }
}
