//! One policy set's retry policy as a worker VM runs it: the decision at the request (how many
//! retries Envoy's router may make, through `x-envoy-max-retries`) and the settlement at the
//! response (refund of unused reservations, metrics, the explain header), with the budget kept
//! across workers in a [`SharedStore`](crate::store::SharedStore).
//!
//! Mechanism (measured in Envoy 1.40, see README "Retry budgets"): the router honours
//! `x-envoy-max-retries` over the route's `num_retries`; with
//! `include_attempt_count_in_response: true` the final response carries `x-envoy-attempt-count`,
//! and the unused part of the reservation is refunded. Reserving up front is what makes the
//! bound hold across workers: a retry can only happen if its token was taken from the shared
//! budget first. Tokens are taken in small batches per worker and first attempts are counted
//! locally ([`super::lease`]); what a worker holds and owes goes back at least once a second
//! ([`RetryPolicy::flush`]).

use super::shared::SharedBudget;
use super::{AttemptMark, BudgetParams, Eligibility, FinalReason, RetryPlan, RetryRules};
use crate::duration::Nanos;
use crate::env::Env;
use crate::metrics::Metric;
use crate::routing::RequestView;
use crate::store::Update;

/// Request header through which Envoy's router takes the retry count.
pub const MAX_RETRIES_HEADER: &str = "x-envoy-max-retries";
/// Attempt count: on requests from Envoy's router upstream, on responses when enabled.
pub const ATTEMPT_COUNT_HEADER: &str = "x-envoy-attempt-count";
/// gRPC's retry mark on requests.
pub const GRPC_PREVIOUS_ATTEMPTS_HEADER: &str = "grpc-previous-rpc-attempts";

/// What to do with a request's retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryDecision {
    /// Carried to the response.
    pub plan: RetryPlan,
    /// Set `x-envoy-max-retries` to this (`None`: leave the route's retry policy alone).
    pub max_retries: Option<u32>,
}

/// What the final response says, as the pipeline read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinalResponse<'a> {
    /// A failure a proxy could retry (see [`super::chain::is_retriable_failure`]).
    pub failed: bool,
    /// Its `x-envoy-attempt-count`.
    pub attempt_count: Option<&'a str>,
    /// A trusted hop below marked it final.
    pub upstream_final: bool,
}

/// What settling a request's retries asks of its response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settlement {
    /// The explain header, when configured and a retry was refused.
    pub explanation: Option<Explanation>,
    /// Mark the response final for the hops above, for this reason.
    pub mark: Option<FinalReason>,
}

/// A response header explaining why a failed request was not retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The configured header name.
    pub header: String,
    /// e.g. `retry-denied=budget; retries=1`.
    pub value: String,
}

/// One policy set's retry rules and budget.
#[derive(Debug)]
pub struct RetryPolicy {
    rules: RetryRules,
    budget: Option<SharedBudget>,
}

impl RetryPolicy {
    /// The policy of a set with `rules` and, if it has one, a budget stored under
    /// `<prefix>.retry_budget.<set>` (created if missing).
    pub fn open(
        env: Env<'_>,
        prefix: &str,
        set_name: &str,
        rules: RetryRules,
        budget: Option<BudgetParams>,
    ) -> RetryPolicy {
        let budget = budget.map(|params| {
            let key = format!("{prefix}.retry_budget.{set_name}");
            SharedBudget::open(env, key, params, rules.max_retries_per_request)
        });
        RetryPolicy { rules, budget }
    }

    /// Counts a request's retry mark, as the pipeline read it (believed only from trusted
    /// peers; see `pipeline::context`).
    pub fn count_mark(&self, env: Env<'_>, mark: AttemptMark) {
        match mark {
            AttemptMark::Retry(_) => env.metrics.add(Metric::RetriedRequestsReceived, 1),
            AttemptMark::Malformed => env.metrics.add(Metric::RetryMarksMalformed, 1),
            AttemptMark::First => {}
        }
    }

    /// Whether the set has a retry budget (else only eligibility is enforced).
    pub fn has_budget(&self) -> bool {
        self.budget.is_some()
    }

