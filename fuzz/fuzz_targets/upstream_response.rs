//! What an upstream answers, read by the proxy's HTTP/1.1 client in reads
//! of several sizes: never a panic, and the same head, body, trailers and
//! ending whatever the sizes.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::fuzzing::upstream_response(data));
