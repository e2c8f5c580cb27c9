//! A timer for "no progress for this long": armed when a read or write
//! finds nothing to do, disarmed when it moves, and fired only if it
//! stays stuck for the whole period. Behind `client_body_timeout` and
//! `send_timeout`, which never cut a transfer that moves.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

pub(crate) struct Stall {
    after: Duration,
    /// One timer for the whole life of the watched stream, reset rather
    /// than made anew at each wait.
    sleep: Pin<Box<Sleep>>,
    armed: bool,
}

impl std::fmt::Debug for Stall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stall").field("after", &self.after).finish()
    }
}

impl Stall {
    pub(crate) fn new(after: Duration) -> Self {
        Stall {
            after,
            sleep: Box::pin(tokio::time::sleep(after)),
            armed: false,
        }
    }

    /// The watched operation is pending: whether it has now been stuck for
    /// the whole period. Registers `cx` to be woken when it will have been.
    pub(crate) fn stuck(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.armed {
            self.sleep.as_mut().reset(Instant::now() + self.after);
            self.armed = true;
        }
        self.sleep.as_mut().poll(cx).is_ready()
    }

    /// The watched operation moved.
    pub(crate) fn moved(&mut self) {
        self.armed = false;
    }
}
