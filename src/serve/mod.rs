//! What the proxy does to a response besides forwarding it: compression
//! (a body wrapper) and error pages. Each room holds its own streaming body
//! or answer; none of them knows about TOML.

pub(crate) mod compress;
pub(crate) mod error_pages;
