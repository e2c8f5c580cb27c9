//! A route that serves files: `root` or `alias` (the directory must exist
//! at load), `try_files` (with a last `@name` naming an `[[upstream]]`, or
//! `=code`), `index` and `precompressed`; and the keys such a route cannot
//! have with them.

use std::ops::Range;
use std::sync::Arc;

use toml::de::DeValue;

use super::checker::{edit_distance, Checker, Table};
use super::pool::pool_upstream;
use super::route::no_upstream;
use super::route_shaping::RoutePath;
use crate::config::{
    Fallback, FilesDir, PathKind, PoolConfig, Precompressed, StaticFiles, TryFile, Upstream,
};

/// The keys that only mean something with `root` or `alias`.
const FILES_KEYS: [&str; 3] = ["try_files", "index", "precompressed"];

/// What a route's `root` or `alias` made of it: the files, the upstream
/// (a `try_files` pool, or none to reach) and the pool's name. `files` and
/// `upstream` are `None` when something written is invalid.
pub(super) struct FilesRoute {
    pub(super) files: Option<Arc<StaticFiles>>,
    pub(super) upstream: Option<Upstream>,
    pub(super) pool: Option<String>,
}

impl Checker<'_> {
    /// The route's files; `None` when it has neither `root` nor `alias`.
    pub(super) fn route_files(
        &mut self,
        table: &Table<'_, '_>,
        path: Option<&RoutePath>,
        pools: &[PoolConfig],
        pool_names: &[String],
    ) -> Option<FilesRoute> {
        let written = self.one_of(
            table,
            &["root", "alias"],
            "a route serves files from one directory",
        );
        let Some(&key) = written.first() else {
            self.files_keys_alone(table);
            return None;
        };
        let mut valid = written.len() == 1;
        valid &= self.no_action_beside(table, key);
        let dir = self.files_dir(table, key, path);
        let entries = self.try_files(table, pools, pool_names);
        let index = self.index(table);
        let precompressed = self.precompressed(table);
        let invalid = FilesRoute {
            files: None,
            upstream: None,
            pool: None,
        };
        let (Some(dir), Some((try_files, fallback)), Some(index), Some(precompressed), true) =
            (dir, entries, index, precompressed, valid)
        else {
            return Some(invalid);
        };
        let (upstream, pool) = match &fallback {
            Fallback::Pool(name) => match pools.iter().find(|p| &p.name == name) {
                Some(found) => (pool_upstream(found), Some(name.clone())),
                None => return Some(invalid),
            },
            Fallback::NotFound | Fallback::Status(_) => (no_upstream(), None),
        };
        Some(FilesRoute {
            files: Some(Arc::new(StaticFiles {
                dir,
                try_files,
                fallback,
                index,
                precompressed,
            })),
            upstream: Some(upstream),
            pool,
        })
    }

    /// `try_files`, `index` or `precompressed` without a directory.
    fn files_keys_alone(&mut self, table: &Table<'_, '_>) {
        for key in FILES_KEYS {
            if let Some(value) = table.get(key) {
                self.error(
                    &value.span(),
                    table.key_path(key),
                    format!("`{key}` needs `root` or `alias`: this route serves no files"),
                    "add the directory the files are in, for example: root = \"/srv/app/public\"",
                );
            }
        }
    }

    /// Whether the route has none of `upstream`, `redirect`, `respond` and
    /// `status` beside its `root` or `alias` (each one written is reported).
    fn no_action_beside(&mut self, table: &Table<'_, '_>, key: &str) -> bool {
        let mut alone = true;
        for other in ["upstream", "redirect", "respond", "status"] {
            let Some(value) = table.get(other) else {
                continue;
            };
            alone = false;
            let hint = if other == "upstream" {
                "a route that serves files forwards what it does not find to a pool named last in try_files, for example: try_files = [\"{path}\", \"@app\"] with an [[upstream]] name = \"app\""
            } else {
                "keep one of them, and write another [[route]] for the other"
            };
            self.error(
                &value.span(),
                table.key_path(other),
                format!("`{key}` and `{other}` in one route: a route serves files, forwards, redirects or responds"),
                hint,
            );
        }
        alone
    }

    /// `root` or `alias`: a directory that exists now (an `alias` of a
    /// `path_exact` route may be a file).
    fn files_dir(&mut self, table: &Table<'_, '_>, key: &str, path: Option<&RoutePath>) -> Option<FilesDir> {
        let (dir, span) = self.file_path(table, key, "\"/srv/app/public\"", "\"/srv/app/public\"")?;
        let kind = path.map(|(_, _, kind)| kind);
        if key == "alias" && matches!(kind, Some(PathKind::Regex(_))) {
            self.error(
                &span,
                table.key_path(key),
                "`alias` replaces the route's prefix, and a path_regex route has none",
                "write root = \"...\": the whole request path is looked up under it",
            );
            return None;
        }
        let may_be_file = key == "alias" && matches!(kind, Some(PathKind::Exact));
        match std::fs::metadata(&dir) {
            Ok(meta) if meta.is_dir() || (may_be_file && meta.is_file()) => {}
            Ok(_) => {
                self.error(
                    &span,
                    table.key_path(key),
                    format!("`{}` is not a directory", dir.display()),
                    format!("write the directory the files are in (nginx's `{key}`); only an alias of a path_exact route may name one file"),
                );
                return None;
            }
            Err(e) => {
                let what = if e.kind() == std::io::ErrorKind::NotFound {
                    "does not exist"
                } else {
                    "cannot be read"
                };
                self.error(
                    &span,
                    table.key_path(key),
                    format!("the directory `{}` {what}", dir.display()),
                    "create it, or correct the path (a relative path is read from the configuration file's directory)",
                );
                return None;
            }
        }
        Some(match (key, path) {
            ("alias", Some((prefix, _, _))) => FilesDir::Alias {
                dir,
                prefix: prefix.clone(),
            },
            _ => FilesDir::Root(dir),
        })
    }

    /// `try_files`: paths with `{path}`, the last one possibly `@name` or
    /// `=code`. Absent: nginx's default lookup.
    fn try_files(
        &mut self,
        table: &Table<'_, '_>,
        pools: &[PoolConfig],
        pool_names: &[String],
    ) -> Option<(Vec<TryFile>, Fallback)> {
        const EXAMPLE: &str = "try_files = [\"{path}\", \"{path}.html\", \"@app\"]";
        let Some(items) = self.list(table, "try_files", "a list of paths", EXAMPLE) else {
            return table
                .get("try_files")
                .is_none()
                .then(|| (Vec::new(), Fallback::NotFound));
        };
        let key = table.key_path("try_files");
        if items.is_empty() {
            let span = table.get("try_files").map(|v| v.span()).unwrap_or_default();
            self.error(&span, key, "the list is empty", format!("for example: {EXAMPLE}"));
            return None;
        }
        let mut entries = Vec::new();
        let mut fallback = Fallback::NotFound;
        let mut valid = true;
        for (index, item) in items.iter().enumerate() {
            let path = format!("{key}[{index}]");
            let DeValue::String(text) = item.get_ref() else {
                self.type_error(item, path, "a string", format!("for example: {EXAMPLE}"));
                valid = false;
                continue;
            };
            let text: &str = text.as_ref();
            let last = index + 1 == items.len();
            let span = item.span();
            if text.starts_with('@') || text.starts_with('=') {
                if !last {
                    self.error(
                        &span,
                        path,
                        format!("`{text}` is not the last entry; nothing after it would ever be tried"),
                        "move it to the end of the list",
                    );
                    valid = false;
                    continue;
                }
                match self.try_fallback(text, &span, path, pools, pool_names) {
                    Some(last) => fallback = last,
                    None => valid = false,
                }
                continue;
            }
            match try_file(text) {
                Ok(entry) => entries.push(entry),
                Err((message, hint)) => {
                    self.error(&span, path, message, hint);
                    valid = false;
                }
            }
        }
        valid.then_some((entries, fallback))
    }

    /// The last entry of `try_files` when it is `@name` or `=code`.
    fn try_fallback(
        &mut self,
        text: &str,
        span: &Range<usize>,
        path: String,
        pools: &[PoolConfig],
        pool_names: &[String],
    ) -> Option<Fallback> {
        if let Some(code) = text.strip_prefix('=') {
            return match code.parse::<u16>().ok().filter(|n| (400..=599).contains(n)) {
                Some(n) => http::StatusCode::from_u16(n).ok().map(Fallback::Status),
                None => {
                    self.error(
                        span,
                        path,
                        format!("`{text}` is not an error status"),
                        "write a status from 400 to 599, for example: \"=404\" (as nginx's =code)",
                    );
                    None
                }
            };
        }
        let name = &text[1..];
        if pools.iter().any(|p| p.name == name) {
            return Some(Fallback::Pool(name.to_string()));
        }
        // A pool that was written but is invalid has its own error already.
        if pool_names.iter().any(|n| n == name) {
            return None;
        }
        let hint = match pool_names.iter().min_by_key(|n| edit_distance(name, n)) {
            Some(close) if edit_distance(name, close) <= 2 => format!("did you mean \"@{close}\"?"),
            _ if pool_names.is_empty() => format!(
                "define the pool the requests go to: [[upstream]] name = \"{name}\" servers = [\"http://127.0.0.1:8080\"]"
            ),
            _ => format!("pools defined: {}", pool_names.join(", ")),
        };
        self.error(span, path, format!("no [[upstream]] is named `{name}`"), hint);
        None
    }

    /// `index`: file names; default `["index.html"]`, and `[]` for none.
    fn index(&mut self, table: &Table<'_, '_>) -> Option<Vec<String>> {
        const EXAMPLE: &str = "index = [\"index.html\"]";
        let Some(items) = self.list(table, "index", "a list of file names", EXAMPLE) else {
            return table
                .get("index")
                .is_none()
                .then(|| vec!["index.html".to_string()]);
        };
        let key = table.key_path("index");
        let mut names = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let path = format!("{key}[{index}]");
            match item.get_ref() {
                DeValue::String(text) if crate::serve::confine::segment_ok(text.as_bytes()) => {
                    names.push(text.to_string());
                }
                DeValue::String(text) => self.error(
                    &item.span(),
                    path,
                    format!("`{}` is not a file name", text.escape_debug()),
                    "write the name of a file in the directory, without `/`, for example: index = [\"index.html\"]",
                ),
                _ => self.type_error(item, path, "a file name", format!("for example: {EXAMPLE}")),
            }
        }
        (names.len() == items.len()).then_some(names)
    }

    /// `precompressed`: `br`, `gzip`, `zstd`, each once.
    fn precompressed(&mut self, table: &Table<'_, '_>) -> Option<Vec<Precompressed>> {
        const EXAMPLE: &str = "precompressed = [\"br\", \"gzip\"]";
        let Some(items) = self.list(table, "precompressed", "a list of encodings", EXAMPLE) else {
            return table.get("precompressed").is_none().then(Vec::new);
        };
        let key = table.key_path("precompressed");
        let mut encodings = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let path = format!("{key}[{index}]");
            let found = match item.get_ref() {
                DeValue::String(text) => match text.as_ref() {
                    "br" => Some(Precompressed::Br),
                    "gzip" => Some(Precompressed::Gzip),
                    "zstd" => Some(Precompressed::Zstd),
                    other => {
                        let hint = match other {
                            "gz" => "write \"gzip\" (the files end in .gz)",
                            "brotli" => "write \"br\" (the files end in .br)",
                            "zst" => "write \"zstd\" (the files end in .zst)",
                            _ => "the encodings are \"br\" (x.js.br), \"gzip\" (x.js.gz) and \"zstd\" (x.js.zst)",
                        };
                        self.error(
                            &item.span(),
                            path,
                            format!("`{}` is not an encoding", other.escape_debug()),
                            hint,
                        );
                        None
                    }
                },
                _ => {
                    self.type_error(item, path, "an encoding", format!("for example: {EXAMPLE}"));
                    None
                }
            };
            match found {
                Some(encoding) if encodings.contains(&encoding) => self.error(
                    &item.span(),
                    format!("{key}[{index}]"),
                    format!("`{}` is listed twice", encoding.token()),
                    "list each encoding once, in order of preference",
                ),
                Some(encoding) => encodings.push(encoding),
                None => {}
            }
        }
        (encodings.len() == items.len()).then_some(encodings)
    }
}

