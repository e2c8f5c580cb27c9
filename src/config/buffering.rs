//! `[buffering]` and a route's `request_buffering` and `response_buffering`:
//! how much of a request body is read before the upstream is contacted, and
//! how much of a response is read ahead of a slow client. Checked by
//! `parse/buffering.rs`, applied by `proxy::buffered_request` and
//! `proxy::buffered_response`.

use std::path::PathBuf;
use std::sync::Arc;

/// The buffering in force on a route.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Buffering {
    /// `request_buffering`: the whole request body is read before the
    /// upstream is contacted; up to this many bytes are held in memory,
    /// the rest in a temporary file. `None` (the default): streamed.
    pub request: Option<u64>,
    /// `response_buffering`: up to this many bytes of a response are read
    /// before its head is sent, so a response that fits frees its upstream
    /// connection at once. `None` (the default): streamed.
    pub response: Option<u64>,
    /// `[buffering] temp_dir`: where request bodies over `request` are
    /// spilled. `None`: the system's temporary directory.
    pub temp_dir: Option<Arc<PathBuf>>,
}
