//! `error_pages` and `intercept_errors`, in `[server]` and in a route: the
//! pages the proxy answers error statuses with, read at load (and at every
//! reload, which loads the configuration again). Checked by
//! `parse/error_pages.rs`, applied by `serve::error_pages`.

use bytes::Bytes;
use http::HeaderValue;

/// One page: its bytes and the Content-Type its file's extension names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorPage {
    pub body: Bytes,
    pub content_type: HeaderValue,
}

/// The error pages in force where they were written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorPages {
    /// `error_pages`: status (400 to 599) and its page, in file order. A
    /// route's own list replaces `[server]`'s, as a `location`'s
    /// `error_page` does nginx's `server` ones.
    pub pages: Vec<(u16, ErrorPage)>,
    /// `intercept_errors`: an upstream's answer with a status that has a
    /// page is replaced by the page too (its status kept). Default false.
    pub intercept: bool,
}

impl ErrorPages {
    /// The page for `status`, if one is configured.
    pub fn get(&self, status: u16) -> Option<&ErrorPage> {
        self.pages
            .iter()
            .find(|(s, _)| *s == status)
            .map(|(_, page)| page)
    }
}
