//! Retry budgets and idempotent retries, enforced through Envoy's router.
//!
//! Mechanism (measured in Envoy 1.40, see README "Retry budgets"): the filter sets
//! `x-envoy-max-retries` on each request to the number of retries it reserved from the budget
//! (0 for requests that are not idempotent); the router honours that header over the route's
//! `num_retries`. With `include_attempt_count_in_response: true` on the virtual host, the final
//! response carries `x-envoy-attempt-count`, and the unused part of the reservation is refunded.
//! Reserving up front is what makes the bound hold across workers: a retry can only happen if
//! its token was taken from the shared budget first.
//!
//! The budget is one per policy set per Envoy process, in shared data under
//! `ballast.retry_budget.<policy set>`, updated with CAS. First attempts of requests that need no
//! reservation are counted locally and flushed once a second from `on_tick`.

use crate::metrics::RetryMetrics;
use crate::request::{request_header, response_header, HostRequest};
use crate::shared::{self, Update};
use ballast_policy::config::PolicySet;
use ballast_policy::duration::Nanos;
use ballast_policy::retry::{attempt_of, AttemptMark, BudgetParams, BudgetState, RetryPlan};
use ballast_policy::routing::RequestView;
use proxy_wasm::hostcalls;
use proxy_wasm::types::MapType;
use std::cell::Cell;

/// Request header through which Envoy's router takes the retry count.
pub const MAX_RETRIES_HEADER: &str = "x-envoy-max-retries";
/// Attempt count: on requests from Envoy's router upstream, on responses when enabled.
pub const ATTEMPT_COUNT_HEADER: &str = "x-envoy-attempt-count";
/// gRPC's retry mark on requests.
pub const GRPC_PREVIOUS_ATTEMPTS_HEADER: &str = "grpc-previous-rpc-attempts";

/// One policy set's budget as this VM sees it.
#[derive(Debug)]
pub struct Budget {
    key: String,
    params: BudgetParams,
    /// First attempts counted here but not yet written to shared data.
    pending_firsts: Cell<u32>,
}

impl Budget {
    /// The budget of policy set `set_name` of plugin instance `scope` (its root id, so two
    /// filter configurations sharing a VM do not share state); creates the shared entry.
    pub fn open(scope: &str, set_name: &str, params: BudgetParams) -> Budget {
        let key = format!("ballast.{scope}.retry_budget.{set_name}");
        shared::ensure(&key, &BudgetState::default().encode());
        Budget {
            key,
            params,
            pending_firsts: Cell::new(0),
        }
    }

    /// Counts a first attempt that reserves nothing (flushed later).
    pub fn count_first(&self) {
        self.pending_firsts
            .set(self.pending_firsts.get().saturating_add(1));
    }

    fn state(bytes: Option<&[u8]>) -> BudgetState {
        bytes.and_then(BudgetState::decode).unwrap_or_default()
    }

    /// Counts this first attempt (and pending ones) and reserves up to `wanted` retries;
    /// returns the grant and the budget second it was booked in.
    pub fn reserve(&self, now: Nanos, wanted: u32) -> Update<(u32, u64)> {
        let pending = self.pending_firsts.get().saturating_add(1);
        let result = shared::update(&self.key, |bytes| {
            let mut state = Self::state(bytes);
            state.record_firsts(&self.params, now, pending);
            let grant = state.withdraw_at(&self.params, now, wanted);
            (state.encode(), grant)
        });
        match result {
            Update::Stored(_) => self.pending_firsts.set(0),
            // The first attempt still counts: keep it for the next flush.
            Update::Contended | Update::Failed => self.count_first(),
        }
        result
    }

    /// Gives back `n` unused retries to the bucket `reserved_in` they came from.
    pub fn refund(&self, now: Nanos, reserved_in: u64, n: u32) -> Update<()> {
        if n == 0 {
            return Update::Stored(());
        }
        shared::update(&self.key, |bytes| {
            let mut state = Self::state(bytes);
            state.refund(&self.params, now, reserved_in, n);
            (state.encode(), ())
        })
    }

    /// Writes pending first attempts (if any) and returns the whole retries available now.
    pub fn flush(&self, now: Nanos) -> Option<u64> {
        let pending = self.pending_firsts.get();
        if pending == 0 {
            let state = Self::state(shared::read(&self.key).as_deref());
            let available = state.available_milli(&self.params, now).max(0) / 1_000;
            return u64::try_from(available).ok();
        }
        let result = shared::update(&self.key, |bytes| {
            let mut state = Self::state(bytes);
            state.record_firsts(&self.params, now, pending);
            let available = state.available_milli(&self.params, now).max(0) / 1_000;
            (state.encode(), available)
        });
        match result {
            Update::Stored(available) => {
                self.pending_firsts.set(0);
                u64::try_from(available).ok()
            }
            Update::Contended | Update::Failed => None,
        }
    }
}

