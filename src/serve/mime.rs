//! A file's `Content-Type` by its extension: nginx's own `mime.types` (the
//! table an operator moving from nginx had), brought up to date where the
//! registrations changed (`text/javascript`, RFC 9239) and with the types
//! of today's web builds (`mjs`, `map`, `webmanifest`, `avif`, `woff2`,
//! `wasm`). Anything else is `application/octet-stream`, as nginx's
//! `default_type`.
//!
//! A table here rather than a crate's: the largest one weighs about a
//! hundred kilobytes of the image, for types no web server is asked for.

use std::path::Path;

/// What a file without a known extension is served as.
pub(crate) const DEFAULT: &str = "application/octet-stream";

/// (extension in lower case, type), sorted by extension for the search.
const TYPES: &[(&str, &str)] = &[
    ("3gp", "video/3gpp"),
    ("3gpp", "video/3gpp"),
    ("7z", "application/x-7z-compressed"),
    ("atom", "application/atom+xml"),
    ("avi", "video/x-msvideo"),
    ("avif", "image/avif"),
    ("bmp", "image/bmp"),
    ("css", "text/css"),
    ("csv", "text/csv"),
    ("doc", "application/msword"),
    (
        "docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    ("eot", "application/vnd.ms-fontobject"),
    ("epub", "application/epub+zip"),
    ("flac", "audio/flac"),
    ("gif", "image/gif"),
    ("htm", "text/html"),
    ("html", "text/html"),
    ("ico", "image/x-icon"),
    ("ics", "text/calendar"),
    ("jar", "application/java-archive"),
    ("jpeg", "image/jpeg"),
    ("jpg", "image/jpeg"),
    ("js", "text/javascript"),
    ("json", "application/json"),
    ("jsonld", "application/ld+json"),
    ("kml", "application/vnd.google-earth.kml+xml"),
    ("m3u8", "application/vnd.apple.mpegurl"),
    ("m4a", "audio/x-m4a"),
    ("m4v", "video/x-m4v"),
    ("map", "application/json"),
    ("md", "text/markdown"),
    ("mid", "audio/midi"),
    ("midi", "audio/midi"),
    ("mjs", "text/javascript"),
    ("mov", "video/quicktime"),
    ("mp3", "audio/mpeg"),
    ("mp4", "video/mp4"),
    ("mpeg", "video/mpeg"),
    ("mpg", "video/mpeg"),
    ("odp", "application/vnd.oasis.opendocument.presentation"),
    ("ods", "application/vnd.oasis.opendocument.spreadsheet"),
    ("odt", "application/vnd.oasis.opendocument.text"),
    ("oga", "audio/ogg"),
    ("ogg", "audio/ogg"),
    ("ogv", "video/ogg"),
    ("opus", "audio/ogg"),
    ("otf", "font/otf"),
    ("pdf", "application/pdf"),
    ("png", "image/png"),
    ("ppt", "application/vnd.ms-powerpoint"),
    (
        "pptx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ),
    ("ps", "application/postscript"),
    ("rar", "application/x-rar-compressed"),
    ("rss", "application/rss+xml"),
    ("rtf", "application/rtf"),
    ("svg", "image/svg+xml"),
    ("svgz", "image/svg+xml"),
    ("tar", "application/x-tar"),
    ("tif", "image/tiff"),
    ("tiff", "image/tiff"),
    ("ts", "video/mp2t"),
    ("ttf", "font/ttf"),
    ("txt", "text/plain"),
    ("vtt", "text/vtt"),
    ("wasm", "application/wasm"),
    ("wav", "audio/wav"),
    ("webm", "video/webm"),
    ("webmanifest", "application/manifest+json"),
    ("webp", "image/webp"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("xhtml", "application/xhtml+xml"),
    ("xls", "application/vnd.ms-excel"),
    (
        "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    ("xml", "text/xml"),
    ("zip", "application/zip"),
];

/// The type of the file at `path`, by its extension (any case).
pub(crate) fn of(path: &Path) -> &'static str {
    let Some(ext) = path.extension().and_then(|e| e.to_str()) else {
        return DEFAULT;
    };
    // The longest extension in the table is 11 bytes; a longer one is not there.
    if ext.len() > 11 {
        return DEFAULT;
    }
    let lower = ext.to_ascii_lowercase();
    TYPES
        .binary_search_by(|(known, _)| (*known).cmp(lower.as_str()))
        .map_or(DEFAULT, |at| TYPES[at].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_for_the_search() {
        assert!(TYPES.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(TYPES
            .iter()
            .all(|(e, _)| e.len() <= 11 && *e == e.to_ascii_lowercase()));
    }

    #[test]
    fn types_by_extension() {
        assert_eq!(of(Path::new("/a/app.JS")), "text/javascript");
        assert_eq!(of(Path::new("index.html")), "text/html");
        assert_eq!(of(Path::new("x.tar.gz")), DEFAULT);
        assert_eq!(of(Path::new("README")), DEFAULT);
        assert_eq!(of(Path::new("site.webmanifest")), "application/manifest+json");
        assert_eq!(of(Path::new("3gp.zip")), "application/zip");
    }
}
