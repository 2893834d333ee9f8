//! Retrying a failure at one layer of a chain of proxies, not at every layer.
//!
//! Why: per-hop budgets compound. Three hops of Envoy 1.40 with ballast's budget at every hop
//! and a leaf failing every request sent the leaf 3.1–3.4× the client's requests: each hop spent
//! its own ratio and floor on the same doomed request. Google's SRE book: retry at one layer
//! only, and answer "overloaded; don't retry" to the layers above.
//!
//! Mechanism (measured in Envoy 1.40, `envoy_retry_chain` test): Envoy's router does not retry a
//! response that carries `x-envoy-ratelimited` unless the route's `retry_on` has
//! `envoy-ratelimited`, whatever else it retries on. So a hop whose ballast has finished with a
//! failed request (its retries used up, refused by the budget, or not allowed for a request that
//! is not idempotent) adds that header, and `x-ballast-final: <why>` for the ballast of the hops
//! above, which counts the mark, spends no budget on it (the router made no retry, so the
//! reservation is refunded) and passes it on. A gRPC failure also gets
//! `grpc-retry-pushback-ms: -1`, the gRPC clients' own "do not retry" (gRPC A6).
//!
//! Marks are believed only from a trusted upstream, and toward a downstream peer that is not
//! trusted the two internal headers are removed (configurable): a client sees neither. (The
//! router honours `x-envoy-ratelimited` from any upstream: a mark can only take retries away,
//! never buy one.) Failures the router would not have retried anyway (a hop that did not use
//! its reserved retries, e.g. a status its `retry_on` does not cover) are not marked, so the
//! layer above may still retry them.

/// Response header Envoy's router does not retry (unless `retry_on` has `envoy-ratelimited`).
pub const ENVOY_RATELIMITED_HEADER: &str = "x-envoy-ratelimited";
/// ballast's own mark on a final failure: why this hop's ballast did not retry further.
pub const FINAL_MARK_HEADER: &str = "x-ballast-final";
/// gRPC's server pushback: a negative value tells a gRPC client not to retry (gRPC A6).
pub const GRPC_PUSHBACK_HEADER: &str = "grpc-retry-pushback-ms";

/// The `chain` behaviour of a policy set's retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainRules {
    /// Mark a final failure so the proxies above do not retry it.
    pub mark_final_failures: bool,
    /// Remove the internal mark headers from responses to peers that are not trusted.
    pub strip_marks_to_untrusted: bool,
}

impl Default for ChainRules {
    fn default() -> Self {
        ChainRules {
            mark_final_failures: true,
            strip_marks_to_untrusted: true,
        }
    }
}

/// Why a hop finished with a failed request without retrying it further.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalReason {
    /// It was retried here as many times as the rules allow.
    Retried,
    /// The budget refused (some of) its retries.
    Budget,
    /// It is not idempotent: no retry anywhere.
    NotIdempotent,
    /// A trusted upstream hop already marked it final.
    Upstream,
}

impl FinalReason {
    /// The mark's value.
    pub fn as_str(self) -> &'static str {
        match self {
            FinalReason::Retried => "retried",
            FinalReason::Budget => "budget",
            FinalReason::NotIdempotent => "not-idempotent",
            FinalReason::Upstream => "upstream",
        }
    }
}

/// gRPC statuses Envoy's `retry_on` can name (cancelled, deadline-exceeded,
/// resource-exhausted, internal, unavailable): the failures a layer above might retry.
const RETRIABLE_GRPC: &[&str] = &["1", "4", "8", "13", "14"];

/// Whether a final response is a failure a proxy above could retry: a 5xx, or a gRPC response
/// whose headers carry one of the retriable statuses (a trailers-only reply: Envoy's router
/// reads gRPC statuses for retries only there).
pub fn is_retriable_failure(status: u16, grpc_status: Option<&str>) -> bool {
    status >= 500 || grpc_status.is_some_and(|s| RETRIABLE_GRPC.contains(&s.trim()))
}

/// Whether a response carries a mark of a hop below (either header).
pub fn carries_mark(final_mark: Option<&str>, envoy_ratelimited: Option<&str>) -> bool {
    final_mark.is_some() || envoy_ratelimited.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::test;

    #[test]
    fn retriable_failures() {
        let rows = [
            (503, None, true),
            (500, None, true),
            (404, None, false),
            (429, None, false),
            (200, Some("14"), true),
            (200, Some(" 8 "), true),
            (200, Some("5"), false),
            (200, Some("0"), false),
            (200, Some("junk"), false),
            (200, None, false),
        ];
        for (status, grpc, expected) in rows {
            assert_eq!(
                is_retriable_failure(status, grpc),
                expected,
                "{status} {grpc:?}"
            );
        }
        assert!(carries_mark(Some("retried"), None));
        assert!(carries_mark(None, Some("true")));
        assert!(!carries_mark(None, None));
        assert_eq!(FinalReason::NotIdempotent.as_str(), "not-idempotent");
    }
}
