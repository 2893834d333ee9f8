//! Retries: which requests may be retried, how many retries the budget allows, and how a
//! request that is itself a retry is recognised.
//!
//! Why: with three hops each retrying three times, one failing leaf sees 4³ = 64× its load.
//! Retrying only what is safe to repeat (idempotent methods, or requests carrying an
//! idempotency key) and capping retries at a ratio of real traffic ([`budget`]) keeps retries
//! a help during blips instead of a storm during outages.

pub mod budget;
pub(crate) mod marks;
pub mod policy;

pub use budget::{BudgetParams, BudgetState};
pub use marks::{attempt_of, AttemptMark};

/// Methods that are safe to repeat by default (RFC 9110 §9.2.2, minus nothing).
pub const DEFAULT_IDEMPOTENT_METHODS: &[&str] =
    &["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"];

/// The validated `retry` section of a policy set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryRules {
    /// Methods that may be retried.
    pub idempotent_methods: Vec<String>,
    /// A request carrying this header may be retried whatever its method.
    pub idempotency_key_header: Option<String>,
    /// Most retries ballast lets Envoy make for one request.
    pub max_retries_per_request: u32,
    /// Response header explaining a refused retry (opt-in).
    pub explain_header: Option<String>,
}

impl Default for RetryRules {
    fn default() -> Self {
        RetryRules {
            idempotent_methods: DEFAULT_IDEMPOTENT_METHODS
                .iter()
                .map(|m| m.to_string())
                .collect(),
            idempotency_key_header: None,
            // Envoy's own default `num_retries`; set it to the route's value.
            max_retries_per_request: 1,
            explain_header: None,
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
    /// Settles the plan given the final status and `x-envoy-attempt-count` of the response.
    /// Without an attempt count (the virtual host lacks `include_attempt_count_in_response`),
    /// a status below 500 is taken as "no retry used" and a 5xx as "all reserved used".
    pub fn settle(&self, status: u16, attempt_count: Option<&str>) -> RetryOutcome {
        let failed = status >= 500;
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
            ok.settle(200, Some("1")),
            RetryOutcome {
                used: 0,
                refund: 3,
                denied_budget: false,
                denied_not_idempotent: false
            }
        );
        assert_eq!(ok.settle(200, Some("3")).refund, 1);
        assert_eq!(ok.settle(503, Some("4")).used, 3);
        assert!(
            !ok.settle(503, Some("4")).denied_budget,
            "full reservation: Envoy's own limit"
        );

        let short = plan(Eligibility::IdempotentMethod, 1, 3);
        let out = short.settle(503, Some("2"));
        assert_eq!((out.used, out.refund, out.denied_budget), (1, 0, true));
        assert!(!short.settle(200, Some("2")).denied_budget);

        let post = plan(Eligibility::NotIdempotent, 0, 3);
        assert!(post.settle(503, Some("1")).denied_not_idempotent);
        assert!(!post.settle(404, Some("1")).denied_not_idempotent);

        // No attempt count: guess from the status; never refund more than reserved.
        assert_eq!(ok.settle(200, None).refund, 3);
        assert_eq!(ok.settle(502, None).refund, 0);
        assert_eq!(ok.settle(200, Some("99")).used, 3);
        assert_eq!(ok.settle(200, Some("junk")).refund, 3);
    }
}
