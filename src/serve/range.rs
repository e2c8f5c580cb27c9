//! One `Range: bytes=...` of a file of known length (RFC 9110 section
//! 14.2): a single range is served as 206, one that starts past the end as
//! 416, and anything else (several ranges, as nginx's `max_ranges 1`, or a
//! header that does not parse) as the whole file, as RFC 9110 allows.

/// What a Range header asks of a file of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ranged {
    /// No usable range: the whole file, 200.
    Whole,
    /// Bytes `start..=end`, 206.
    Part { start: u64, end: u64 },
    /// A range that starts at or past the end, 416.
    Unsatisfiable,
}

/// What `header` asks of a file of `len` bytes.
pub(crate) fn parse(header: &[u8], len: u64) -> Ranged {
    let Some(spec) = std::str::from_utf8(header)
        .ok()
        .and_then(|text| text.trim().strip_prefix("bytes="))
    else {
        return Ranged::Whole;
    };
    if spec.contains(',') {
        return Ranged::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ranged::Whole;
    };
    let number = |text: &str| -> Option<u64> {
        let text = text.trim();
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Digits past u64 are a length no file has: as far as it goes.
        Some(text.parse::<u64>().unwrap_or(u64::MAX))
    };
    match (first.trim().is_empty(), number(first), number(last)) {
        // `-N`: the last N bytes.
        (true, _, Some(0)) => Ranged::Unsatisfiable,
        (true, _, Some(_)) if len == 0 => Ranged::Unsatisfiable,
        (true, _, Some(n)) => Ranged::Part {
            start: len.saturating_sub(n),
            end: len - 1,
        },
        (false, Some(start), None) if last.trim().is_empty() => part(start, u64::MAX, len),
        (false, Some(start), Some(end)) if end >= start => part(start, end, len),
        _ => Ranged::Whole,
    }
}

/// `start..=end` of a file of `len` bytes, the end cut at the file's.
fn part(start: u64, end: u64, len: u64) -> Ranged {
    if start >= len {
        return Ranged::Unsatisfiable;
    }
    Ranged::Part {
        start,
        end: end.min(len - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let p = |h: &str| parse(h.as_bytes(), 1000);
        assert_eq!(p("bytes=0-99"), Ranged::Part { start: 0, end: 99 });
        assert_eq!(p("bytes=100-"), Ranged::Part { start: 100, end: 999 });
        assert_eq!(p("bytes=-100"), Ranged::Part { start: 900, end: 999 });
        assert_eq!(p("bytes=-5000"), Ranged::Part { start: 0, end: 999 });
        assert_eq!(p("bytes=990-5000"), Ranged::Part { start: 990, end: 999 });
        assert_eq!(p("bytes=1000-"), Ranged::Unsatisfiable);
        assert_eq!(p("bytes=-0"), Ranged::Unsatisfiable);
        assert_eq!(p("bytes=0-1,5-6"), Ranged::Whole);
        assert_eq!(p("bytes=5-1"), Ranged::Whole);
        assert_eq!(p("items=0-1"), Ranged::Whole);
        assert_eq!(p("bytes=a-b"), Ranged::Whole);
        assert_eq!(p("bytes=-"), Ranged::Whole);
        assert_eq!(p("bytes=+1-2"), Ranged::Whole);
        assert_eq!(p("bytes=99999999999999999999999-"), Ranged::Unsatisfiable);
        assert_eq!(parse(b"bytes=-10", 0), Ranged::Unsatisfiable);
        assert_eq!(parse(b"bytes=\xff", 10), Ranged::Whole);
    }
}
