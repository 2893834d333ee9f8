//! The wire forms of a deadline: what each header carries and how ballast writes it back.
//!
//! Why apart from the stage: parsing is where hostile input meets the plugin, so every format
//! is one small total function here (malformed is `None`, never an error or a panic), tested
//! against the specs' limits: `grpc-timeout` (gRPC over HTTP/2: 1–8 ASCII digits and a unit
//! `H` `M` `S` `m` `u` `n`), Envoy's millisecond counts, and ballast's absolute deadline in
//! Unix epoch milliseconds.

use crate::duration::{Nanos, MILLISECOND, SECOND};

/// The gRPC deadline header (relative, from when the request was sent).
pub const GRPC_TIMEOUT: &str = "grpc-timeout";
/// The time a calling Envoy waits for this hop, in milliseconds (set by Envoy's router).
pub const ENVOY_EXPECTED_TIMEOUT_MS: &str = "x-envoy-expected-rq-timeout-ms";
/// The time the local router waits for the upstream, in milliseconds (read by Envoy's router).
pub const ENVOY_UPSTREAM_TIMEOUT_MS: &str = "x-envoy-upstream-rq-timeout-ms";
/// ballast's absolute deadline header by default (Unix epoch milliseconds).
pub const DEFAULT_ABSOLUTE_HEADER: &str = "x-ballast-deadline";

