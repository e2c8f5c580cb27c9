//! `Accept-Encoding` read into the client's weight for each encoding the
//! proxy produces, and the one chosen: the highest weight above zero, ties
//! going to the configured order. Hostile values cost one pass over the
//! header and no allocation; a token or weight that does not parse counts
//! as not accepted.

use http::header::{HeaderMap, ACCEPT_ENCODING};

use crate::config::Encoding;

/// The client's weights, in thousandths (RFC 9110 section 12.4.2): `None`
/// when the encoding is not named.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Accepted {
    zstd: Option<u16>,
    br: Option<u16>,
    gzip: Option<u16>,
    any: Option<u16>,
}

impl Accepted {
    /// What `Accept-Encoding` (every line of it) accepts; nothing when absent.
    pub(crate) fn of(headers: &HeaderMap) -> Accepted {
        let mut accepted = Accepted::default();
        for value in headers.get_all(ACCEPT_ENCODING) {
            for item in value.as_bytes().split(|&b| b == b',') {
                accepted.add(item);
            }
        }
        accepted
    }

    /// Whether anything was named at all.
    pub(crate) fn any_named(&self) -> bool {
        self.zstd.is_some() || self.br.is_some() || self.gzip.is_some() || self.any.is_some()
    }

    /// One `coding;q=x` item. Named twice, the lower weight stands: a
    /// refusal is never overruled.
    fn add(&mut self, item: &[u8]) {
        let mut parts = item.split(|&b| b == b';');
        let name = trim(parts.next().unwrap_or_default());
        let mut weight = Some(1000);
        for param in parts {
            let param = trim(param);
            if let Some(value) = param.strip_prefix(b"q=").or_else(|| param.strip_prefix(b"Q=")) {
                weight = qvalue(trim(value));
            }
        }
        // A weight that does not parse is a refusal.
        let weight = weight.unwrap_or(0);
        let slot = if name.eq_ignore_ascii_case(b"gzip") || name.eq_ignore_ascii_case(b"x-gzip") {
            &mut self.gzip
        } else if name.eq_ignore_ascii_case(b"br") {
            &mut self.br
        } else if name.eq_ignore_ascii_case(b"zstd") {
            &mut self.zstd
        } else if name == b"*" {
            &mut self.any
        } else {
            return;
        };
        *slot = Some(slot.map_or(weight, |w| w.min(weight)));
    }

    /// The client's weight for `encoding`: its own, or `*`'s.
    fn weight(&self, encoding: Encoding) -> u16 {
        let named = match encoding {
            Encoding::Zstd => self.zstd,
            Encoding::Br => self.br,
            Encoding::Gzip => self.gzip,
        };
        named.or(self.any).unwrap_or(0)
    }

    /// The encoding to send among `offered` (in the server's order): the
    /// client's highest weight above zero, the first offered on a tie.
    pub(crate) fn choose(&self, offered: &[Encoding]) -> Option<Encoding> {
        let mut best: Option<(u16, Encoding)> = None;
        for &encoding in offered {
            let weight = self.weight(encoding);
            if weight > 0 && best.is_none_or(|(w, _)| weight > w) {
                best = Some((weight, encoding));
            }
        }
        best.map(|(_, encoding)| encoding)
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// An RFC 9110 qvalue in thousandths: `0`, `0.5`, `1`, `1.000`; anything
/// else (`2`, `-1`, `0.0001`, `NaN`, 400 digits) is `None`.
fn qvalue(text: &[u8]) -> Option<u16> {
    let (whole, fraction) = match text.iter().position(|&b| b == b'.') {
        Some(dot) => (&text[..dot], &text[dot + 1..]),
        None => (text, &b""[..]),
    };
    if fraction.len() > 3 || !fraction.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for i in 0..3 {
        thousandths = thousandths * 10 + fraction.get(i).map_or(0, |d| u16::from(d - b'0'));
    }
    match whole {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use Encoding::{Br, Gzip, Zstd};

    const ALL: [Encoding; 3] = [Zstd, Br, Gzip];

    fn chosen(header: &str) -> Option<Encoding> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_str(header).unwrap());
        Accepted::of(&headers).choose(&ALL)
    }

    // Negotiation is the same whichever encoders are built: the
    // configuration only offers those that are.
    #[test]
    fn server_order_breaks_ties_and_weights_decide_otherwise() {
        assert_eq!(chosen("gzip, deflate, br, zstd"), Some(Zstd));
        assert_eq!(chosen("gzip, br"), Some(Br));
        assert_eq!(chosen("gzip;q=1.0, br;q=0.5"), Some(Gzip));
        assert_eq!(chosen("GZIP"), Some(Gzip));
        assert_eq!(chosen("x-gzip"), Some(Gzip));
        assert_eq!(chosen("deflate"), None);
        assert_eq!(chosen(""), None);
    }

    #[test]
    fn zero_refuses_and_star_covers_the_rest() {
        assert_eq!(chosen("br;q=0, gzip"), Some(Gzip));
        assert_eq!(chosen("*"), Some(Zstd));
        assert_eq!(chosen("*;q=0.5, zstd;q=0, br;q=0"), Some(Gzip));
        assert_eq!(chosen("*;q=0"), None);
        assert_eq!(chosen("identity;q=0"), None);
        assert_eq!(chosen("gzip, gzip;q=0"), None);
        assert_eq!(chosen("gzip;q=0.000"), None);
        assert_eq!(chosen("gzip;q=0.001"), Some(Gzip));
    }

    #[test]
    fn garbage_weights_refuse_and_never_panic() {
        for bad in [
            "gzip;q=2",
            "gzip;q=1.5",
            "gzip;q=-1",
            "gzip;q=NaN",
            "gzip;q=0.0001",
            "gzip;q=",
            "gzip;q=.",
            "gzip;q=1.",
            "gzip;q=99999999999999999999999999",
            "gzip;q=0.x",
        ] {
            let with_dot_ok = bad == "gzip;q=1.";
            assert_eq!(chosen(bad), with_dot_ok.then_some(Gzip), "{bad}");
        }
        for noise in [";;;,,,;q=;", "=,=;=", ",", ";", "q=1", "gzip;;q=1"] {
            let _ = chosen(noise);
        }
        let huge = "x, ".repeat(20_000) + "br";
        assert_eq!(chosen(&huge), Some(Br));
    }
}
