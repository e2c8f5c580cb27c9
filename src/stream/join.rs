//! Joining a stream's two legs: bytes both ways until both sides closed
//! (a close is passed on as a shutdown of the other side's write half),
//! or the proxy stops.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use super::access::End;

pub(crate) async fn join<C, U>(
    mut client: C,
    mut upstream: U,
    _idle: Duration,
    stop: CancellationToken,
) -> End
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    tokio::select! {
        copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => match copied {
            Ok(_) => End::Closed,
            Err(_) => End::Error,
        },
        () = stop.cancelled() => End::Shutdown,
    }
}
