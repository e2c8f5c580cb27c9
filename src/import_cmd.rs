//! `portcullis import-nginx`: hands the command to the
//! `portcullis-import-nginx` binary beside this one (built with it), so
//! that the translator's code stays out of the proxy's binary and its
//! container image.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use crate::cli::ImportArgs;

const HELPER: &str = "portcullis-import-nginx";

pub(crate) fn run(args: &ImportArgs) -> ExitCode {
    let mut command = Command::new(helper());
    command.arg(&args.file);
    let options = [
        ("--server", args.server.as_ref().map(OsString::from)),
        ("--output", args.out.as_ref().map(OsString::from)),
        ("--prefix", args.prefix.as_ref().map(OsString::from)),
    ];
    for (name, value) in options {
        if let Some(value) = value {
            command.arg(name).arg(value);
        }
    }
    // exec returns only when it failed.
    let error = command.exec();
    eprintln!(
        "portcullis import-nginx: cannot run {HELPER} ({error}); it is built beside portcullis \
         (cargo build --release builds both). The container image carries portcullis alone: \
         run the import where nginx runs"
    );
    ExitCode::from(2)
}

/// The helper beside this binary, else the one on PATH.
fn helper() -> PathBuf {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(HELPER)));
    match beside {
        Some(path) if path.is_file() => path,
        _ => PathBuf::from(HELPER),
    }
}
