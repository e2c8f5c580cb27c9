//! `[server]` keys that bound a slow client, off unless written:
//! `client_body_timeout`, `send_timeout`; and `keepalive`.

use std::time::Duration;

use super::checker::{Checker, Table};
use crate::config::duration::Zero;

impl Checker<'_> {
    /// A timeout that is off when absent; written, it must not be zero
    /// (leaving the key out is how it is turned off).
    pub(super) fn optional_timeout(&mut self, table: &Table<'_, '_>, key: &str) -> Option<Duration> {
        table.get(key)?;
        let d = self.duration(table, key, Duration::from_secs(60), Zero::Rejected);
        Some(d)
    }
}
