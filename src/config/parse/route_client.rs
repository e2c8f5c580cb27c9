//! A route's keys for upstreams that want the client named their way:
//! `send_proxy_protocol` and `forwarded`.

use super::checker::{Checker, Table};
use crate::config::ProxyProtocol;

impl Checker<'_> {
    /// `send_proxy_protocol` and `forwarded` of a route.
    pub(super) fn route_client(&mut self, table: &Table<'_, '_>) -> (Option<ProxyProtocol>, bool) {
        let send = self.proxy_protocol_version(table, "send_proxy_protocol");
        let forwarded = self.boolean(table, "forwarded", false);
        (send, forwarded)
    }
}
