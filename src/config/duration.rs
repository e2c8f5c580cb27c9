//! Human-readable durations in the configuration: `"500ms"`, `"90s"`,
//! `"24h"`, `"1h30m"`.
//!
//! Parsing is humantime's, so every unit it knows is accepted (`ms`, `s`,
//! `m`, `h`, `d`, `w`, and longer spellings such as `sec` or `hours`); this
//! module adds the rules that matter to a proxy and turns humantime's
//! errors into messages that say what to write.
//!
//! Zero: a zero timeout would make every handshake, request or connection
//! fail at once, so most durations reject it. The few settings where zero
//! has a useful meaning (no keep-alive, no shutdown grace) ask for
//! [`Zero::Allowed`].
//!
//! Upper bound: a year. Nothing in a proxy needs to wait longer, and a bound
//! keeps absurd values (a typo adding digits) from overflowing the deadline
//! arithmetic of the code that uses them.

use std::time::Duration;

use super::error::Invalid;

/// The longest duration accepted anywhere: 365 days.
pub(crate) const MAX: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Whether a setting gives zero a meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Zero {
    Allowed,
    Rejected,
}

const UNITS_HINT: &str =
    "write a number followed by a unit: ms, s, m, h or d, for example \"500ms\", \"90s\", \"24h\" or \"1h30m\"";

/// Parses one duration as written in the configuration.
pub(crate) fn parse(text: &str, zero: Zero) -> Result<Duration, Invalid> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(Invalid {
            message: "the duration is empty".into(),
            hint: UNITS_HINT.into(),
        });
    }
    if trimmed.starts_with('-') {
        return Err(Invalid {
            message: format!("`{trimmed}` is negative; a duration cannot be"),
            hint: UNITS_HINT.into(),
        });
    }
    let duration = humantime::parse_duration(trimmed).map_err(|e| explain(trimmed, e))?;
    if duration.is_zero() && zero == Zero::Rejected {
        return Err(Invalid {
            message: format!("`{trimmed}` is zero, which would make this time out at once"),
            hint: "give a positive duration, or remove the setting to use its default".into(),
        });
    }
    if duration > MAX {
        return Err(Invalid {
            message: format!("`{trimmed}` is longer than the maximum of 365 days"),
            hint: "give a duration of at most \"365d\"".into(),
        });
    }
    Ok(duration)
}

fn explain(text: &str, error: humantime::DurationError) -> Invalid {
    use humantime::DurationError as E;
    match error {
        E::UnknownUnit { unit, value, .. } if unit.is_empty() => Invalid {
            message: format!("`{text}` has no unit"),
            hint: format!(
                "write \"{value}s\" for {value} seconds or \"{value}ms\" for milliseconds; units: ms, s, m, h, d"
            ),
        },
        E::UnknownUnit { unit, .. } => Invalid {
            message: format!("`{text}` has an unknown unit `{unit}`"),
            hint: UNITS_HINT.into(),
        },
        E::NumberOverflow => Invalid {
            message: format!("`{text}` is too large or too precise to be represented"),
            hint: "give a duration of at most \"365d\" and no finer than nanoseconds".into(),
        },
        E::Empty => Invalid {
            message: "the duration is empty".into(),
            hint: UNITS_HINT.into(),
        },
        E::InvalidCharacter(_) | E::NumberExpected(_) => Invalid {
            message: format!("`{text}` is not a duration"),
            hint: UNITS_HINT.into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Duration {
        match parse(text, Zero::Rejected) {
            Ok(d) => d,
            Err(e) => panic!("{text}: {e:?}"),
        }
    }

    fn err(text: &str, zero: Zero) -> Invalid {
        match parse(text, zero) {
            Ok(d) => panic!("{text} parsed as {d:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn accepts_the_usual_forms() {
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("90s"), Duration::from_secs(90));
        assert_eq!(ok("24h"), Duration::from_secs(86_400));
        assert_eq!(ok("1h30m"), Duration::from_secs(5_400));
        assert_eq!(ok("1h 30m"), Duration::from_secs(5_400));
        assert_eq!(ok(" 10s "), Duration::from_secs(10));
        assert_eq!(ok("365d"), MAX);
    }

    #[test]
    fn zero_only_where_allowed() {
        assert_eq!(parse("0s", Zero::Allowed), Ok(Duration::ZERO));
        assert!(err("0s", Zero::Rejected).message.contains("is zero"));
    }

    #[test]
    fn explains_what_is_wrong() {
        let e = err("30", Zero::Rejected);
        assert_eq!(e.message, "`30` has no unit");
        assert!(e.hint.contains("\"30s\""), "{}", e.hint);
        assert_eq!(
            err("5 parsecs", Zero::Rejected).message,
            "`5 parsecs` has an unknown unit `parsecs`"
        );
        assert_eq!(err("soon", Zero::Rejected).message, "`soon` is not a duration");
        assert!(err("-5s", Zero::Rejected).message.contains("negative"));
        assert!(err("", Zero::Rejected).message.contains("empty"));
        assert!(err("366d", Zero::Rejected).message.contains("365 days"));
        assert!(err("99999999999999999999h", Zero::Rejected)
            .message
            .contains("too large"));
    }
}
