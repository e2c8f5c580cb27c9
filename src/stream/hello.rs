//! Reading a passthrough connection's ClientHello: bytes are read (and
//! kept, to be replayed to the upstream) until `client_hello` finds the
//! whole hello, the bytes exceed its bound, or the client stops. The
//! caller bounds the time.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::client_hello::{self, Hello, Malformed, MAX_READ};

/// Why no ClientHello was read.
#[derive(Debug)]
pub(crate) enum HelloError {
    Malformed(Malformed),
    /// The client closed before the hello was whole.
    Truncated,
    Io(io::Error),
}

impl std::fmt::Display for HelloError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HelloError::Malformed(m) => f.write_str(m.describe()),
            HelloError::Truncated => f.write_str("the client closed before its ClientHello was whole"),
            HelloError::Io(e) => write!(f, "reading the ClientHello failed: {e}"),
        }
    }
}

/// The bytes read and the hello they begin with.
pub(crate) async fn read<R: AsyncRead + Unpin>(client: &mut R) -> Result<(Vec<u8>, Hello), HelloError> {
    let mut bytes = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    loop {
        let room = MAX_READ - bytes.len();
        if room == 0 {
            return Err(HelloError::Malformed(Malformed::TooLarge));
        }
        let take = room.min(chunk.len());
        let n = client.read(&mut chunk[..take]).await.map_err(HelloError::Io)?;
        if n == 0 {
            return Err(HelloError::Truncated);
        }
        bytes.extend_from_slice(&chunk[..n]);
        match client_hello::parse(&bytes) {
            Ok(Some(hello)) => return Ok((bytes, hello)),
            Ok(None) => {}
            Err(malformed) => return Err(HelloError::Malformed(malformed)),
        }
    }
}
