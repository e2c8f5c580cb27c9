//! The response for one file: the precompressed variant the client
//! accepts, its validators, a 304, a single range (206, or 416), or the
//! whole file (200); headers only for HEAD. Files up to one chunk are read
//! here whole, so head and body leave in one write; larger ones stream.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::Path;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode};

use super::body::{FileBody, CHUNK};
use super::conditional::Validators;
use super::confine::{self, Refused};
use super::files::Base;
use super::range::{self, Ranged};
use super::{encoding, mime, Asked};
use crate::config::Precompressed;

static BYTES: HeaderValue = HeaderValue::from_static("bytes");
static ACCEPT_ENCODING: HeaderValue = HeaderValue::from_static("accept-encoding");
static TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");

/// A response made from a file, before it becomes hyper's.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: ReplyBody,
}

#[derive(Debug)]
pub(crate) enum ReplyBody {
    Empty,
    Whole(Bytes),
    File(Box<FileBody>),
}

/// The reply for the file at `found` (a resolved path inside `base`).
pub(crate) fn file(
    base: &Base<'_>,
    found: &Path,
    asked: &Asked,
    precompressed: &[Precompressed],
) -> Result<Reply, Refused> {
    let variant = precompressed
        .iter()
        .filter(|e| encoding::accepts(asked.accept_encoding.as_ref(), e.token()))
        .find_map(|e| base.beside(found, e.suffix()).map(|p| (p, *e)));
    let (mut file, meta) = match &variant {
        Some((path, _)) => confine::open_regular(path)?,
        None => confine::open_regular(found)?,
    };
    let validators = Validators::of(&meta);
    let len = meta.len();

    let mut headers = HeaderMap::with_capacity(8);
    // The type is the original file's, whatever its encoding.
    let mime = HeaderValue::from_static(mime::of(found));
    if let Ok(etag) = HeaderValue::from_str(&validators.etag) {
        headers.insert(header::ETAG, etag);
    }
    if let Some(date) = validators
        .last_modified()
        .and_then(|d| HeaderValue::from_str(&d).ok())
    {
        headers.insert(header::LAST_MODIFIED, date);
    }
    if !precompressed.is_empty() {
        headers.insert(header::VARY, ACCEPT_ENCODING.clone());
    }
    if validators.not_modified(asked.if_none_match.as_ref(), asked.if_modified_since.as_ref()) {
        return Ok(Reply {
            status: StatusCode::NOT_MODIFIED,
            headers,
            body: ReplyBody::Empty,
        });
    }
    if let Some((_, encoding)) = &variant {
        headers.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(encoding.token()),
        );
    }
    headers.insert(header::CONTENT_TYPE, mime);
    headers.insert(header::ACCEPT_RANGES, BYTES.clone());

    let ranged = match &asked.range {
        Some(range) if validators.range_allowed(asked.if_range.as_ref()) => {
            range::parse(range.as_bytes(), len)
        }
        _ => Ranged::Whole,
    };
    let (status, start, count) = match ranged {
        Ranged::Whole => (StatusCode::OK, 0, len),
        Ranged::Part { start, end } => {
            let content_range = format!("bytes {start}-{end}/{len}");
            if let Ok(value) = HeaderValue::from_str(&content_range) {
                headers.insert(header::CONTENT_RANGE, value);
            }
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        Ranged::Unsatisfiable => return Ok(unsatisfiable(len)),
    };
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    if asked.head || count == 0 {
        return Ok(Reply {
            status,
            headers,
            body: ReplyBody::Empty,
        });
    }
    if start > 0 {
        file.seek(SeekFrom::Start(start))
            .map_err(|_| "the file cannot be read")?;
    }
    let body = if count <= CHUNK as u64 {
        let mut whole = Vec::with_capacity(CHUNK.min(usize::try_from(count).unwrap_or(CHUNK)));
        file.take(count)
            .read_to_end(&mut whole)
            .map_err(|_| "the file cannot be read")?;
        if whole.len() as u64 != count {
            return Err("the file became shorter while it was read");
        }
        ReplyBody::Whole(Bytes::from(whole))
    } else {
        ReplyBody::File(Box::new(FileBody::new(file, count)))
    };
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// 416, naming the file's length as RFC 9110 asks.
fn unsatisfiable(len: u64) -> Reply {
    let mut headers = HeaderMap::with_capacity(2);
    if let Ok(value) = HeaderValue::from_str(&format!("bytes */{len}")) {
        headers.insert(header::CONTENT_RANGE, value);
    }
    headers.insert(header::CONTENT_TYPE, TEXT_PLAIN.clone());
    Reply {
        status: StatusCode::RANGE_NOT_SATISFIABLE,
        headers,
        body: ReplyBody::Whole(Bytes::from_static(b"416 range not satisfiable\n")),
    }
}
