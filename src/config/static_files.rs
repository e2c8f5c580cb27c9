//! A route that serves files (`root` or `alias`, `try_files`, `index`,
//! `precompressed`): the typed values `parse/route_static.rs` checks, and
//! `serve/` reads at request time.

use std::path::PathBuf;

/// A route's static files.
#[derive(Debug, Clone)]
pub struct StaticFiles {
    /// Where request paths lead on disk.
    pub dir: FilesDir,
    /// `try_files`, without its last `@name` or `=code`: the paths tried in
    /// order, each a template with `{path}`. Empty: nginx's default (the
    /// path itself, a directory's index, a 301 to a directory's slash).
    pub try_files: Vec<TryFile>,
    /// What answers when no entry of `try_files` exists.
    pub fallback: Fallback,
    /// `index`: the files looked for in a directory. Default `["index.html"]`.
    pub index: Vec<String>,
    /// `precompressed`: the encodings whose files (`x.js.br`, `x.js.gz`,
    /// `x.js.zst`) are served in place of `x.js` to a client that accepts
    /// them, in order of preference. Empty (the default): none.
    pub precompressed: Vec<Precompressed>,
}

/// `root` or `alias`.
#[derive(Debug, Clone)]
pub enum FilesDir {
    /// `root`: the whole request path is looked up under this directory,
    /// as nginx's `root`: `/assets/app.js` is `<root>/assets/app.js`.
    Root(PathBuf),
    /// `alias`: the route's `prefix` is replaced by this directory, as
    /// nginx's `alias`: with `path = "/assets/"`, `/assets/app.js` is
    /// `<alias>/app.js`. On a `path_exact` route, the file itself.
    Alias { dir: PathBuf, prefix: String },
}

impl FilesDir {
    /// The directory as configured, for messages.
    pub fn path(&self) -> &std::path::Path {
        match self {
            FilesDir::Root(dir) | FilesDir::Alias { dir, .. } => dir,
        }
    }
}

/// One entry of `try_files`: literal text around `{path}`, which stands
/// for the request's normalised path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TryFile {
    /// The text split at each `{path}`: `{path}.html` is `["", ".html"]`.
    pub pieces: Vec<String>,
}

impl TryFile {
    /// The entry with `{path}` replaced by `path`.
    pub fn render(&self, path: &str) -> String {
        self.pieces.join(path)
    }
}

/// The last entry of `try_files`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Fallback {
    /// No `@name` or `=code`: 404 when nothing exists.
    #[default]
    NotFound,
    /// `"@name"`: the request is forwarded to the `[[upstream]]` of that
    /// name, which is then the route's pool.
    Pool(String),
    /// `"=404"` and the like: this status, as nginx's `=code`.
    Status(http::StatusCode),
}

/// An encoding of `precompressed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precompressed {
    Br,
    Gzip,
    Zstd,
}

impl Precompressed {
    /// Its `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Precompressed::Br => "br",
            Precompressed::Gzip => "gzip",
            Precompressed::Zstd => "zstd",
        }
    }

    /// The suffix its files carry.
    pub fn suffix(self) -> &'static str {
        match self {
            Precompressed::Br => ".br",
            Precompressed::Gzip => ".gz",
            Precompressed::Zstd => ".zst",
        }
    }
}
