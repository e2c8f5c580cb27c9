//! `[buffering]` (`request_buffering`, `response_buffering`, `temp_dir`)
//! and a route's `request_buffering` and `response_buffering`: a size, or
//! `false` to stream on a route where `[buffering]` would buffer, `true`
//! for `[buffering]`'s size or the default. A route without an upstream
//! has nothing to buffer for.

use std::sync::Arc;

use toml::de::DeValue;

use super::checker::{Checker, Schema, Table};
use crate::config::size;
use crate::config::Buffering;

const BUFFERING_SCHEMA: Schema = Schema {
    keys: &["request_buffering", "response_buffering", "temp_dir"],
    aliases: ALIASES,
};

/// nginx's names for what these keys do; also those of a route.
pub(super) const ALIASES: &[(&str, &str)] = &[
    ("proxy_request_buffering", "request_buffering"),
    ("client_body_buffer_size", "request_buffering"),
    ("request_buffer", "request_buffering"),
    ("proxy_buffering", "response_buffering"),
    ("proxy_buffer_size", "response_buffering"),
    ("proxy_buffers", "response_buffering"),
    ("response_buffer", "response_buffering"),
    ("client_body_temp_path", "temp_dir"),
    ("proxy_temp_path", "temp_dir"),
];

/// What `true` means where `[buffering]` gives no size: nginx would hold
/// a request body of 16 KiB in memory, but an application with few workers
/// is better served by not writing most uploads to disk.
const REQUEST_DEFAULT: u64 = 16 * 1024 * 1024;
const RESPONSE_DEFAULT: u64 = 1024 * 1024;

/// Which of the two keys, with what its messages need.
#[derive(Clone, Copy)]
enum Which {
    Request,
    Response,
}

impl Which {
    fn key(self) -> &'static str {
        match self {
            Which::Request => "request_buffering",
            Which::Response => "response_buffering",
        }
    }

    fn example(self) -> &'static str {
        match self {
            Which::Request => "\"16MiB\"",
            Which::Response => "\"1MiB\"",
        }
    }

    fn nginx(self) -> &'static str {
        match self {
            Which::Request => "nginx's proxy_request_buffering off is request_buffering = false",
            Which::Response => {
                "nginx's proxy_buffering off is response_buffering = false; proxy_buffer_size and proxy_buffers together are its size"
            }
        }
    }

    fn default_size(self) -> u64 {
        match self {
            Which::Request => REQUEST_DEFAULT,
            Which::Response => RESPONSE_DEFAULT,
        }
    }
}

impl Checker<'_> {
    /// `[buffering]`, or nothing buffered.
    pub(super) fn buffering_defaults(&mut self, top: &Table<'_, '_>) -> Buffering {
        let Some(table) = self.table(top, "buffering", "[buffering]") else {
            return Buffering::default();
        };
        self.check_keys(&table, &BUFFERING_SCHEMA);
        let temp_dir = self
            .file_path(
                &table,
                "temp_dir",
                "\"/var/cache/portcullis\"",
                "/var/cache/portcullis",
            )
            .map(|(path, _)| Arc::new(path));
        Buffering {
            request: self.buffer_size(&table, Which::Request, None).flatten(),
            response: self.buffer_size(&table, Which::Response, None).flatten(),
            temp_dir,
        }
    }

    /// A route's buffering over `global`; `proxies` is false for a route
    /// that answers by itself, where either key is an error.
    pub(super) fn route_buffering(
        &mut self,
        route: &Table<'_, '_>,
        global: &Buffering,
        proxies: bool,
    ) -> Buffering {
        let mut out = global.clone();
        for which in [Which::Request, Which::Response] {
            let Some(size) = self.buffer_size(route, which, Some(global)) else {
                continue;
            };
            if size.is_some() && !proxies {
                let span = route.get(which.key()).map(|v| v.span()).unwrap_or_default();
                self.error(
                    &span,
                    route.key_path(which.key()),
                    "this route has no upstream (it serves files, redirects or responds by itself): there is nothing to buffer for",
                    format!("remove {}, or give the route an upstream (or a try_files fallback \"@pool\")", which.key()),
                );
            }
            match which {
                Which::Request => out.request = size,
                Which::Response => out.response = size,
            }
        }
        if !proxies {
            out.request = None;
            out.response = None;
        }
        out
    }

    /// The key's size: `Some(None)` for `false`, `None` when absent or
    /// invalid. `global` is where `true` takes its size from in a route.
    fn buffer_size(
        &mut self,
        table: &Table<'_, '_>,
        which: Which,
        global: Option<&Buffering>,
    ) -> Option<Option<u64>> {
        let key = which.key();
        let value = table.get(key)?;
        let hint = || {
            format!(
                "write a size such as {key} = {}, or {key} = false to stream ({})",
                which.example(),
                which.nginx()
            )
        };
        let bytes = match value.get_ref() {
            DeValue::Boolean(false) => return Some(None),
            DeValue::Boolean(true) => {
                let configured = global.and_then(|g| match which {
                    Which::Request => g.request,
                    Which::Response => g.response,
                });
                return Some(Some(configured.unwrap_or(which.default_size())));
            }
            DeValue::String(text) => match size::parse(text) {
                Ok(bytes) => bytes,
                Err(invalid) => {
                    self.error(&value.span(), table.key_path(key), invalid.message, hint());
                    return None;
                }
            },
            DeValue::Integer(number) => match u64::from_str_radix(number.as_str(), number.radix()) {
                Ok(bytes) => bytes,
                Err(_) => {
                    self.error(
                        &value.span(),
                        table.key_path(key),
                        format!("{number} is not a size"),
                        hint(),
                    );
                    return None;
                }
            },
            _ => {
                self.type_error(value, table.key_path(key), "a size or false", hint());
                return None;
            }
        };
        if bytes == 0 {
            self.error(
                &value.span(),
                table.key_path(key),
                "a buffer of 0 bytes would hold nothing",
                hint(),
            );
            return None;
        }
        Some(Some(bytes))
    }
}
