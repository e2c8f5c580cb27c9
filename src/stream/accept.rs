//! A stream listener's accept loop: each connection within the stream's
//! `max_connections` gets a task of its own; one over it is closed at
//! once, with a reset so that no TIME_WAIT is left here, and counted. The
//! loop ends when the drain begins.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::conn::{self, Accepted};
use super::metrics::Refusal;
use super::Stream;
use crate::side::Side;

pub(crate) async fn run(
    listener: TcpListener,
    stream: Arc<Stream>,
    open: TaskTracker,
    drain: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = drain.cancelled() => return,
            a = listener.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and similar: wait a moment rather
                // than spin, and keep the listener.
                tracing::warn!(stream = %stream.name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        stream.metrics.accepted.inc();
        let Ok(permit) = stream.limit.clone().try_acquire_owned() else {
            stream.metrics.refused(Refusal::MaxConnections);
            tracing::debug!(stream = %stream.name, %peer, "stream connection refused: max_connections reached");
            let _ = socket2::SockRef::from(&tcp).set_linger(Some(Duration::ZERO));
            continue;
        };
        crate::server::listener::tune_accepted(&tcp);
        let Ok(local) = tcp.local_addr() else { continue };
        let accepted = Accepted {
            tcp,
            peer,
            local,
            permit,
        };
        let stream = stream.clone();
        open.spawn(async move {
            let stop = stream.stop.clone();
            let serve = conn::serve(stream, accepted);
            let mut serve = std::pin::pin!(serve);
            // The hard stop is looked at only when it fires, not at every
            // wake-up of a busy stream.
            let mut stop = Side::new(stop.cancelled_owned());
            std::future::poll_fn(|cx| match stop.poll(cx) {
                Poll::Ready(()) => Poll::Ready(()),
                Poll::Pending => serve.as_mut().poll(cx),
            })
            .await;
        });
    }
}
