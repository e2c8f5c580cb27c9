//! The peer end of an in-memory connection, as the proxy sees it: the bytes
//! the peer sends (in reads of a chosen size at most), then nothing until
//! the peer closes, and every byte the proxy writes taken at once.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The server's stream: reads give the input, then wait for [`Closer::close`].
pub struct ScriptedClient {
    input: Vec<u8>,
    read: usize,
    /// The most one read hands out.
    piece: usize,
    state: Arc<Mutex<State>>,
}

/// Tells what the server has read, and closes the client's side.
pub struct Closer {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    /// The server has read the whole input and asked for more.
    read_all: bool,
    closed: bool,
    reader: Option<Waker>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ScriptedClient {
    pub fn new(input: &[u8]) -> (ScriptedClient, Closer) {
        Self::in_reads_of(input, usize::MAX)
    }

    /// Like [`ScriptedClient::new`], handing out at most `piece` bytes per
    /// read.
    pub fn in_reads_of(input: &[u8], piece: usize) -> (ScriptedClient, Closer) {
        let state = Arc::new(Mutex::new(State::default()));
        let client = ScriptedClient {
            input: input.to_vec(),
            read: 0,
            piece,
            state: state.clone(),
        };
        (client, Closer { state })
    }
}

impl Closer {
    pub fn read_all(&self) -> bool {
        lock(&self.state).read_all
    }

    /// The client closes its side: the server reads the end of the stream.
    pub fn close(&self) {
        let mut state = lock(&self.state);
        state.closed = true;
        if let Some(reader) = state.reader.take() {
            reader.wake();
        }
    }
}

impl AsyncRead for ScriptedClient {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let rest = &this.input[this.read..];
        if !rest.is_empty() {
            let n = rest.len().min(buf.remaining()).min(this.piece);
            buf.put_slice(&rest[..n]);
            this.read += n;
            return Poll::Ready(Ok(()));
        }
        let mut state = lock(&this.state);
        if state.closed {
            return Poll::Ready(Ok(()));
        }
        state.read_all = true;
        state.reader = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl AsyncWrite for ScriptedClient {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
