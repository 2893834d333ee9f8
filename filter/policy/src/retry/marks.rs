//! Recognising a request that is itself a retry.
//!
//! Why: on the server side, retries should be the first work shed under overload (they are
//! the amplification), and counted. Envoy's router marks each attempt with
//! `x-envoy-attempt-count` (1 for the first); gRPC clients send `grpc-previous-rpc-attempts`
//! (0 for the first). Only trusted peers' marks are believed; malformed values are counted.

/// What the request says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptMark {
    /// No mark, or a mark saying this is the first attempt.
    First,
    /// Attempt number `n` (≥ 2).
    Retry(u32),
    /// A mark that does not parse; treated as a first attempt and counted.
    Malformed,
}

impl AttemptMark {
    /// Whether this attempt is a retry.
    pub fn is_retry(self) -> bool {
        matches!(self, AttemptMark::Retry(_))
    }
}

/// Classifies from `x-envoy-attempt-count` and `grpc-previous-rpc-attempts` values.
pub fn attempt_of(
    envoy_attempt_count: Option<&str>,
    grpc_previous_attempts: Option<&str>,
) -> AttemptMark {
    let parse = |v: &str| v.trim().parse::<u32>().ok();
    let envoy = envoy_attempt_count.map(|v| parse(v).filter(|n| *n >= 1));
    let grpc = grpc_previous_attempts.map(|v| parse(v).map(|n| n.saturating_add(1)));
    match (envoy, grpc) {
        (Some(None), _) | (_, Some(None)) => AttemptMark::Malformed,
        (Some(Some(a)), Some(Some(b))) => mark(a.max(b)),
        (Some(Some(n)), None) | (None, Some(Some(n))) => mark(n),
        (None, None) => AttemptMark::First,
    }
}

fn mark(attempt: u32) -> AttemptMark {
    if attempt >= 2 {
        AttemptMark::Retry(attempt)
    } else {
        AttemptMark::First
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::test;

    #[test]
    fn classifies_marks() {
        let rows = [
            (None, None, AttemptMark::First),
            (Some("1"), None, AttemptMark::First),
            (Some("2"), None, AttemptMark::Retry(2)),
            (Some(" 4 "), None, AttemptMark::Retry(4)),
            (None, Some("0"), AttemptMark::First),
            (None, Some("1"), AttemptMark::Retry(2)),
            (Some("1"), Some("2"), AttemptMark::Retry(3)),
            (Some("0"), None, AttemptMark::Malformed),
            (Some("x"), None, AttemptMark::Malformed),
            (None, Some("-1"), AttemptMark::Malformed),
            (None, Some("99999999999"), AttemptMark::Malformed),
        ];
        for (envoy, grpc, expected) in rows {
            assert_eq!(attempt_of(envoy, grpc), expected, "{envoy:?} {grpc:?}");
        }
        assert!(AttemptMark::Retry(2).is_retry());
        assert!(!AttemptMark::Malformed.is_retry());
    }
}
