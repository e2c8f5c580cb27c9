//! Whether a client's `Accept-Encoding` takes an encoding (RFC 9110
//! section 12.5.3): named with a q-value above zero, or covered by `*`
//! when not named. `q=0` refuses, whatever `*` says.

use http::HeaderValue;

/// Whether `accept_encoding` lets a response be encoded as `token`.
pub(crate) fn accepts(accept_encoding: Option<&HeaderValue>, token: &str) -> bool {
    let Some(text) = accept_encoding.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mut star = None;
    for item in text.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .or_else(|| p.trim().strip_prefix("Q="))
            })
            .map(weight)
            .next()
            .unwrap_or(Some(1000));
        // A q-value that does not parse is taken as a refusal: a liar's
        // header can only cost it the compressed file.
        let accepted = q.is_some_and(|q| q > 0);
        if name.eq_ignore_ascii_case(token) {
            return accepted;
        }
        if name == "*" {
            star = Some(accepted);
        }
    }
    star.unwrap_or(false)
}

/// A q-value in thousandths: `0`, `0.5`, `1.000`; `None` when malformed.
fn weight(text: &str) -> Option<u16> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{fraction:0<3}").parse::<u16>().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts_text(text: &str, token: &str) -> bool {
        accepts(Some(&HeaderValue::from_str(text).unwrap()), token)
    }

    #[test]
    fn q_values() {
        assert!(accepts_text("gzip, br", "br"));
        assert!(accepts_text("GZIP", "gzip"));
        assert!(accepts_text("br;q=0.5", "br"));
        assert!(!accepts_text("br;q=0", "br"));
        assert!(!accepts_text("br;q=0.000", "br"));
        assert!(!accepts_text("gzip", "br"));
        assert!(accepts_text("*", "br"));
        assert!(!accepts_text("*, br;q=0", "br"));
        assert!(!accepts_text("br;q=2", "br"));
        assert!(!accepts_text("br;q=abc", "br"));
        assert!(!accepts(None, "br"));
    }
}
