//! `error_pages` (status to file, each file read now) and
//! `intercept_errors`, in `[server]` and in a route, which inherits what it
//! does not write.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderValue;
use toml::de::DeValue;

use super::checker::{Checker, Table};
use crate::config::{ErrorPage, ErrorPages};

/// A page larger than this is refused: every page is held in memory.
const MAX_PAGE: u64 = 1024 * 1024;

const EXAMPLE: &str = "error_pages = { 502 = \"/srv/errors/502.html\" }";

impl Checker<'_> {
    /// `error_pages` and `intercept_errors` of `table`, over `inherited`.
    pub(super) fn error_pages(
        &mut self,
        table: &Table<'_, '_>,
        inherited: &Arc<ErrorPages>,
    ) -> Arc<ErrorPages> {
        let intercept_written = table.get("intercept_errors").is_some();
        if table.get("error_pages").is_none() && !intercept_written {
            return inherited.clone();
        }
        let intercept = self.boolean(table, "intercept_errors", inherited.intercept);
        let pages = match table.get("error_pages") {
            None => inherited.pages.clone(),
            Some(value) => match value.get_ref() {
                DeValue::Table(entries) => {
                    let mut pages = Vec::new();
                    for (status, file) in entries.iter() {
                        let pages_table = Table {
                            entries,
                            path: table.key_path("error_pages"),
                            header: "error_pages",
                            span: value.span(),
                        };
                        let text: &str = status.get_ref();
                        let path = pages_table.key_path(text);
                        let code = match text.parse::<u16>() {
                            Ok(code @ 400..=599) => code,
                            _ => {
                                self.error(
                                    &status.span(),
                                    path,
                                    format!("`{text}` is not an error status"),
                                    "error pages are for the statuses 400 to 599, for example: 502 = \"/srv/errors/502.html\"",
                                );
                                continue;
                            }
                        };
                        if !matches!(file.get_ref(), DeValue::String(_)) {
                            self.type_error(
                                file,
                                path,
                                "the path of a page",
                                format!("for example: {EXAMPLE}"),
                            );
                            continue;
                        }
                        let example = format!("\"/srv/errors/{code}.html\"");
                        let Some((file_path, span)) = self.file_path(&pages_table, text, &example, &example)
                        else {
                            continue;
                        };
                        if let Some(page) = self.read_page(&file_path, &span, path) {
                            pages.push((code, page));
                        }
                    }
                    pages
                }
                _ => {
                    self.type_error(
                        value,
                        table.key_path("error_pages"),
                        "a table of statuses and files",
                        format!("for example: {EXAMPLE}"),
                    );
                    inherited.pages.clone()
                }
            },
        };
        Arc::new(ErrorPages { pages, intercept })
    }

    /// The page at `file`, with its Content-Type; `None` (and an error)
    /// when it cannot be served.
    fn read_page(&mut self, file: &Path, span: &std::ops::Range<usize>, key: String) -> Option<ErrorPage> {
        let Some(content_type) = content_type(file) else {
            self.error(
                span,
                key,
                format!(
                    "`{}` has no extension a Content-Type can be told from",
                    file.display()
                ),
                "name the page .html (or .htm), .txt, .json or .xml",
            );
            return None;
        };
        let read = std::fs::metadata(file).and_then(|meta| {
            if meta.is_dir() {
                return Err(std::io::Error::other("it is a directory"));
            }
            if meta.len() > MAX_PAGE {
                return Err(std::io::Error::other(format!(
                    "it holds {} bytes, more than the 1 MiB a page may",
                    meta.len()
                )));
            }
            std::fs::read(file)
        });
        match read {
            Ok(bytes) => Some(ErrorPage {
                body: Bytes::from(bytes),
                content_type: HeaderValue::from_static(content_type),
            }),
            Err(error) => {
                let reason = match error.kind() {
                    std::io::ErrorKind::NotFound => "no such file".to_string(),
                    std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
                    _ => error.to_string(),
                };
                self.error(
                    span,
                    key,
                    format!("the page `{}` cannot be read: {reason}", file.display()),
                    "write the path of a readable file of at most 1 MiB (a relative path is read from the configuration file's directory)",
                );
                None
            }
        }
    }
}

/// The Content-Type of a page, from its file's extension.
fn content_type(file: &Path) -> Option<&'static str> {
    let extension = file.extension()?.to_str()?.to_ascii_lowercase();
    Some(match extension.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        "json" => "application/json",
        "xml" => "application/xml",
        _ => return None,
    })
}