    /// Decides a request's retries: eligibility, the reservation from the budget, and the
    /// `x-envoy-max-retries` value (none without a budget for an idempotent request, whose
    /// route then retries as configured).
    /// `peer_trusted` is asked only for a request whose method alone does not allow retries
    /// and that carries the idempotency key: a key is believed only from a trusted peer, unless
    /// `idempotency_key_from_untrusted` says otherwise.
    pub fn on_request(
        &self,
        env: Env<'_>,
        request: &mut dyn RequestView,
        peer_trusted: impl FnOnce(&mut dyn RequestView) -> bool,
        now: Nanos,
    ) -> RetryDecision {
        let mut key_untrusted = false;
        let eligibility = self.rules.eligibility_of(request, |request| {
            let believed = peer_trusted(request);
            key_untrusted = !believed;
            believed
        });
        if key_untrusted {
            env.metrics.add(Metric::RetryIdempotencyKeysUntrusted, 1);
        }
        let wanted = if eligibility.allows_retry() {
            self.rules.max_retries_per_request
        } else {
            0
        };
        let (reserved, reserved_in) = match &self.budget {
            Some(budget) if wanted > 0 => match budget.reserve(env, now, wanted) {
                Update::Stored(grant) => grant,
                Update::Contended | Update::Failed => {
                    env.metrics.add(Metric::RetryBudgetContended, 1);
                    (0, 0)
                }
            },
            Some(budget) => {
                budget.count_first();
                (0, 0)
            }
            None => (wanted, 0),
        };
        let enforce = self.budget.is_some() || !eligibility.allows_retry();
        RetryDecision {
            plan: RetryPlan {
                eligibility,
                reserved,
                wanted,
                reserved_in,
            },
            max_retries: enforce.then_some(reserved),
        }
    }

    /// Settles a plan at the final response: refunds unused retries, counts the failure for
    /// the floor, counts, decides the mark for the hops above and explains a refusal if
    /// configured.
    pub fn on_response(
        &self,
        env: Env<'_>,
        plan: &RetryPlan,
        response: FinalResponse<'_>,
        now: Nanos,
    ) -> Settlement {
        let outcome = plan.settle(response.failed, response.attempt_count);
        if let Some(budget) = &self.budget {
            let settled =
                budget.settle(env, now, plan.reserved_in, outcome.refund, response.failed);
            if settled.stored().is_none() {
                env.metrics.add(Metric::RetryBudgetContended, 1);
            }
        }
        env.metrics
            .add(Metric::RetriesAllowed, u64::from(outcome.used));
        if outcome.denied_budget {
            env.metrics.add(Metric::RetriesDeniedBudget, 1);
        }
        if outcome.denied_not_idempotent {
            env.metrics.add(Metric::RetriesDeniedNotIdempotent, 1);
        }
        let upstream_final = response.failed && response.upstream_final;
        if upstream_final {
            env.metrics.add(Metric::RetryMarksHonoured, 1);
            // What the router would have retried without the mark.
            env.metrics
                .add(Metric::RetriesSaved, u64::from(outcome.refund));
        }
        let mark = if self.rules.chain.mark_final_failures {
            plan.final_reason(&outcome, response.failed, upstream_final)
        } else {
            None
        };
        let reason = if upstream_final {
            Some("upstream-final")
        } else if outcome.denied_budget {
            Some("budget")
        } else if outcome.denied_not_idempotent {
            Some("not-idempotent")
        } else {
            None
        };
        let explanation = match (&self.rules.explain_header, reason) {
            (Some(header), Some(reason)) => Some(Explanation {
                header: header.clone(),
                value: format!("retry-denied={reason}; retries={}", outcome.used),
            }),
            _ => None,
        };
        Settlement { explanation, mark }
    }

    /// The chain rules (marking final failures, stripping marks toward untrusted peers).
    pub fn chain(&self) -> super::ChainRules {
        self.rules.chain
    }

    /// A request that never reached the router (answered locally, or cancelled while queued)
    /// gives its whole reservation back.
    pub fn never_routed(&self, env: Env<'_>, plan: &RetryPlan, now: Nanos) {
        if let Some(budget) = &self.budget {
            let _ = budget.settle(env, now, plan.reserved_in, plan.reserved, false);
        }
    }

    /// Once a second: writes first attempts counted locally and sets the budget gauge.
    pub fn flush(&self, env: Env<'_>, now: Nanos) {
        if let Some(available) = self.budget.as_ref().and_then(|b| b.flush(env, now)) {
            env.metrics.set(Metric::RetryBudgetAvailable, available);
        }
    }
}

impl RetryRules {
    /// Whether a request may be retried; its idempotency key header is read only when the
    /// method alone does not allow it, and `peer_trusted` asked only when the key is there
    /// (and keys are not believed from every peer): a key makes a request retryable, and a
    /// hint from a peer that is not trusted must never buy retries.
    pub fn eligibility_of(
        &self,
        request: &mut dyn RequestView,
        peer_trusted: impl FnOnce(&mut dyn RequestView) -> bool,
    ) -> Eligibility {
        let method_allows = self.idempotent_method(request.method());
        self.decide(method_allows, || {
            let present = self
                .idempotency_key_header
                .as_deref()
                .is_some_and(|name| request.header(name).is_some());
            present && (self.idempotency_key_from_untrusted || peer_trusted(request))
        })
    }
}