/// Decides a request's retries in `on_http_request_headers` and sets `x-envoy-max-retries`.
/// Returns the plan to settle at the response, or `None` when the set has no retry rules.
pub fn on_request(
    set: &PolicySet,
    budget: Option<&Budget>,
    metrics: Option<&RetryMetrics>,
    request: &mut HostRequest,
    now: Nanos,
    dry_run: bool,
) -> Option<RetryPlan> {
    let rules = set.retry.as_ref()?;
    let method_idempotent = request
        .method()
        .is_some_and(|m| rules.idempotent_methods.iter().any(|i| i == m));
    // The key header is read only when the method alone does not allow retries.
    let has_key = !method_idempotent
        && match &rules.idempotency_key_header {
            Some(name) => request.header(name).is_some(),
            None => false,
        };
    let eligibility = rules.eligibility(request.method(), has_key);
    let wanted = if eligibility.allows_retry() {
        rules.max_retries_per_request
    } else {
        0
    };
    let (reserved, reserved_in) = match budget {
        Some(budget) if wanted > 0 => match budget.reserve(now, wanted) {
            Update::Stored(grant) => grant,
            Update::Contended | Update::Failed => {
                if let Some(m) = metrics {
                    m.budget_contended.increment();
                }
                (0, 0)
            }
        },
        Some(budget) => {
            budget.count_first();
            (0, 0)
        }
        None => (wanted, 0),
    };
    if !dry_run && (budget.is_some() || !eligibility.allows_retry()) {
        let value = reserved.to_string();
        let _ = hostcalls::set_map_value(
            MapType::HttpRequestHeaders,
            MAX_RETRIES_HEADER,
            Some(&value),
        );
    }
    Some(RetryPlan {
        eligibility,
        reserved,
        wanted,
        reserved_in,
    })
}

/// Settles a plan in `on_http_response_headers`: refunds, metrics, explanation header.
pub fn on_response(
    plan: &RetryPlan,
    status: u16,
    explain_header: Option<&str>,
    budget: Option<&Budget>,
    metrics: Option<&RetryMetrics>,
    now: Nanos,
) {
    let attempts = response_header(ATTEMPT_COUNT_HEADER);
    let outcome = plan.settle(status, attempts.as_deref());
    if let Some(budget) = budget {
        if matches!(
            budget.refund(now, plan.reserved_in, outcome.refund),
            Update::Contended | Update::Failed
        ) {
            if let Some(m) = metrics {
                m.budget_contended.increment();
            }
        }
    }
    if let Some(m) = metrics {
        m.allowed.add(u64::from(outcome.used));
        if outcome.denied_budget {
            m.denied_budget.increment();
        }
        if outcome.denied_not_idempotent {
            m.denied_not_idempotent.increment();
        }
    }
    if let Some(header) = explain_header {
        let reason = if outcome.denied_budget {
            Some("budget")
        } else if outcome.denied_not_idempotent {
            Some("not-idempotent")
        } else {
            None
        };
        if let Some(reason) = reason {
            let value = format!("retry-denied={reason}; retries={}", outcome.used);
            let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, header, Some(&value));
        }
    }
}

/// Recognises a request that is itself a retry and counts it. Marks are believed only from
/// trusted peers (`is_trusted` is asked only when a mark is present).
pub fn observe_mark(
    metrics: Option<&RetryMetrics>,
    is_trusted: impl FnOnce() -> bool,
) -> AttemptMark {
    let envoy = request_header(ATTEMPT_COUNT_HEADER);
    let grpc = request_header(GRPC_PREVIOUS_ATTEMPTS_HEADER);
    if envoy.is_none() && grpc.is_none() {
        return AttemptMark::First;
    }
    if !is_trusted() {
        return AttemptMark::First;
    }
    let mark = attempt_of(envoy.as_deref(), grpc.as_deref());
    if let Some(m) = metrics {
        match mark {
            AttemptMark::Retry(_) => m.received_retries.increment(),
            AttemptMark::Malformed => m.malformed_marks.increment(),
            AttemptMark::First => {}
        }
    }
    mark
}
