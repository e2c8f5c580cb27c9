//! The writes of an HTTP/2 connection, held back until its task has done
//! all it can in one wake-up, then sent in one go.
//!
//! h2 writes out each response as soon as it is queued (with a DATA frame
//! waiting, it flushes before it takes the next frame), so ten responses
//! that became ready together left as ten TLS records, ten system calls and
//! ten TCP segments. [`Corked`] takes the writes into a buffer and lets a
//! flush return without writing; [`Uncork`], around the connection's
//! future, writes the buffer out after every poll of it. What one wake-up
//! produced then leaves in one write, and no byte waits longer than the
//! poll that wrote it. A shutdown writes everything out first.
//!
//! The buffer is bounded: past [`LIMIT`] a write waits for it to drain, and
//! a large write that finds it empty goes straight through.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most bytes held back; also the size from which a write that finds
/// the buffer empty is not copied into it.
const LIMIT: usize = 64 * 1024;

struct Held<T> {
    io: T,
    buf: Vec<u8>,
    /// Bytes of `buf` already written.
    sent: usize,
    /// A write failure met while uncorking, for the connection to see.
    failed: Option<io::ErrorKind>,
}

type Shared<T> = Arc<Mutex<Held<T>>>;

fn lock<T>(shared: &Shared<T>) -> MutexGuard<'_, Held<T>> {
    // Nothing panics while holding the lock; the state stays valid anyway.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T: AsyncWrite + Unpin> Held<T> {
    /// Writes the held bytes out and flushes; ready once all are written.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(kind) = self.failed {
            return Poll::Ready(Err(kind.into()));
        }
        if self.buf.is_empty() {
            return Poll::Ready(Ok(()));
        }
        while self.sent < self.buf.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.buf[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.buf.clear();
        self.sent = 0;
        Pin::new(&mut self.io).poll_flush(cx)
    }
}

/// The connection's side of the stream: writes are held, flushes return.
pub struct Corked<T> {
    shared: Shared<T>,
}

/// The task's side: polls the connection, then writes out what it wrote.
pub struct Uncork<F: Future, T> {
    fut: Pin<Box<F>>,
    shared: Shared<T>,
    done: Option<F::Output>,
}

/// Wraps `io`; the connection built on the [`Corked`] stream is then given
/// to [`Uncork::new`] with the handle.
pub fn cork<T>(io: T) -> (Corked<T>, Handle<T>) {
    let shared = Arc::new(Mutex::new(Held {
        io,
        buf: Vec::new(),
        sent: 0,
        failed: None,
    }));
    (
        Corked {
            shared: shared.clone(),
        },
        Handle(shared),
    )
}

/// What [`Uncork`] needs of the corked stream.
pub struct Handle<T>(Shared<T>);

impl<F: Future, T: AsyncWrite + Unpin> Uncork<F, T> {
    pub fn new(fut: F, handle: Handle<T>) -> Self {
        Uncork {
            fut: Box::pin(fut),
            shared: handle.0,
            done: None,
        }
    }

    /// The connection, for a graceful shutdown.
    pub fn inner(&mut self) -> Pin<&mut F> {
        self.fut.as_mut()
    }
}

impl<F: Future, T: AsyncWrite + Unpin> Future for Uncork<F, T>
where
    F::Output: Unpin,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        if this.done.is_none() {
            if let Poll::Ready(out) = this.fut.as_mut().poll(cx) {
                this.done = Some(out);
            }
        }
        let mut held = lock(&this.shared);
        match held.poll_drain(cx) {
            // Not all written: the stream wakes the task when it can take more.
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) if held.failed.is_none() && this.done.is_none() => {
                // The connection sees the failure at its next write or flush.
                held.failed = Some(e.kind());
                cx.waker().wake_by_ref();
            }
            Poll::Ready(_) => {}
        }
        drop(held);
        match this.done.take() {
            Some(out) => Poll::Ready(out),
            None => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Corked<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut lock(&self.shared).io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Corked<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(data)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut held = lock(&self.shared);
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if held.buf.len() + len > LIMIT {
            ready!(held.poll_drain(cx))?;
        }
        if held.buf.is_empty() && len >= LIMIT {
            return Pin::new(&mut held.io).poll_write_vectored(cx, bufs);
        }
        for b in bufs {
            crate::tls::pieces::extend_in_pieces(&mut held.buf, b);
        }
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Uncork writes out after the poll that flushed.
        match lock(&self.shared).failed {
            Some(kind) => Poll::Ready(Err(kind.into())),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut held = lock(&self.shared);
        ready!(held.poll_drain(cx))?;
        Pin::new(&mut held.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A stream that records each write it is given.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<Vec<u8>>>>);

    impl AsyncWrite for Recorder {
        fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
            self.0.lock().unwrap().push(data.to_vec());
            Poll::Ready(Ok(data.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn what_one_poll_wrote_leaves_in_one_write_and_a_large_write_goes_through() {
        let recorder = Recorder::default();
        let (mut corked, handle) = cork(recorder.clone());
        let writes = async move {
            corked.write_all(b"one ").await?;
            corked.flush().await?;
            corked.write_all(b"two").await?;
            corked.flush().await?;
            tokio::task::yield_now().await;
            corked.write_all(&vec![b'x'; LIMIT]).await?;
            corked.shutdown().await
        };
        Uncork::new(writes, handle).await.unwrap();
        let written = recorder.0.lock().unwrap().clone();
        assert_eq!(
            written.len(),
            2,
            "{:?}",
            written.iter().map(Vec::len).collect::<Vec<_>>()
        );
        assert_eq!(written[0], b"one two");
        assert_eq!(written[1].len(), LIMIT);
    }
}
