//! Retries: which requests may be retried, how many retries the budget allows, and how a
//! request that is itself a retry is recognised.
//!
//! Why: with three hops each retrying three times, one failing leaf sees 4³ = 64× its load.
//! Retrying only what is safe to repeat (idempotent methods, or requests carrying an
//! idempotency key) and capping retries at a ratio of real traffic ([`budget`]) keeps retries
//! a help during blips instead of a storm during outages.

pub mod budget;
pub mod chain;
pub mod lease;
pub(crate) mod marks;
pub mod policy;
mod shared;

pub use budget::{BudgetParams, BudgetState};
pub use chain::{ChainRules, FinalReason};
pub use marks::{attempt_of, AttemptMark};

/// Methods that are safe to repeat by default (RFC 9110 §9.2.2, minus nothing).
pub const DEFAULT_IDEMPOTENT_METHODS: &[&str] =
    &["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"];

/// The validated `retry` section of a policy set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryRules {
    /// Methods that may be retried.
    pub idempotent_methods: Vec<String>,
    /// A request carrying this header may be retried whatever its method (from a trusted
    /// peer, unless `idempotency_key_from_untrusted`).
    pub idempotency_key_header: Option<String>,
    /// Believe the idempotency key from every peer (an edge whose clients send keys the
    /// service deduplicates on).
    pub idempotency_key_from_untrusted: bool,
    /// Most retries ballast lets Envoy make for one request.
    pub max_retries_per_request: u32,
    /// Response header explaining a refused retry (opt-in).
    pub explain_header: Option<String>,
    /// Marking final failures for the proxies above (see [`chain`]).
    pub chain: ChainRules,
}

impl Default for RetryRules {
    fn default() -> Self {
        RetryRules {
            idempotent_methods: DEFAULT_IDEMPOTENT_METHODS
                .iter()
                .map(|m| m.to_string())
                .collect(),
            idempotency_key_header: None,
            idempotency_key_from_untrusted: false,
            // Envoy's own default `num_retries`; set it to the route's value.
            max_retries_per_request: 1,
            explain_header: None,
            chain: ChainRules::default(),
        }
    }
}

/// Why a request may or may not be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eligibility {
    /// Idempotent method.
    IdempotentMethod,
    /// Carries the idempotency key header.
    IdempotencyKey,
    /// Neither: it must not be retried.
    NotIdempotent,
}

impl Eligibility {
    /// Whether retries are allowed at all.
    pub fn allows_retry(self) -> bool {
        !matches!(self, Eligibility::NotIdempotent)
    }
}

impl RetryRules {
    /// Whether a request with `method` (and an idempotency key, if `has_key`) may be retried.
    pub fn eligibility(&self, method: Option<&str>, has_key: bool) -> Eligibility {
        self.decide(self.idempotent_method(method), || has_key)
    }

    /// Whether `method` is one of the idempotent methods.
    pub(crate) fn idempotent_method(&self, method: Option<&str>) -> bool {
        method.is_some_and(|m| self.idempotent_methods.iter().any(|i| i == m))
    }

    /// The decision, given whether the method allows retries; `has_key` (does the request
    /// carry the idempotency key header?) is asked only when the method does not and a key
    /// header is configured.
    pub(crate) fn decide(
        &self,
        method_allows: bool,
        has_key: impl FnOnce() -> bool,
    ) -> Eligibility {
        if method_allows {
            Eligibility::IdempotentMethod
        } else if self.idempotency_key_header.is_some() && has_key() {
            Eligibility::IdempotencyKey
        } else {
            Eligibility::NotIdempotent
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::test;

    #[test]
    fn idempotency_by_method_or_key() {
        let rules = RetryRules {
            idempotency_key_header: Some("idempotency-key".into()),
            ..RetryRules::default()
        };
        let rows = [
            (Some("GET"), false, Eligibility::IdempotentMethod),
            (Some("PUT"), false, Eligibility::IdempotentMethod),
            (Some("POST"), false, Eligibility::NotIdempotent),
            (Some("POST"), true, Eligibility::IdempotencyKey),
            (Some("PATCH"), true, Eligibility::IdempotencyKey),
            (None, false, Eligibility::NotIdempotent),
            (Some("get"), false, Eligibility::NotIdempotent),
        ];
        for (method, key, expected) in rows {
            assert_eq!(
                rules.eligibility(method, key),
                expected,
                "{method:?} key={key}"
            );
        }
        let no_key_header = RetryRules::default();
        assert_eq!(
            no_key_header.eligibility(Some("POST"), true),
            Eligibility::NotIdempotent
        );
    }
}

/// What ballast decided for one request's retries, carried from request to response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPlan {
    /// Why the request may (not) be retried.
    pub eligibility: Eligibility,
    /// Retries reserved from the budget (what `x-envoy-max-retries` is set to).
    pub reserved: u32,
    /// Retries the rules would allow without a budget (`max_retries_per_request`, or 0).
    pub wanted: u32,
    /// The budget bucket (second) the reservation was booked in, for the refund.
    pub reserved_in: u64,
}

/// What the final response says about the retries Envoy made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryOutcome {
    /// Retries Envoy made (attempts − 1).
    pub used: u32,
    /// Reserved retries to give back to the budget.
    pub refund: u32,
    /// A retry was refused because of the budget (the request failed with all reserved
    /// retries used and fewer reserved than wanted).
    pub denied_budget: bool,
    /// A retry was refused because the request is not idempotent (it failed with a 5xx).
    pub denied_not_idempotent: bool,
}

