//! The keys of a route that serves files, as the configuration check
//! reports them: file:line:column, the key, what is wrong, and what to
//! write instead.

use std::path::Path;

use portcullis::config::{from_str, ConfigErrors, Fallback, FilesDir, Precompressed};

fn errors(text: &str) -> ConfigErrors {
    match from_str(text, Path::new("proxy.toml")) {
        Ok(config) => panic!("expected errors, got {config:#?}"),
        Err(errors) => errors,
    }
}

/// The one error of `text`, as printed.
fn error(text: &str) -> String {
    let errors = errors(text);
    assert_eq!(errors.len(), 1, "expected exactly one error, got:\n{errors}");
    errors.0[0].to_string()
}

/// A route at `/` with `root` a directory that exists, then `keys`.
fn route(root: &Path, keys: &str) -> String {
    format!("[[route]]\npath = \"/\"\nroot = \"{}\"\n{keys}", root.display())
}

const POOL: &str = "[[upstream]]\nname = \"app\"\nservers = [\"http://127.0.0.1:8080\"]\n\n";

#[test]
fn a_static_route_needs_no_upstream_and_keeps_what_it_was_given() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{POOL}{}",
        route(
            dir.path(),
            "try_files = [\"{path}\", \"{path}.html\", \"@app\"]\nindex = [\"index.htm\"]\nprecompressed = [\"zstd\", \"gzip\"]\n"
        )
    );
    let config = from_str(&text, Path::new("proxy.toml")).unwrap_or_else(|e| panic!("{e}"));
    let first = &config.routes[0];
    let files = first.files.as_ref().unwrap();
    assert!(matches!(&files.dir, FilesDir::Root(d) if d == dir.path()));
    assert_eq!(files.try_files.len(), 2);
    assert_eq!(files.try_files[1].render("/a"), "/a.html");
    assert_eq!(files.fallback, Fallback::Pool("app".into()));
    assert_eq!(files.index, ["index.htm"]);
    assert_eq!(files.precompressed, [Precompressed::Zstd, Precompressed::Gzip]);
    assert_eq!(first.pool.as_deref(), Some("app"));
    assert_eq!(
        first.upstream_text(),
        format!("files {}, else pool app", dir.path().display())
    );

    // Alone: no upstream, index.html by default.
    let config = from_str(&route(dir.path(), ""), Path::new("proxy.toml")).unwrap();
    let files = config.routes[0].files.as_ref().unwrap();
    assert_eq!(files.index, ["index.html"]);
    assert_eq!(files.fallback, Fallback::NotFound);
}

#[test]
fn root_and_alias_need_a_directory_that_exists() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    assert_eq!(
        error(&route(&missing, "")),
        format!(
            "proxy.toml:3:8: route[0].root: the directory `{}` does not exist\n  help: create it, or correct the path (a relative path is read from the configuration file's directory)",
            missing.display()
        )
    );
    let file = dir.path().join("file.txt");
    std::fs::write(&file, "x").unwrap();
    assert!(error(&route(&file, "")).contains("is not a directory"));
    // An alias of an exact path may be one file.
    let text = format!(
        "[[route]]\npath_exact = \"/favicon.ico\"\nalias = \"{}\"\n",
        file.display()
    );
    assert!(from_str(&text, Path::new("proxy.toml")).is_ok());
    let text = format!(
        "[[route]]\npath_regex = \"^/a\"\nalias = \"{}\"\n",
        dir.path().display()
    );
    assert!(error(&text).contains("route[0].alias: `alias` replaces the route's prefix, and a path_regex route has none\n  help: write root = "));
}

#[test]
fn a_route_serves_files_from_one_place_and_does_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    assert_eq!(
        error(&route(dir.path(), &format!("alias = \"{d}\"\n"))),
        "proxy.toml:4:9: route[0].alias: `root` and `alias` in one route: a route serves files from one directory\n  help: keep one of them, and write another [[route]] for the other"
    );
    assert_eq!(
        error(&route(dir.path(), "redirect = \"/x\"\n")),
        "proxy.toml:4:12: route[0].redirect: `root` and `redirect` in one route: a route serves files, forwards, redirects or responds\n  help: keep one of them, and write another [[route]] for the other"
    );
    assert!(error(&route(dir.path(), "respond = { status = 404 }\n"))
        .contains("`root` and `respond` in one route"));
    let e = error(&route(dir.path(), "upstream = \"http://127.0.0.1:8080\"\n"));
    assert!(
        e.contains("route[0].upstream: `root` and `upstream` in one route"),
        "{e}"
    );
    assert!(e.contains("try_files = [\"{path}\", \"@app\"]"), "{e}");
    assert_eq!(
        error("[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:8080\"\ntry_files = [\"{path}\"]\n"),
        "proxy.toml:4:13: route[0].try_files: `try_files` needs `root` or `alias`: this route serves no files\n  help: add the directory the files are in, for example: root = \"/srv/app/public\""
    );
}

#[test]
fn try_files_names_a_pool_that_exists_last() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        error(&format!("{POOL}{}", route(dir.path(), "try_files = [\"{path}\", \"@ap\"]\n"))),
        "proxy.toml:8:24: route[0].try_files[1]: no [[upstream]] is named `ap`\n  help: did you mean \"@app\"?"
    );
    assert!(error(&route(dir.path(), "try_files = [\"{path}\", \"@app\"]\n"))
        .contains("help: define the pool the requests go to: [[upstream]] name = \"app\""));
    assert_eq!(
        error(&format!("{POOL}{}", route(dir.path(), "try_files = [\"@app\", \"{path}\"]\n"))),
        "proxy.toml:8:14: route[0].try_files[0]: `@app` is not the last entry; nothing after it would ever be tried\n  help: move it to the end of the list"
    );
    assert!(error(&route(dir.path(), "try_files = [\"{path}\", \"=200\"]\n"))
        .contains("`=200` is not an error status\n  help: write a status from 400 to 599"));
    let e = errors(&route(
        dir.path(),
        "try_files = [\"$uri\", \"{uri}\", \"x.html\"]\n",
    ))
    .to_string();
    assert!(
        e.contains(
            "`$uri` holds an nginx variable\n  help: write {path} for nginx's $uri, for example: \"{path}\""
        ),
        "{e}"
    );
    assert!(e.contains("`{uri}` is not a placeholder of try_files"), "{e}");
    assert!(
        e.contains(
            "`x.html` is not a path\n  help: start it with / or {path}, for example: \"{path}x.html\""
        ),
        "{e}"
    );
    assert!(error(&route(dir.path(), "try_files = []\n")).contains("the list is empty"));
}

#[test]
fn index_and_precompressed_are_checked_by_name() {
    let dir = tempfile::tempdir().unwrap();
    assert!(error(&route(dir.path(), "index = [\"a/index.html\"]\n"))
        .contains("route[0].index[0]: `a/index.html` is not a file name"));
    assert!(error(&route(dir.path(), "index = [\"..\"]\n")).contains("is not a file name"));
    assert_eq!(
        error(&route(dir.path(), "precompressed = [\"gz\"]\n")),
        "proxy.toml:4:18: route[0].precompressed[0]: `gz` is not an encoding\n  help: write \"gzip\" (the files end in .gz)"
    );
    assert!(error(&route(dir.path(), "precompressed = [\"br\", \"br\"]\n")).contains("`br` is listed twice"));
    // nginx's name is answered with ours.
    let e = error(&route(dir.path(), "gzip_static = true\n"));
    assert!(e.contains("portcullis calls this setting `precompressed`"), "{e}");
}
