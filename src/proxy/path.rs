//! The request path as routing sees it: percent-encoded unreserved
//! characters decoded, dot-segments removed (RFC 3986 section 5.2.4) and
//! repeated slashes merged, so that `/x/../admin` and `/x/%2e%2e/admin`
//! are routed, and forwarded, as the `/admin` an application would make of
//! them.
//!
//! Encoded bytes that are not unreserved (`%2F`, `%5C`, `%00`, `%3F`...)
//! stay encoded: they never split a segment or end the path. A path that
//! climbs above the root, or holds a `%` that is not followed by two hex
//! digits, is refused, as nginx refuses both.

use std::borrow::Cow;

/// Why a path cannot be normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadPath {
    /// A `..` segment would leave the root.
    Climbs,
    /// A `%` not followed by two hex digits.
    BadEscape,
}

/// The normalised form of `path` (an origin-form path without its query,
/// starting with `/`). Borrowed when the path was normal already, which is
/// what nearly every request sends.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, BadPath> {
    if is_plain(path.as_bytes()) {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode_unreserved(path.as_bytes())?;
    let mut out = String::with_capacity(decoded.len());
    // Segment starts in `out`, so that `..` can pop back to its parent.
    let mut starts: Vec<usize> = Vec::new();
    let segments = decoded.split('/').skip(1);
    let mut last_was_directory = false;
    for segment in segments {
        match segment {
            // An empty segment is a repeated slash (merged) or the last
            // one after a trailing slash, which is kept below.
            "" | "." => last_was_directory = true,
            ".." => {
                let start = starts.pop().ok_or(BadPath::Climbs)?;
                out.truncate(start);
                last_was_directory = true;
            }
            name => {
                starts.push(out.len());
                out.push('/');
                out.push_str(name);
                last_was_directory = false;
            }
        }
    }
    if last_was_directory || out.is_empty() {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

/// True when `path` has nothing to normalise: no `%`, no `//`, and no
/// segment that is `.` or `..`. One pass over the bytes, no allocation.
fn is_plain(path: &[u8]) -> bool {
    let mut previous_slash = false;
    for (i, &b) in path.iter().enumerate() {
        match b {
            b'%' => return false,
            b'/' if previous_slash => return false,
            b'.' if previous_slash => {
                // `/.` starts a dot-segment when the segment is `.` or `..`.
                let rest = &path[i..];
                let dots = rest.iter().take_while(|&&c| c == b'.').count();
                if dots <= 2 && rest.get(dots).is_none_or(|&c| c == b'/') {
                    return false;
                }
            }
            _ => {}
        }
        previous_slash = b == b'/';
    }
    true
}

/// `path` with every percent-encoded unreserved character (ALPHA, DIGIT,
/// `-`, `.`, `_`, `~`) decoded; other encodings are kept as they were sent.
fn decode_unreserved(path: &[u8]) -> Result<String, BadPath> {
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        let b = path[i];
        if b != b'%' {
            out.push(b);
            i += 1;
            continue;
        }
        let (Some(hi), Some(lo)) = (
            path.get(i + 1).copied().and_then(hex),
            path.get(i + 2).copied().and_then(hex),
        ) else {
            return Err(BadPath::BadEscape);
        };
        let decoded = hi << 4 | lo;
        if is_unreserved(decoded) {
            out.push(decoded);
        } else {
            out.extend_from_slice(&path[i..i + 3]);
        }
        i += 3;
    }
    // Only ASCII was added to what was a `&str`, so this cannot fail; an
    // error would still be a refusal rather than a panic.
    String::from_utf8(out).map_err(|_| BadPath::BadEscape)
}

fn hex(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(path: &str) -> Result<String, BadPath> {
        normalize(path).map(Cow::into_owned)
    }

    #[test]
    fn plain_paths_are_borrowed() {
        for path in [
            "/",
            "/a",
            "/a/b/",
            "/a.b/c..d/.well-known",
            "/ws/..x",
            "/a/b.",
            "/...",
        ] {
            assert!(matches!(normalize(path), Ok(Cow::Borrowed(_))), "{path}");
        }
    }

    /// RFC 3986 section 5.4's examples, as the paths a client would send
    /// after its own resolution, rooted at `/b/c/`.
    #[test]
    fn rfc_3986_dot_segment_examples() {
        let table = [
            ("/b/c/./g", "/b/c/g"),
            ("/b/c/g/", "/b/c/g/"),
            ("/b/c/.", "/b/c/"),
            ("/b/c/./", "/b/c/"),
            ("/b/c/..", "/b/"),
            ("/b/c/../", "/b/"),
            ("/b/c/../g", "/b/g"),
            ("/b/c/../..", "/"),
            ("/b/c/../../", "/"),
            ("/b/c/../../g", "/g"),
            ("/b/c/g.", "/b/c/g."),
            ("/b/c/.g", "/b/c/.g"),
            ("/b/c/g..", "/b/c/g.."),
            ("/b/c/..g", "/b/c/..g"),
            ("/b/c/./../g", "/b/g"),
            ("/b/c/./g/.", "/b/c/g/"),
            ("/b/c/g/./h", "/b/c/g/h"),
            ("/b/c/g/../h", "/b/c/h"),
            ("/a/b/c/./../../g", "/a/g"),
            ("/mid/content=5/../6", "/mid/6"),
        ];
        for (input, want) in table {
            assert_eq!(n(input), Ok(want.to_string()), "{input}");
        }
        // Above the root: RFC 3986 would clamp these; a proxy refuses them.
        for climbing in [
            "/b/c/../../../g",
            "/b/c/../../../../g",
            "/..",
            "/../a",
            "/a/../../b",
        ] {
            assert_eq!(n(climbing), Err(BadPath::Climbs), "{climbing}");
        }
    }

    #[test]
    fn unreserved_escapes_are_decoded_and_others_kept() {
        assert_eq!(n("/x/%2e%2e/admin"), Ok("/admin".to_string()));
        assert_eq!(n("/x/%2E%2E/admin"), Ok("/admin".to_string()));
        assert_eq!(n("/x/.%2e/admin"), Ok("/admin".to_string()));
        assert_eq!(n("/%41dmin"), Ok("/Admin".to_string()));
        assert_eq!(n("/a%7Eb%5f"), Ok("/a~b_".to_string()));
        assert_eq!(n("/a/..%2Fadmin"), Ok("/a/..%2Fadmin".to_string()));
        assert_eq!(n("/a/%2e%2e%2Fadmin"), Ok("/a/..%2Fadmin".to_string()));
        assert_eq!(n("/a%5c..%5cb"), Ok("/a%5c..%5cb".to_string()));
        assert_eq!(n("/a%00b"), Ok("/a%00b".to_string()));
        assert_eq!(n("/a%3Fb"), Ok("/a%3Fb".to_string()));
        assert_eq!(n("/a%2"), Err(BadPath::BadEscape));
        assert_eq!(n("/a%zz"), Err(BadPath::BadEscape));
        assert_eq!(n("/a%"), Err(BadPath::BadEscape));
    }

    #[test]
    fn slashes_are_merged() {
        assert_eq!(n("//"), Ok("/".to_string()));
        assert_eq!(n("//admin//echo"), Ok("/admin/echo".to_string()));
        assert_eq!(n("/a///b//"), Ok("/a/b/".to_string()));
        assert_eq!(n("/x/./../admin"), Ok("/admin".to_string()));
        assert_eq!(n("/x/../admin/echo"), Ok("/admin/echo".to_string()));
    }

    proptest::proptest! {
        /// Whatever a client sends, a normalised path holds no `.` or `..`
        /// segment and no `//`, and normalising it again changes nothing.
        #[test]
        fn normalised_paths_are_normal_and_stay_so(
            pieces in proptest::collection::vec(
                proptest::sample::select(&["/", ".", "..", "a", "b", "%2e", "%2E", "%2F", "%5c", "%41", "%", "%2", "~", "-"][..]),
                0..24,
            )
        ) {
            let path = format!("/{}", pieces.concat());
            if let Ok(normal) = normalize(&path) {
                proptest::prop_assert!(normal.starts_with('/'), "{normal}");
                proptest::prop_assert!(!normal.contains("//"), "{normal}");
                proptest::prop_assert!(
                    normal.split('/').all(|segment| segment != "." && segment != ".."),
                    "{normal}"
                );
                proptest::prop_assert_eq!(normalize(&normal), Ok(normal.clone()));
            }
        }
    }
}