impl RetryPlan {
    /// Settles the plan given whether the final response `failed` (a failure a proxy could
    /// retry) and its `x-envoy-attempt-count`. Without an attempt count (the virtual host lacks
    /// `include_attempt_count_in_response`), a success is taken as "no retry used" and a failure
    /// as "all reserved used".
    pub fn settle(&self, failed: bool, attempt_count: Option<&str>) -> RetryOutcome {
        let used = match attempt_count.and_then(|v| v.trim().parse::<u32>().ok()) {
            Some(attempts) => attempts.saturating_sub(1).min(self.reserved),
            None if failed => self.reserved,
            None => 0,
        };
        RetryOutcome {
            used,
            refund: self.reserved - used,
            denied_budget: failed
                && self.eligibility.allows_retry()
                && used == self.reserved
                && self.reserved < self.wanted,
            denied_not_idempotent: failed && !self.eligibility.allows_retry(),
        }
    }

    /// Why this hop is done with a failed request, if it is: the mark for the hops above.
    /// `upstream_final`: a trusted hop below marked it so (the router made no retry). A hop
    /// that did not use the retries it reserved (its `retry_on` does not cover the failure)
    /// is not done with it: the layer above may still retry.
    pub fn final_reason(
        &self,
        outcome: &RetryOutcome,
        failed: bool,
        upstream_final: bool,
    ) -> Option<FinalReason> {
        if !failed {
            None
        } else if upstream_final {
            Some(FinalReason::Upstream)
        } else if outcome.denied_not_idempotent {
            Some(FinalReason::NotIdempotent)
        } else if outcome.denied_budget {
            Some(FinalReason::Budget)
        } else if self.wanted > 0 && outcome.used == self.reserved {
            Some(FinalReason::Retried)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod plan_tests {
    use super::*;
    use crate::test_support::test;

    fn plan(eligibility: Eligibility, reserved: u32, wanted: u32) -> RetryPlan {
        RetryPlan {
            eligibility,
            reserved,
            wanted,
            reserved_in: 0,
        }
    }

    #[test]
    fn settles_refunds_and_denials() {
        let ok = plan(Eligibility::IdempotentMethod, 3, 3);
        assert_eq!(
            ok.settle(false, Some("1")),
            RetryOutcome {
                used: 0,
                refund: 3,
                denied_budget: false,
                denied_not_idempotent: false
            }
        );
        assert_eq!(ok.settle(false, Some("3")).refund, 1);
        assert_eq!(ok.settle(true, Some("4")).used, 3);
        assert!(
            !ok.settle(true, Some("4")).denied_budget,
            "full reservation: Envoy's own limit"
        );

        let short = plan(Eligibility::IdempotentMethod, 1, 3);
        let out = short.settle(true, Some("2"));
        assert_eq!((out.used, out.refund, out.denied_budget), (1, 0, true));
        assert!(!short.settle(false, Some("2")).denied_budget);

        let post = plan(Eligibility::NotIdempotent, 0, 3);
        assert!(post.settle(true, Some("1")).denied_not_idempotent);
        assert!(!post.settle(false, Some("1")).denied_not_idempotent);

        // No attempt count: guess from the status; never refund more than reserved.
        assert_eq!(ok.settle(false, None).refund, 3);
        assert_eq!(ok.settle(true, None).refund, 0);
        assert_eq!(ok.settle(false, Some("99")).used, 3);
        assert_eq!(ok.settle(false, Some("junk")).refund, 3);
    }

    #[test]
    fn a_hop_is_done_with_a_failure_only_when_it_used_what_it_may() {
        let full = plan(Eligibility::IdempotentMethod, 3, 3);
        let done = full.settle(true, Some("4"));
        assert_eq!(
            full.final_reason(&done, true, false),
            Some(FinalReason::Retried)
        );
        assert_eq!(
            full.final_reason(&done, false, false),
            None,
            "a success is not marked"
        );
        // The router stopped early (its retry_on does not cover this failure): not done here.
        let early = full.settle(true, Some("1"));
        assert_eq!(full.final_reason(&early, true, false), None);
        // A trusted hop below marked it: the router made no retry, and neither do hops above.
        assert_eq!(
            full.final_reason(&early, true, true),
            Some(FinalReason::Upstream)
        );
        let short = plan(Eligibility::IdempotentMethod, 1, 3);
        let denied = short.settle(true, Some("2"));
        assert_eq!(
            short.final_reason(&denied, true, false),
            Some(FinalReason::Budget)
        );
        let post = plan(Eligibility::NotIdempotent, 0, 0);
        let refused = post.settle(true, Some("1"));
        assert_eq!(
            post.final_reason(&refused, true, false),
            Some(FinalReason::NotIdempotent)
        );
        // A hop configured for no retries leaves them to the layer above.
        let none = plan(Eligibility::IdempotentMethod, 0, 0);
        let failed = none.settle(true, Some("1"));
        assert_eq!(none.final_reason(&failed, true, false), None);
    }
}