/// One `try_files` path: starts with `/` or `{path}`, names no other
/// placeholder.
fn try_file(text: &str) -> Result<TryFile, (String, String)> {
    if text.contains('$') {
        return Err((
            format!("`{text}` holds an nginx variable"),
            format!(
                "write {{path}} for nginx's $uri, for example: \"{}\"",
                text.replace("$uri", "{path}")
            ),
        ));
    }
    let pieces: Vec<String> = text.split("{path}").map(str::to_string).collect();
    if let Some(other) = pieces.iter().find_map(|p| p.find(['{', '}']).map(|at| &p[at..])) {
        let name: String = other.chars().take_while(|&c| c != '}').skip(1).collect();
        return Err((
            format!("`{{{name}}}` is not a placeholder of try_files"),
            "the one placeholder is {path}, the request's path".to_string(),
        ));
    }
    if !(text.starts_with('/') || text.starts_with("{path}")) {
        return Err((
            format!("`{text}` is not a path"),
            format!(
                "start it with / or {{path}}, for example: \"{{path}}{}\"",
                text.trim_start_matches('/')
            ),
        ));
    }
    if text.chars().any(|c| c.is_control()) {
        return Err((
            format!("`{}` holds a control character", text.escape_debug()),
            "write a path such as \"{path}.html\"".to_string(),
        ));
    }
    Ok(TryFile { pieces })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn try_file_entries() {
        assert_eq!(try_file("{path}.html").unwrap().render("/a"), "/a.html");
        assert_eq!(try_file("/index.html").unwrap().render("/a"), "/index.html");
        assert_eq!(try_file("{path}/").unwrap().render("/a"), "/a/");
        assert!(try_file("$uri").unwrap_err().1.contains("{path}"));
        assert!(try_file("{uri}").unwrap_err().0.contains("{uri}"));
        assert!(try_file("a.html").is_err());
    }
}
