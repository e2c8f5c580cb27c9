//! Adapters for protocols that speak before the TLS handshake, on a
//! terminating stream: what a plain TLS terminator cannot carry.
//!
//! - `nats`: the server's plaintext INFO first, then TLS (`protocol =
//!   "nats"`), and NATS's TLS-first clients as well.

pub(crate) mod nats;
mod nats_info;
