//! Sizes in the configuration: an integer number of bytes (`65536`), or a
//! string with a binary unit (`"64KiB"`, `"10MiB"`, `"1GiB"`, `"512B"`).
//!
//! Only the binary units are accepted. `"10MB"` could mean 10 000 000 or
//! 10 485 760 bytes, and nginx's `10m` means the second; for a limit the
//! difference matters, so the ambiguous spellings are errors that say what
//! to write instead. Units are matched without regard to case.

use super::error::Invalid;

/// The units, in bytes, as they are written in messages.
const UNITS: [(&str, u64); 4] = [("B", 1), ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30)];

const UNITS_HINT: &str =
    "write a whole number of bytes, or a number followed by B, KiB, MiB or GiB, for example \"64KiB\" or \"10MiB\"";

/// Parses a size written as a string.
pub(crate) fn parse(text: &str) -> Result<u64, Invalid> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(Invalid::new("the size is empty", UNITS_HINT));
    }
    if trimmed.starts_with('-') {
        return Err(Invalid::new(
            format!("`{trimmed}` is negative; a size cannot be"),
            UNITS_HINT,
        ));
    }
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, rest) = trimmed.split_at(split);
    let unit = rest.trim_start();
    if digits.is_empty() {
        return Err(Invalid::new(format!("`{trimmed}` is not a size"), UNITS_HINT));
    }
    if let Some(after_point) = unit.strip_prefix('.') {
        let unit = after_point
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim();
        let smaller = smaller_unit(unit);
        return Err(Invalid::new(
            format!("`{trimmed}` is not a whole number"),
            match smaller {
                Some(smaller) => {
                    format!("write it in {smaller}, for example \"1536{smaller}\" for 1.5 {unit}")
                }
                None => UNITS_HINT.to_string(),
            },
        ));
    }
    if unit.is_empty() {
        // A quoted number: what the operator meant is clear, but the rest
        // of the file writes numbers without quotes.
        return Err(Invalid::new(
            format!("`{trimmed}` has no unit"),
            format!("remove the quotes for a number of bytes ({digits}), or add a unit: \"{digits}KiB\""),
        ));
    }
    let Some(&(_, scale)) = UNITS.iter().find(|(name, _)| name.eq_ignore_ascii_case(unit)) else {
        return Err(unknown_unit(trimmed, digits, unit));
    };
    let too_large = || {
        Invalid::new(
            format!("`{trimmed}` is too large"),
            "give a size of at most a few GiB, such as \"4GiB\"",
        )
    };
    let number: u64 = digits.parse().map_err(|_| too_large())?;
    number.checked_mul(scale).ok_or_else(too_large)
}

/// The unit below `unit`, for a fraction: KiB for MiB.
fn smaller_unit(unit: &str) -> Option<&'static str> {
    let index = UNITS
        .iter()
        .position(|(name, _)| name.eq_ignore_ascii_case(unit))?;
    index.checked_sub(1).map(|i| UNITS[i].0)
}

fn unknown_unit(text: &str, digits: &str, unit: &str) -> Invalid {
    let binary = match unit.to_ascii_lowercase().as_str() {
        "k" | "kb" => Some("KiB"),
        "m" | "mb" => Some("MiB"),
        "g" | "gb" => Some("GiB"),
        _ => None,
    };
    match binary {
        Some(binary) => Invalid::new(
            format!("`{text}` is ambiguous: `{unit}` may mean powers of 1000 or of 1024"),
            format!(
                "write \"{digits}{binary}\" ({digits} × {} bytes, which is what nginx's `{digits}{}` means)",
                UNITS
                    .iter()
                    .find(|(name, _)| *name == binary)
                    .map_or(0, |(_, scale)| *scale),
                binary[..1].to_ascii_lowercase(),
            ),
        ),
        None => Invalid::new(format!("`{text}` has an unknown unit `{unit}`"), UNITS_HINT),
    }
}

/// A size as an operator would write it: "64KiB", "1MiB", "1000B".
pub(crate) fn display(bytes: u64) -> String {
    for &(name, scale) in UNITS.iter().rev() {
        if bytes >= scale && bytes % scale == 0 {
            return format!("{}{name}", bytes / scale);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> u64 {
        match parse(text) {
            Ok(n) => n,
            Err(e) => panic!("{text}: {e:?}"),
        }
    }

    fn err(text: &str) -> Invalid {
        match parse(text) {
            Ok(n) => panic!("{text} parsed as {n}"),
            Err(e) => e,
        }
    }

    #[test]
    fn accepts_binary_units() {
        assert_eq!(ok("64KiB"), 65_536);
        assert_eq!(ok(" 1 MiB "), 1 << 20);
        assert_eq!(ok("2gib"), 2 << 30);
        assert_eq!(ok("512B"), 512);
        assert_eq!(ok("0B"), 0);
    }

    #[test]
    fn explains_what_is_wrong() {
        let e = err("10MB");
        assert!(e.message.contains("ambiguous"), "{}", e.message);
        assert!(e.hint.contains("\"10MiB\""), "{}", e.hint);
        assert!(e.hint.contains("nginx's `10m`"), "{}", e.hint);
        assert!(err("10m").hint.contains("\"10MiB\""));
        assert!(err("8k").hint.contains("\"8KiB\""));
        let e = err("65536");
        assert_eq!(e.message, "`65536` has no unit");
        assert!(e.hint.contains("remove the quotes"), "{}", e.hint);
        assert!(err("1.5MiB").hint.contains("\"1536KiB\""));
        assert!(err("-1KiB").message.contains("negative"));
        assert!(err("").message.contains("empty"));
        assert!(err("lots").message.contains("not a size"));
        assert!(err("5 parsecs").message.contains("unknown unit `parsecs`"));
        assert!(err("99999999999GiB").message.contains("too large"));
        assert!(err("99999999999999999999999B").message.contains("too large"));
    }

    #[test]
    fn displays_in_the_largest_exact_unit() {
        assert_eq!(display(65_536), "64KiB");
        assert_eq!(display(1 << 20), "1MiB");
        assert_eq!(display(1000), "1000B");
        assert_eq!(display(0), "0B");
    }
}
