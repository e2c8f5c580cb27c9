//! The committed fuzzing seeds (fuzz/seeds/), run through the same entry
//! points as the fuzz targets, so that every seed keeps meaning what it
//! did and the targets' checks keep holding without a nightly toolchain.
//! A seed that makes a target panic fails here, naming the file.

use std::path::{Path, PathBuf};

fn seeds(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files
}

fn run_seeds(target: &str, run: fn(&[u8])) -> usize {
    let files = seeds(target);
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        if let Err(panic) = std::panic::catch_unwind(|| run(&bytes)) {
            let why = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("");
            panic!("{}: the {target} target panicked: {why}", file.display());
        }
    }
    files.len()
}

#[test]
fn config_seeds_hold() {
    assert!(run_seeds("config", portcullis::fuzzing::config) >= 5);
}

#[test]
fn request_head_seeds_hold() {
    assert!(run_seeds("request_head", portcullis::fuzzing::request_head) >= 20);
}

#[test]
fn upstream_response_seeds_hold() {
    assert!(run_seeds("upstream_response", portcullis::fuzzing::upstream_response) >= 20);
}
