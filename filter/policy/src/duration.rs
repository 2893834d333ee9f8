//! Durations as written in configuration (`"250ms"`, `"10s"`, `"1.5s"`, `"2m"`).
//!
//! Why: Envoy and Istio users write durations as strings with units; bare numbers are ambiguous
//! (seconds? milliseconds?). The policy crate keeps time as integer nanoseconds, so arithmetic on
//! the request path is exact and never touches floating point beyond parsing.

/// Nanoseconds: the policy crate's unit of time, always passed in by the caller.
pub type Nanos = u64;

/// One millisecond in nanoseconds.
pub const MILLISECOND: Nanos = 1_000_000;
/// One second in nanoseconds.
pub const SECOND: Nanos = 1_000_000_000;

/// Parses `"<number><unit>"` with unit `ms`, `s` or `m` (number may have a fraction).
/// Returns nanoseconds or a reason suitable for a [`crate::config::ConfigError`].
pub fn parse_duration(text: &str) -> Result<Nanos, String> {
    let text = text.trim();
    if text.starts_with('-') {
        return Err(format!("`{text}` is negative: a duration is 0 or more"));
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("`{text}` has no unit: write e.g. \"250ms\", \"10s\" or \"1m\""))?;
    let (number, unit) = text.split_at(split);
    let unit_nanos = match unit {
        "ms" => MILLISECOND,
        "s" => SECOND,
        "m" => 60 * SECOND,
        _ => {
            return Err(format!(
                "`{text}` has unknown unit `{unit}`: use ms, s or m"
            ))
        }
    };
    if number.is_empty() || number.matches('.').count() > 1 || number.ends_with('.') {
        return Err(format!("`{text}` is not a number followed by a unit"));
    }
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let whole: u64 = whole
        .parse()
        .map_err(|_| format!("`{text}` is not a number followed by a unit"))?;
    let mut nanos = whole
        .checked_mul(unit_nanos)
        .ok_or_else(|| format!("`{text}` is too large"))?;
    let mut scale = unit_nanos;
    for digit in fraction.bytes() {
        scale /= 10;
        nanos = nanos.saturating_add(u64::from(digit - b'0') * scale);
    }
    Ok(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::test;

    #[test]
    fn parses_units_and_fractions() {
        let cases: &[(&str, Nanos)] = &[
            ("250ms", 250 * MILLISECOND),
            ("10s", 10 * SECOND),
            ("1.5s", 1_500 * MILLISECOND),
            ("2m", 120 * SECOND),
            ("0s", 0),
            (" 3s ", 3 * SECOND),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text), Ok(*expected), "{text}");
        }
    }

    #[test]
    fn rejects_malformed() {
        for text in [
            "",
            "10",
            "s",
            "1.2.3s",
            "1.s",
            "-1s",
            "10h",
            "10 sec",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(text).is_err(), "{text} should be rejected");
        }
    }
}
