//! What the proxy answers or changes by itself: a route's static files
//! (`root`, `alias`, `try_files`, `index`, `precompressed`), compression
//! (`compress/`, a body wrapper around every response) and error pages
//! (`error_pages`). For the files, small rooms, one purpose each, none
//! knowing TOML: `files` finds the file a path names, `confine` keeps
//! every lookup inside the root (the ACME webroot uses it too), `reply`
//! makes the response with `conditional`
//! (ETag, 304, If-Range), `range` (206, 416), `encoding`
//! (Accept-Encoding) and `mime` (Content-Type), and `body` streams a large
//! file in bounded chunks.
//!
//! The file-system work runs in the connection's task, as nginx runs it
//! in its event loop (see `body.rs` for why and what it asks of the disk);
//! a file of up to 64 KiB is read whole before the head goes out.

pub(crate) mod body;
pub(crate) mod compress;
mod conditional;
pub(crate) mod confine;
mod encoding;
pub(crate) mod error_pages;
mod files;
mod mime;
mod range;
mod reply;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};

use crate::config::{Fallback, StaticFiles};
use crate::proxy::access::AccessRecord;
use crate::proxy::body::ProxyBody;
use files::{Base, Lookup};
use reply::{Reply, ReplyBody};

static ALLOW: HeaderValue = HeaderValue::from_static("GET, HEAD");
static TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");

/// The normalised path a static route looks up, kept in the request's
/// extensions before its head is rewritten for a fallback upstream.
#[derive(Debug, Clone)]
pub(crate) struct FilePath(pub(crate) String);

/// What a static route does with a request.
pub(crate) enum Answer {
    /// Answered from the files (or by their absence).
    Done(Response<ProxyBody>),
    /// Forwarded to the `try_files` pool; the access record goes with it.
    Forward(Option<Box<AccessRecord>>),
}

/// What of the request the answer depends on.
#[derive(Debug)]
pub(crate) struct Asked {
    head: bool,
    path: String,
    if_none_match: Option<HeaderValue>,
    if_modified_since: Option<HeaderValue>,
    range: Option<HeaderValue>,
    if_range: Option<HeaderValue>,
    accept_encoding: Option<HeaderValue>,
}

impl Asked {
    fn of<B>(req: &Request<B>) -> Self {
        let h = req.headers();
        let get = |name: header::HeaderName| h.get(name).cloned();
        Asked {
            head: req.method() == Method::HEAD,
            path: req
                .extensions()
                .get::<FilePath>()
                .map_or_else(|| req.uri().path().to_owned(), |p| p.0.clone()),
            if_none_match: get(header::IF_NONE_MATCH),
            if_modified_since: get(header::IF_MODIFIED_SINCE),
            range: get(header::RANGE),
            if_range: get(header::IF_RANGE),
            accept_encoding: get(header::ACCEPT_ENCODING),
        }
    }
}

/// What the file system said, before it becomes a response.
enum Outcome {
    Reply(Reply),
    /// Nothing to serve: the fallback answers.
    Missing,
    /// A directory without an index: 403.
    Forbidden,
    /// A directory asked without its `/`: 301.
    AddSlash,
}

/// The answer of the route serving `files` to `req`.
pub(crate) fn answer<B>(files: &StaticFiles, req: &Request<B>, log: Option<Box<AccessRecord>>) -> Answer {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        // Files are only read; other methods are the application's.
        if let Fallback::Pool(_) = files.fallback {
            return Answer::Forward(log);
        }
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "405 method not allowed\n", log);
        response.headers_mut().insert(header::ALLOW, ALLOW.clone());
        return Answer::Done(response);
    }
    let asked = Asked::of(req);
    let outcome = decide(files, &asked);
    Answer::Done(match outcome {
        Outcome::Reply(reply) => respond(reply, log),
        Outcome::Missing => match &files.fallback {
            Fallback::Pool(_) => return Answer::Forward(log),
            Fallback::NotFound => text(StatusCode::NOT_FOUND, "404 not found\n", log),
            Fallback::Status(status) => {
                let words = format!(
                    "{} {}\n",
                    status.as_u16(),
                    status.canonical_reason().unwrap_or("")
                );
                text(*status, words, log)
            }
        },
        Outcome::Forbidden => text(StatusCode::FORBIDDEN, "403 forbidden\n", log),
        Outcome::AddSlash => {
            let path = req
                .extensions()
                .get::<FilePath>()
                .map_or(req.uri().path(), |p| p.0.as_str());
            match crate::proxy::action::add_slash(path, req.uri().query()) {
                Ok(local) => local.response(log.map(without_upstream)),
                Err(_) => text(StatusCode::BAD_REQUEST, "400 bad request\n", log),
            }
        }
    })
}

/// The file-system half of `answer`.
fn decide(files: &StaticFiles, asked: &Asked) -> Outcome {
    let base = match Base::resolve(files) {
        Ok(base) => base,
        Err(reason) => {
            tracing::warn!(root = %files.dir.path().display(), reason, "static files cannot be served");
            return Outcome::Missing;
        }
    };
    match base.lookup(&asked.path) {
        Lookup::File(found) => match reply::file(&base, &found, asked, &files.precompressed) {
            Ok(reply) => Outcome::Reply(reply),
            Err(reason) => {
                tracing::debug!(path = %asked.path, reason, "static file not served");
                Outcome::Missing
            }
        },
        Lookup::Missing => Outcome::Missing,
        Lookup::Forbidden => Outcome::Forbidden,
        Lookup::AddSlash => Outcome::AddSlash,
    }
}

/// A file's reply as hyper's response, the access record with it.
fn respond(reply: Reply, log: Option<Box<AccessRecord>>) -> Response<ProxyBody> {
    let log = log.map(|mut l| {
        l.status = reply.status.as_u16();
        without_upstream(l)
    });
    let body = match reply.body {
        ReplyBody::Empty => ProxyBody::local(Bytes::new(), log),
        ReplyBody::Whole(bytes) => ProxyBody::local(bytes, log),
        ReplyBody::File(file) => ProxyBody::file(file, log),
    };
    let mut response = Response::new(body);
    *response.status_mut() = reply.status;
    *response.headers_mut() = reply.headers;
    response
}

/// A short text answer of the route.
fn text(status: StatusCode, words: impl Into<Bytes>, log: Option<Box<AccessRecord>>) -> Response<ProxyBody> {
    let log = log.map(|mut l| {
        l.status = status.as_u16();
        without_upstream(l)
    });
    let mut response = Response::new(ProxyBody::local(words, log));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, TEXT_PLAIN.clone());
    response
}

/// The record of a request no upstream saw.
fn without_upstream(mut log: Box<AccessRecord>) -> Box<AccessRecord> {
    log.upstream = None;
    log
}
