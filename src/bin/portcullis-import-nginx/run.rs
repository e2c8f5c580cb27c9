//! The import: runs the translator (the portcullis-import-nginx crate),
//! writes the proxy.toml, prints the report on stderr, then checks the
//! result as `portcullis check` does and maps all of it to an exit status.

use std::path::PathBuf;
use std::process::ExitCode;

use portcullis::config::{self, ConfigErrors};
use portcullis_import_nginx::{import_file, Options};

use crate::ImportArgs;

pub(crate) fn run(args: &ImportArgs) -> ExitCode {
    let options = Options {
        server: args.server.clone(),
        prefix: args.prefix.clone(),
    };
    let import = match import_file(&args.file, &options) {
        Ok(import) => import,
        Err(e) => {
            eprintln!("portcullis import-nginx: {e}");
            return ExitCode::from(2);
        }
    };
    match &args.out {
        Some(path) => {
            if let Err(e) = std::fs::write(path, &import.toml) {
                eprintln!("portcullis import-nginx: {}: cannot write: {e}", path.display());
                return ExitCode::from(2);
            }
        }
        None => print!("{}", import.toml),
    }
    for line in &import.report {
        eprintln!("{line}");
    }
    // Relative paths in the output are read from where it is written.
    let name = args.out.clone().unwrap_or_else(|| PathBuf::from("proxy.toml"));
    let checked = config::from_str(&import.toml, &name)
        .and_then(|config| portcullis::reload::check_files(&config).map(|_| ()));
    let (invalid, unreadable) = match &checked {
        Ok(()) => (false, false),
        Err(errors) => {
            eprintln!("portcullis check of the result:\n{errors}");
            classify(errors)
        }
    };
    let differences = import.report.iter().filter(|l| l.changes_behaviour).count();
    let target = args
        .out
        .as_ref()
        .map_or("standard output".to_string(), |p| p.display().to_string());
    eprintln!(
        "import-nginx: written to {target}; {} report line(s), {differences} changing behaviour; check: {}",
        import.report.len(),
        match (invalid, unreadable) {
            (false, false) => "valid",
            (true, _) => "invalid",
            (false, true) => "files it names are not readable here",
        }
    );
    if invalid {
        ExitCode::from(2)
    } else if differences > 0 || unreadable {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    }
}

/// (invalid, unreadable): whether an error is something other than a file
/// the configuration names that is not on this machine (the operator's
/// certificates and directories, which the check reads).
fn classify(errors: &ConfigErrors) -> (bool, bool) {
    let missing = |message: &str| {
        let m = message.to_ascii_lowercase();
        m.contains("no such file") || m.contains("does not exist") || m.contains("permission denied")
    };
    let unreadable = errors.errors().iter().any(|e| missing(&e.message));
    let invalid = errors.errors().iter().any(|e| !missing(&e.message));
    (invalid, unreadable)
}
