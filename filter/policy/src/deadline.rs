//! The caller's remaining time, as the request states it.
//!
//! Why: a request that waits in ballast's queue past the moment its caller gives up is work
//! thrown away twice — the slot it finally gets serves nobody, and it delayed requests that
//! could still have been answered. Two headers carry the caller's budget through a mesh:
//!
//! - `grpc-timeout` (gRPC over HTTP/2 spec): 1–8 ASCII digits and a unit, `H` `M` `S` `m` `u`
//!   `n`; set by every gRPC client that has a deadline;
//! - `x-envoy-expected-rq-timeout-ms`: the time a calling Envoy will wait for this hop, in
//!   milliseconds; set by Envoy on requests to an upstream (sidecar to sidecar in a mesh).
//!
//! Both are relative, measured from when the request was sent, so they are read at arrival and
//! turned into an absolute time on this proxy's clock. Trust is not needed: a caller that
//! understates its deadline only shortens its own wait.
//!
//! Malformed values are ignored (the request is treated as having no deadline), never an
//! error: a bad header must not change what happens to a request except through its own wait.

use crate::duration::{Nanos, MILLISECOND, SECOND};

/// The gRPC deadline header.
pub const GRPC_TIMEOUT: &str = "grpc-timeout";
/// The remaining time a calling Envoy waits for this hop.
pub const ENVOY_EXPECTED_TIMEOUT_MS: &str = "x-envoy-expected-rq-timeout-ms";

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

/// The caller's remaining time from the values of [`GRPC_TIMEOUT`] and
/// [`ENVOY_EXPECTED_TIMEOUT_MS`], whichever are present and well formed: the shortest wins.
pub fn remaining(grpc_timeout: Option<&str>, envoy_expected_ms: Option<&str>) -> Option<Nanos> {
    let grpc = grpc_timeout.and_then(parse_grpc_timeout);
    let envoy = envoy_expected_ms.and_then(parse_timeout_ms);
    match (grpc, envoy) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
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
    fn shortest_of_both_headers_wins() {
        assert_eq!(remaining(Some("2S"), Some("500")), Some(500 * MILLISECOND));
        assert_eq!(remaining(Some("20m"), None), Some(20 * MILLISECOND));
        assert_eq!(remaining(None, Some("20")), Some(20 * MILLISECOND));
        assert_eq!(
            remaining(Some("soon"), Some("30")),
            Some(30 * MILLISECOND),
            "a malformed header is ignored, not fatal"
        );
        assert_eq!(remaining(Some("soon"), None), None);
        assert_eq!(remaining(None, None), None);
    }
}
