//! ACME http-01 challenge files served from the webroot.
//!
//! certbot (`certonly --webroot -w <webroot>`) and other ACME clients write
//! the key authorization for a token to
//! `<webroot>/.well-known/acme-challenge/<token>`, and the CA fetches
//! `http://<name>/.well-known/acme-challenge/<token>` over plain HTTP.
//! This module answers that fetch and nothing else: it is reachable by
//! anyone on port 80, so it serves small regular files only, by a token
//! made of the characters tokens are made of (RFC 8555 section 8.3:
//! base64url), and never a directory listing, another path, or a file
//! reached through a symbolic link.
//!
//! Symbolic links: a token file that is a symlink is refused even when it
//! points inside the webroot. ACME clients write regular files, so nothing
//! is lost, and the rule needs no reasoning about where a link leads. The
//! webroot itself, and `.well-known` or `acme-challenge`, may be symlinks
//! as long as the challenge file's real location is inside the real
//! webroot.

use std::io::ErrorKind;
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::proxy::body::ProxyBody;
use crate::proxy::respond;
use crate::serve::confine::{self, Found};

/// The path prefix of challenge requests.
const PREFIX: &str = "/.well-known/acme-challenge/";

/// Challenge files are about 90 bytes; anything much larger is not one.
const MAX_SIZE: u64 = 64 * 1024;

static TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain");
static ALLOW: HeaderValue = HeaderValue::from_static("GET, HEAD");

/// The answer for a request under `/.well-known/acme-challenge/`, or `None`
/// when the request is for something else.
pub async fn challenge(webroot: &Path, req: &Request<Incoming>) -> Option<Response<ProxyBody>> {
    let path = req.uri().path();
    let rest = match path.strip_prefix(PREFIX) {
        Some(rest) => rest,
        // The directory itself: there is no listing.
        None if path == PREFIX.trim_end_matches('/') => "",
        None => return None,
    };
    let client = client(req);
    if !is_token(rest) {
        tracing::debug!(path, %client, "ACME challenge refused: not a token");
        return Some(not_found());
    }
    let token = rest;
    if req.method() != Method::GET && req.method() != Method::HEAD {
        tracing::debug!(token, %client, method = %req.method(), "ACME challenge refused: method");
        let mut response = respond::local(
            StatusCode::METHOD_NOT_ALLOWED,
            "405 challenges are fetched with GET\n",
            None,
        );
        response.headers_mut().insert(header::ALLOW, ALLOW.clone());
        return Some(response);
    }
    match read(webroot, token).await {
        Ok(content) => {
            tracing::info!(token, %client, "ACME challenge served");
            Some(serve(content, req.method() == Method::HEAD))
        }
        Err(reason) => {
            tracing::debug!(token, %client, webroot = %webroot.display(), reason, "ACME challenge refused");
            Some(not_found())
        }
    }
}

/// A token as ACME defines it: base64url characters, at least one.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The client's address for the log, when the connection recorded it.
fn client(req: &Request<Incoming>) -> String {
    req.extensions().get::<SocketAddr>().map_or_else(
        || "unknown".to_string(),
        |peer| peer.ip().to_canonical().to_string(),
    )
}

/// The content of the challenge file for `token`, or why it is not served.
async fn read(webroot: &Path, token: &str) -> Result<Bytes, &'static str> {
    let (webroot, token) = (webroot.to_path_buf(), token.to_owned());
    tokio::task::spawn_blocking(move || read_blocking(&webroot, &token))
        .await
        .unwrap_or(Err("the challenge file cannot be read"))
}

/// `read`'s file-system work, in one hop to the blocking pool. The lookup
/// and the open are `serve::confine`'s, shared with static routes; a
/// challenge is stricter in refusing a token file that is a link at all.
fn read_blocking(webroot: &Path, token: &str) -> Result<Bytes, &'static str> {
    let root = confine::resolve_root(webroot).map_err(|_| "the webroot does not exist or cannot be read")?;
    let relative: PathBuf = [".well-known", "acme-challenge", token].iter().collect();
    let meta = std::fs::symlink_metadata(root.join(&relative)).map_err(|e| match e.kind() {
        ErrorKind::NotFound => "no such challenge file",
        _ => "the challenge file cannot be read",
    })?;
    if meta.file_type().is_symlink() {
        return Err("the challenge file is a symbolic link");
    }
    // `.well-known` or `acme-challenge` may be links; the file they lead to
    // must still be inside the webroot.
    let real = match confine::locate(&root, &root.join(&relative))? {
        Found::File(real) => real,
        Found::Dir(_) => return Err("the challenge path is not a regular file"),
    };
    let (opened, meta) = confine::open_regular(&real)?;
    if meta.len() > MAX_SIZE {
        return Err("the challenge file is larger than 64 KiB");
    }
    // Read at most one byte past the limit, in case the file grew.
    let mut content = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    opened
        .take(MAX_SIZE + 1)
        .read_to_end(&mut content)
        .map_err(|_| "the challenge file cannot be read")?;
    if content.len() as u64 > MAX_SIZE {
        return Err("the challenge file is larger than 64 KiB");
    }
    Ok(Bytes::from(content))
}

/// 200 with the file's content; headers only for HEAD.
fn serve(content: Bytes, head: bool) -> Response<ProxyBody> {
    let length = HeaderValue::from(content.len());
    let body = if head { Bytes::new() } else { content };
    let mut response = Response::new(ProxyBody::local(body, None));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, TEXT_PLAIN.clone());
    headers.insert(header::CONTENT_LENGTH, length);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn not_found() -> Response<ProxyBody> {
    respond::local(StatusCode::NOT_FOUND, "404 no such challenge\n", None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(is_token("LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"));
        assert!(is_token("a-b_c"));
        assert!(!is_token(""));
        assert!(!is_token(".."));
        assert!(!is_token("%2e%2e"));
        assert!(!is_token("a/b"));
        assert!(!is_token("a.b"));
        assert!(!is_token("é"));
    }
}
