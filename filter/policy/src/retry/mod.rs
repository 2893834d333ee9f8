//! Retries: which requests may be retried, how many retries the budget allows, and how a
//! request that is itself a retry is recognised.
//!
//! Why: with three hops each retrying three times, one failing leaf sees 4³ = 64× its load.
//! Retrying only what is safe to repeat (idempotent methods, or requests carrying an
//! idempotency key) and capping retries at a ratio of real traffic ([`budget`]) keeps retries
//! a help during blips instead of a storm during outages.

pub mod budget;
mod marks;

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
            max_retries_per_request: 3,
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
        if method.is_some_and(|m| self.idempotent_methods.iter().any(|i| i == m)) {
            Eligibility::IdempotentMethod
        } else if has_key && self.idempotency_key_header.is_some() {
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
