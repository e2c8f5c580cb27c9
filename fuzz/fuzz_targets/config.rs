//! Configuration files: any bytes, read as UTF-8, either validate into a
//! configuration a proxy can start with, or fail with errors that each
//! name the file and a line:column inside it.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::fuzzing::config(data));
