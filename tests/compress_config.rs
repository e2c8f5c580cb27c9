//! `[compression]` and a route's `compression` as an operator writes them:
//! what they mean once loaded, and the exact text of each mistake.

use std::path::Path;

use portcullis::config::{from_str, CompressionLevel, ConfigError, Encoding};

const ROUTE: &str = "[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:8080\"\n";

fn error(text: &str) -> ConfigError {
    match from_str(text, Path::new("proxy.toml")) {
        Ok(_) => panic!("expected an error in:\n{text}"),
        Err(errors) => {
            assert_eq!(errors.len(), 1, "expected exactly one error, got:\n{errors}");
            errors.0[0].clone()
        }
    }
}

/// The error's text as `portcullis check` prints it.
fn text(e: &ConfigError) -> String {
    e.to_string()
}

#[test]
fn defaults_route_overrides_and_off() {
    let config = from_str(
        &format!(
            "[compression]\nlevel = 6\nmin_length = \"256B\"\n\n{ROUTE}\n\
             [[route]]\npath = \"/api\"\nupstream = \"http://127.0.0.1:8080\"\ncompression = {{ types = [\"application/json\"] }}\n\n\
             [[route]]\npath = \"/ws\"\nupstream = \"http://127.0.0.1:8080\"\ncompression = false\n"
        ),
        Path::new("proxy.toml"),
    )
    .unwrap();
    let global = config.compression.as_deref().unwrap();
    assert_eq!(global.level, CompressionLevel::Number(6));
    assert_eq!(global.min_length, 256);
    assert_eq!(
        global.types,
        [
            "text/*",
            "application/json",
            "application/javascript",
            "image/svg+xml"
        ]
    );
    assert!(global.encodings.contains(&Encoding::Gzip));
    assert_eq!(config.routes[0].compression.as_deref(), Some(global));
    let api = config.routes[1].compression.as_deref().unwrap();
    assert_eq!(api.types, ["application/json"]);
    assert_eq!(
        api.level,
        CompressionLevel::Number(6),
        "the rest comes from [compression]"
    );
    assert!(config.routes[2].compression.is_none());

    // Without [compression], off everywhere unless a route asks.
    let config = from_str(ROUTE, Path::new("proxy.toml")).unwrap();
    assert!(config.compression.is_none() && config.routes[0].compression.is_none());
    let config = from_str(&format!("{ROUTE}compression = true\n"), Path::new("proxy.toml")).unwrap();
    let on = config.routes[0].compression.as_deref().unwrap();
    assert_eq!((on.min_length, on.level), (1024, CompressionLevel::Default));
}

#[test]
fn an_unknown_encoding_says_what_to_write() {
    let e = error(&format!("[compression]\nencodings = [\"gzp\"]\n\n{ROUTE}"));
    assert_eq!(e.key, "compression.encodings");
    assert_eq!((e.origin.line, e.origin.column), (2, 14));
    assert_eq!(
        text(&e),
        "proxy.toml:2:14: compression.encodings: `gzp` is not an encoding portcullis can produce\n  \
         help: did you mean \"gzip\"? valid encodings: \"zstd\", \"br\", \"gzip\""
    );
    let e = error(&format!("[compression]\nencodings = [\"brotli\"]\n\n{ROUTE}"));
    assert!(
        e.hint
            .starts_with("write \"br\", the Content-Encoding token of brotli"),
        "{e}"
    );
    let e = error(&format!("[compression]\nencodings = [\"deflate\"]\n\n{ROUTE}"));
    assert!(e.hint.contains("gzip is the same compression"), "{e}");
    let e = error(&format!(
        "[compression]\nencodings = [\"gzip\", \"GZIP\"]\n\n{ROUTE}"
    ));
    assert_eq!(e.message, "`GZIP` is listed twice");
    let e = error(&format!("[compression]\nencodings = []\n\n{ROUTE}"));
    assert_eq!(e.message, "an empty list would compress nothing");
}

#[test]
fn an_encoder_this_build_lacks_is_named_with_the_feature_that_adds_it() {
    if cfg!(feature = "brotli") {
        return;
    }
    let e = error(&format!(
        "[compression]\nencodings = [\"br\", \"gzip\"]\n\n{ROUTE}"
    ));
    assert_eq!(
        text(&e),
        "proxy.toml:2:14: compression.encodings: this build of portcullis has no br encoder\n  \
         help: leave \"br\" out (gzip is always there), or build with `cargo build --release --locked --features brotli`"
    );
}

#[test]
fn levels_types_and_shapes() {
    let e = error(&format!("[compression]\nlevel = 11\n\n{ROUTE}"));
    assert_eq!(
        text(&e),
        "proxy.toml:2:9: compression.level: 11 is not a level from 1 to 9\n  \
         help: write level = \"default\" (gzip 1 as nginx's gzip_comp_level, br 4, zstd 3) or a number from 1 (fastest) to 9 (smallest)"
    );
    let e = error(&format!("[compression]\nlevel = \"fast\"\n\n{ROUTE}"));
    assert_eq!(
        e.message,
        "expected \"default\" or a number from 1 to 9, found a string"
    );
    let e = error(&format!("[compression]\ntypes = [\"json\"]\n\n{ROUTE}"));
    assert_eq!(e.key, "compression.types");
    assert_eq!(e.message, "`json` is not a media type");
    let e = error(&format!("[compression]\ntypes = \"text/*\"\n\n{ROUTE}"));
    assert_eq!(e.hint, "put it in brackets: types = [\"text/*\"]");
    let e = error(&format!("[compression]\nmin_length = \"1KB\"\n\n{ROUTE}"));
    assert_eq!(e.key, "compression.min_length");
    let e = error(&format!("{ROUTE}compression = \"on\"\n"));
    assert_eq!(e.key, "route[0].compression");
    assert_eq!(e.message, "expected true, false or a table, found a string");
    let e = error(&format!("{ROUTE}compression = {{ level = 0 }}\n"));
    assert_eq!(e.key, "route[0].compression.level");
}

#[test]
fn nginx_names_point_to_ours() {
    let e = error(&format!("[compression]\ngzip_comp_level = 5\n\n{ROUTE}"));
    assert_eq!(
        text(&e),
        "proxy.toml:2:1: compression.gzip_comp_level: unknown key `gzip_comp_level` in [compression]\n  \
         help: portcullis calls this setting `level`"
    );
    let e = error(&format!("[compression]\ngzip_types = [\"text/*\"]\n\n{ROUTE}"));
    assert_eq!(e.hint, "portcullis calls this setting `types`");
    let e = error(&format!("[gzip]\n\n{ROUTE}"));
    assert_eq!(e.hint, "portcullis calls this setting `compression`");
    let e = error(&format!("{ROUTE}gzip = true\n"));
    assert_eq!(e.hint, "portcullis calls this setting `compression`");
}
