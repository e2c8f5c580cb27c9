//! Entry points for the fuzz targets in `fuzz/` and for the test that runs
//! their committed seeds (`tests/fuzz_seeds.rs`). Each takes arbitrary
//! bytes, runs the proxy's own code on them, and panics when it panics or
//! when a promise made to users is broken:
//!
//! - [`config`]: a configuration file is either valid, and then usable as
//!   it is, or every error names the file and a line:column inside it.
//! - [`request_head`]: bytes from a client, served by hyper as on a real
//!   connection, get an answer or a closed connection, and a request that
//!   would be forwarded carries no hop-by-hop header, one Host, one framing.
//! - [`upstream_response`]: bytes from an upstream, read by the proxy's
//!   HTTP/1.1 client, end the same way however the reads split them.
//!
//! Not part of the proxy's interface; hidden from its documentation.

mod client;
mod request_head;
mod upstream_response;

use std::path::Path;
use std::sync::Arc;

use http::HeaderValue;

use crate::config::{self, Config, ConfigErrors};
use crate::connections::ConnRegistry;
use crate::metrics::Metrics;
use crate::proxy::Shared;

pub use request_head::request_head;
pub use upstream_response::upstream_response;

/// The name the configuration target gives its text, which every error
/// must carry.
const CONFIG_FILE: &str = "fuzz.toml";

/// Validates `bytes` (as UTF-8, invalid sequences replaced) as a
/// configuration file.
pub fn config(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    match config::from_str(&text, Path::new(CONFIG_FILE)) {
        Ok(config) => check_usable(&config),
        Err(errors) => check_errors(&text, &errors),
    }
}

/// A configuration that validated starts a proxy: nothing that reads it
/// later finds a value it cannot use.
fn check_usable(config: &Config) {
    assert_eq!(config.source.as_deref(), Some(Path::new(CONFIG_FILE)));
    assert!(!config.routes.is_empty(), "a valid configuration has a route");
    for route in &config.routes {
        assert!(route.path.starts_with('/'), "route path {:?}", route.path);
    }
    if let Some(hsts) = &config.tls.hsts {
        assert!(
            HeaderValue::from_str(hsts).is_ok(),
            "hsts {hsts:?} is no header value"
        );
    }
    // What `Proxy::bind` builds from it, short of binding sockets and
    // reading certificates and trust stores (without its TLS, an https://
    // route gets the client that refuses to speak plain HTTP to it).
    let metrics = Arc::new(Metrics::new());
    if let Err(e) = Shared::new(config, &[], metrics, Arc::new(ConnRegistry::default())) {
        panic!("a valid configuration has an unusable route: {e}");
    }
    crate::server::http_builder(&config.server);
}

/// Every error points into the text, at a line and column an editor can go
/// to, and the report renders in file order.
fn check_errors(text: &str, errors: &ConfigErrors) {
    assert!(!errors.is_empty(), "an error report with no error");
    let lines: Vec<&str> = text.split('\n').collect();
    for error in errors {
        let origin = &error.origin;
        assert_eq!(origin.file, CONFIG_FILE, "{error}");
        assert!(origin.has_position(), "no line:column: {error}");
        let line = lines
            .get(origin.line - 1)
            .unwrap_or_else(|| panic!("line {} of a {}-line text: {error}", origin.line, lines.len()));
        let columns = line.chars().count() + 1;
        assert!(
            (1..=columns).contains(&origin.column),
            "column {} on a line of {columns} columns: {error}",
            origin.column
        );
        let position = format!("{CONFIG_FILE}:{}:{}: ", origin.line, origin.column);
        assert!(error.to_string().starts_with(&position), "{error}");
    }
    assert!(
        errors.errors().windows(2).all(|w| w[0].origin <= w[1].origin),
        "errors out of file order:\n{errors}"
    );
    assert!(errors.to_string().ends_with(&format!(" in {CONFIG_FILE}")));
}
