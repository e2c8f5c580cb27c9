//! What a client sends on one connection, served by hyper as on a real
//! listener and decided by the proxy: an answer or a closed connection,
//! never a panic, and nothing forwarded with hop-by-hop headers, two Host
//! headers or two framings.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::fuzzing::request_head(data));
