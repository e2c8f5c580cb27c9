//! Joining a stream's two legs with the proxy's tunnel (the one behind
//! WebSockets): bytes both ways with no buffer held while idle, a close
//! passed on as a shutdown of the other side's write half while the other
//! direction goes on, `idle_timeout` with one timer for both directions,
//! and the hard stop at the end of the shutdown grace.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use super::access::End;
use crate::proxy::tunnel;

pub(crate) async fn join<C, U>(client: C, upstream: U, idle: Duration, stop: CancellationToken) -> End
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    match tunnel::join(client, upstream, idle, stop).await {
        tunnel::End::Closed { .. } => End::Closed,
        tunnel::End::Idle => End::Idle,
        // Streams are not routes: a reload never retires them, and `join`
        // never ends this way.
        tunnel::End::Shutdown | tunnel::End::Retired => End::Shutdown,
        tunnel::End::Error(_) => End::Error,
    }
}
