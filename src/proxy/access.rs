//! The access log: one line per request, written when its response body has
//! been sent (or the client went away), with the bytes actually sent.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use http::Method;

/// What the access line needs, gathered while the request is handled and
/// written once on drop, so every exit path logs exactly one line.
#[derive(Debug)]
pub struct AccessRecord {
    pub client: IpAddr,
    pub method: Method,
    pub target: String,
    pub status: u16,
    pub bytes: u64,
    pub upstream: Option<Arc<str>>,
    pub start: Instant,
}

impl Drop for AccessRecord {
    fn drop(&mut self) {
        tracing::info!(
            target: "portcullis::access",
            "{} \"{} {}\" {} {} {:.3}ms upstream={}",
            self.client,
            self.method,
            self.target,
            self.status,
            self.bytes,
            self.start.elapsed().as_secs_f64() * 1000.0,
            self.upstream.as_deref().unwrap_or("-"),
        );
    }
}