/// Parses a `grpc-timeout` value (`"250m"`, `"3S"`, …) into nanoseconds; `None` if malformed.
/// Values beyond `u64` nanoseconds (about 584 years) saturate.
pub fn parse_grpc_timeout(value: &str) -> Option<Nanos> {
    let value = value.trim();
    let split = value.len().checked_sub(1)?;
    let (digits, unit) = (value.get(..split)?, value.get(split..)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    let per_unit: Nanos = match unit {
        "H" => 3_600 * SECOND,
        "M" => 60 * SECOND,
        "S" => SECOND,
        "m" => MILLISECOND,
        "u" => 1_000,
        "n" => 1,
        _ => return None,
    };
    Some(amount.saturating_mul(per_unit))
}

/// The `grpc-timeout` units, coarsest first, with their length in nanoseconds.
const GRPC_UNITS: [(char, Nanos); 6] = [
    ('H', 3_600 * SECOND),
    ('M', 60 * SECOND),
    ('S', SECOND),
    ('m', MILLISECOND),
    ('u', 1_000),
    ('n', 1),
];

/// The largest amount `grpc-timeout` can carry (8 digits).
const GRPC_MAX_AMOUNT: u64 = 99_999_999;

/// Writes `remaining` as a `grpc-timeout` value for the next hop: the finest unit whose amount
/// fits the spec's 8 digits, rounded down, so a forwarded deadline is never later than the one
/// this hop holds (it may be earlier by less than one of the chosen unit: below 100 ms that is
/// exact to the nanosecond, below 100 s to the microsecond). Beyond 99,999,999 hours it is
/// capped there.
pub fn format_grpc_timeout(remaining: Nanos) -> String {
    for (unit, per_unit) in GRPC_UNITS.iter().rev() {
        let amount = remaining / per_unit;
        if amount <= GRPC_MAX_AMOUNT {
            return format!("{amount}{unit}");
        }
    }
    format!("{GRPC_MAX_AMOUNT}H")
}

/// Parses a millisecond count (`x-envoy-expected-rq-timeout-ms`); `None` if malformed.
/// Envoy writes `0` for "no timeout", so `0` is no deadline.
pub fn parse_timeout_ms(value: &str) -> Option<Nanos> {
    let value = value.trim();
    if value.is_empty() || value.len() > 12 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ms: u64 = value.parse().ok()?;
    (ms > 0).then(|| ms.saturating_mul(MILLISECOND))
}

/// Whether a millisecond count is Envoy's `0`, "no timeout" (well formed, and no deadline).
pub fn is_no_timeout_ms(value: &str) -> bool {
    let value = value.trim();
    !value.is_empty() && value.bytes().all(|b| b == b'0')
}

/// Parses an absolute deadline in Unix epoch milliseconds (1–16 digits) into nanoseconds
/// since the epoch; `None` if malformed. Saturates beyond `u64` nanoseconds (the year 2554).
pub fn parse_epoch_ms(value: &str) -> Option<Nanos> {
    let value = value.trim();
    if value.is_empty() || value.len() > 16 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ms: u64 = value.parse().ok()?;
    Some(ms.saturating_mul(MILLISECOND))
}

/// Writes an absolute deadline as Unix epoch milliseconds, rounded down (never later).
pub fn format_epoch_ms(at: Nanos) -> String {
    (at / MILLISECOND).to_string()
}

/// Writes a budget as whole milliseconds, rounded down, for Envoy's timeout headers. Never 0,
/// which Envoy reads as "no timeout": callers forward only budgets of a millisecond or more.
pub fn format_timeout_ms(budget: Nanos) -> String {
    (budget / MILLISECOND).max(1).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::test;

    #[test]
    fn grpc_timeout_units() {
        assert_eq!(parse_grpc_timeout("1H"), Some(3_600 * SECOND));
        assert_eq!(parse_grpc_timeout("2M"), Some(120 * SECOND));
        assert_eq!(parse_grpc_timeout("3S"), Some(3 * SECOND));
        assert_eq!(parse_grpc_timeout("250m"), Some(250 * MILLISECOND));
        assert_eq!(parse_grpc_timeout("7u"), Some(7_000));
        assert_eq!(parse_grpc_timeout("9n"), Some(9));
        assert_eq!(parse_grpc_timeout("0m"), Some(0), "already expired");
        assert_eq!(
            parse_grpc_timeout("99999999H"),
            Some(u64::MAX),
            "saturates beyond u64 nanoseconds"
        );
    }

    #[test]
    fn grpc_timeout_is_written_in_the_finest_unit_that_fits_rounded_down() {
        assert_eq!(format_grpc_timeout(0), "0n");
        assert_eq!(format_grpc_timeout(99_999_999), "99999999n");
        assert_eq!(format_grpc_timeout(100_000_000), "100000u");
        assert_eq!(
            format_grpc_timeout(1_500_000_999),
            "1500000u",
            "rounded down"
        );
        assert_eq!(format_grpc_timeout(250 * SECOND), "250000m");
        assert_eq!(format_grpc_timeout(2 * 86_400 * SECOND), "172800S");
        assert_eq!(format_grpc_timeout(200 * 86_400 * SECOND), "17280000S");
        assert_eq!(format_grpc_timeout(4 * 365 * 86_400 * SECOND), "2102400M");
        assert_eq!(format_grpc_timeout(u64::MAX), "5124095H");
        // Each unit is reached, and every written value parses back to at most the input, less
        // than one unit below it, within 8 digits.
        let mut units_seen = std::collections::BTreeSet::new();
        let mut check = |nanos: Nanos| {
            let written = format_grpc_timeout(nanos);
            let (digits, unit) = written.split_at(written.len() - 1);
            assert!(digits.len() <= 8, "{nanos}: {written}");
            units_seen.insert(unit.to_string());
            let back = parse_grpc_timeout(&written).unwrap();
            let per_unit = GRPC_UNITS
                .iter()
                .find(|(u, _)| u.to_string() == unit)
                .map(|(_, n)| *n)
                .unwrap();
            assert!(back <= nanos, "{nanos}: {written} is later");
            assert!(
                nanos - back < per_unit,
                "{nanos}: {written} lost a unit or more"
            );
        };
        let mut value: Nanos = 1;
        while let Some(next) = value.checked_mul(7) {
            for nanos in [value, value + 1, value.saturating_mul(3) / 2] {
                check(nanos);
            }
            value = next;
        }
        check(u64::MAX - 1);
        check(u64::MAX);
        assert_eq!(units_seen.len(), 6, "{units_seen:?}");
    }

    #[test]
    fn a_grpc_timeout_written_from_a_parsed_one_keeps_its_value() {
        for text in [
            "1H",
            "2M",
            "3S",
            "250m",
            "7u",
            "9n",
            "0m",
            "99999999m",
            "86400S",
        ] {
            let nanos = parse_grpc_timeout(text).unwrap();
            assert_eq!(
                parse_grpc_timeout(&format_grpc_timeout(nanos)),
                Some(nanos),
                "{text}"
            );
        }
    }

    #[test]
    fn malformed_grpc_timeouts_are_no_deadline() {
        for bad in [
            "",
            "m",
            "100",
            "123456789m",
            "-5m",
            "5x",
            "5 m",
            "1.5S",
            "5mm",
            "５m",
            "+5m",
        ] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn envoy_expected_timeout() {
        assert_eq!(parse_timeout_ms("150"), Some(150 * MILLISECOND));
        assert_eq!(parse_timeout_ms("0"), None, "Envoy's 0 means no timeout");
        for bad in ["", "-1", "1.5", "abc", "9999999999999"] {
            assert_eq!(parse_timeout_ms(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn epoch_milliseconds() {
        assert_eq!(
            parse_epoch_ms("1764633600123"),
            Some(1_764_633_600_123 * MILLISECOND)
        );
        assert_eq!(parse_epoch_ms(" 5 "), Some(5 * MILLISECOND));
        assert_eq!(
            parse_epoch_ms("9999999999999999"),
            Some(u64::MAX),
            "saturates"
        );
        for bad in ["", "-1", "1.5", "17e11", "12345678901234567", "0x10", "１"] {
            assert_eq!(parse_epoch_ms(bad), None, "{bad:?}");
        }
        assert_eq!(format_epoch_ms(1_764_633_600_123_999_999), "1764633600123");
        let at = 1_764_633_600_123 * MILLISECOND;
        assert_eq!(parse_epoch_ms(&format_epoch_ms(at)), Some(at));
    }

    #[test]
    fn envoy_timeouts_are_whole_milliseconds_never_zero() {
        assert_eq!(format_timeout_ms(150 * MILLISECOND + 999_999), "150");
        assert_eq!(format_timeout_ms(MILLISECOND), "1");
        assert_eq!(
            format_timeout_ms(10),
            "1",
            "0 would mean no timeout to Envoy"
        );
        assert_eq!(
            parse_timeout_ms(&format_timeout_ms(42 * MILLISECOND)),
            Some(42 * MILLISECOND)
        );
    }
}
