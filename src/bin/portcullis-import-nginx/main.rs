//! `portcullis-import-nginx`: the binary behind `portcullis import-nginx`,
//! which runs it from its own directory. The translator's code lives here
//! and not in `portcullis`, whose container image has no room for it (the
//! import runs where nginx runs, not in the image).
//!
//! ```text
//! portcullis-import-nginx FILE [--server NAME] [-o OUT] [--prefix DIR]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

mod run;

/// What the command line asked for.
pub(crate) struct ImportArgs {
    pub(crate) file: PathBuf,
    pub(crate) server: Option<String>,
    pub(crate) out: Option<PathBuf>,
    pub(crate) prefix: Option<PathBuf>,
}

fn main() -> ExitCode {
    match parse(
        std::env::args_os()
            .skip(1)
            .map(|a| a.to_string_lossy().into_owned()),
    ) {
        Ok(args) => run::run(&args),
        Err(message) => {
            eprintln!("error: {message}\n\nUsage: portcullis import-nginx <FILE> [--server NAME] [-o OUT] [--prefix DIR]");
            ExitCode::from(2)
        }
    }
}

/// The arguments, as `portcullis import-nginx` passes them on (its own
/// parser has checked them already): `--name value` or `--name=value`.
fn parse(args: impl Iterator<Item = String>) -> Result<ImportArgs, String> {
    let mut parsed = ImportArgs {
        file: PathBuf::new(),
        server: None,
        out: None,
        prefix: None,
    };
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |what: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or(format!("{what} needs a value"))
        };
        match name.as_str() {
            "--server" => parsed.server = Some(value("--server <NAME>")?),
            "-o" | "--output" => parsed.out = Some(PathBuf::from(value("--output <OUT>")?)),
            "--prefix" => parsed.prefix = Some(PathBuf::from(value("--prefix <DIR>")?)),
            file if !file.starts_with('-') && parsed.file.as_os_str().is_empty() => {
                parsed.file = PathBuf::from(file)
            }
            other => return Err(format!("unexpected argument '{other}'")),
        }
    }
    if parsed.file.as_os_str().is_empty() {
        return Err("the nginx configuration file is missing".to_string());
    }
    Ok(parsed)
}
