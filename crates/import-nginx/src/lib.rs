//! `portcullis import-nginx`'s translator: an nginx configuration in, the
//! equivalent portcullis `proxy.toml` out (every key with a comment citing
//! the nginx line it came from), and a report of each directive it could
//! not carry over as it is.
//!
//! It has no dependency on portcullis itself: the command checks what it
//! writes the way `portcullis check` does.

use std::fmt;
use std::path::{Path, PathBuf};

mod emit;
mod include;
mod inherit;
mod lex;
mod parse;
pub mod report;
mod translate;
mod values;

pub use report::{Action, Line};

/// What the command line asked of the translation.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--server NAME`: translate only the `server` blocks of this name.
    pub server: Option<String>,
    /// `--prefix DIR`: where relative paths of the configuration are read
    /// from (nginx's configuration directory); the main file's directory
    /// when absent.
    pub prefix: Option<PathBuf>,
}

/// A translation.
#[derive(Debug)]
pub struct Import {
    /// The proxy.toml.
    pub toml: String,
    /// One line for each directive not carried over as it is.
    pub report: Vec<Line>,
}

impl Import {
    /// Whether something in the report changes what a client or an
    /// upstream sees.
    pub fn changes_behaviour(&self) -> bool {
        self.report.iter().any(|l| l.changes_behaviour)
    }
}

/// A file that could not be read or parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub file: String,
    /// 0 for the file as a whole.
    pub line: usize,
    pub message: String,
}

impl Error {
    pub(crate) fn at(file: &str, line: usize, message: impl Into<String>) -> Error {
        Error {
            file: file.to_string(),
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        }
    }
}

impl std::error::Error for Error {}

/// Translates the nginx configuration in `path` and the files it includes.
pub fn import_file(path: &Path, options: &Options) -> Result<Import, Error> {
    let prefix = match &options.prefix {
        Some(p) => p.clone(),
        None => path.parent().map(Path::to_path_buf).unwrap_or_default(),
    };
    // The output may be written elsewhere: paths in it are absolute.
    let prefix = match std::env::current_dir() {
        Ok(here) if prefix.is_relative() => here.join(prefix),
        _ => prefix,
    };
    let mut report = report::Report::default();
    let list = include::load(path, &prefix, &mut report)?;
    translate::translate(&list, options, &prefix, report, &path.display().to_string())
}
