//! Per-request adapter: route the request, count it, apply the policy set's decisions.
//!
//! Why so little here: decisions come from `ballast-policy`; this context routes once per
//! request with the fewest host calls, carries the chosen policy set and each policy's plan
//! through the request's phases, and performs what the plans say.

use crate::request::{property_text, HostRequest};
use crate::retry;
use crate::root::{now, Compiled};
use ballast_policy::config::PolicySetId;
use ballast_policy::retry::{AttemptMark, RetryPlan};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::rc::Rc;

/// One HTTP stream.
pub struct BallastHttp {
    compiled: Option<Rc<Compiled>>,
    policy_set: Option<PolicySetId>,
    retry_plan: Option<RetryPlan>,
    /// Whether this request is itself a retry (for load shedding).
    attempt: AttemptMark,
}

impl BallastHttp {
    /// A stream governed by `compiled` (`None` only if the root was never configured).
    pub fn new(compiled: Option<Rc<Compiled>>) -> Self {
        Self {
            compiled,
            policy_set: None,
            retry_plan: None,
            attempt: AttemptMark::First,
        }
    }
}

impl Context for BallastHttp {}

impl HttpContext for BallastHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(compiled) = self.compiled.clone() else {
            return Action::Continue;
        };
        let mut request = HostRequest::default();
        self.policy_set = compiled.config.routes.route(&mut request).policy_set();
        let Some(id) = self.policy_set else {
            compiled.metrics.unmatched_total.increment();
            return Action::Continue;
        };
        let (Some(set), Some(metrics)) = (
            compiled.config.policy_set(id),
            compiled.metrics.policy_sets.get(id.0),
        ) else {
            return Action::Continue;
        };
        metrics.requests_total.increment();
        if set.retry.is_some() {
            let trusted_peers = &compiled.config.trusted_peers;
            self.attempt = retry::observe_mark(metrics.retry.as_ref(), || {
                let address = property_text(&["source", "address"]);
                let principal = trusted_peers
                    .needs_principal()
                    .then(|| property_text(&["connection", "uri_san_peer_certificate"]))
                    .flatten();
                trusted_peers.is_trusted(address.as_deref(), principal.as_deref())
            });
            let budget = compiled.budgets.get(id.0).and_then(Option::as_ref);
            self.retry_plan = retry::on_request(
                set,
                budget,
                metrics.retry.as_ref(),
                &mut request,
                now(),
                compiled.config.dry_run,
            );
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let (Some(compiled), Some(id), Some(plan)) =
            (&self.compiled, self.policy_set, self.retry_plan.take())
        else {
            return Action::Continue;
        };
        let explain = compiled
            .config
            .policy_set(id)
            .and_then(|set| set.retry.as_ref())
            .and_then(|rules| rules.explain_header.as_deref());
        let metrics = compiled
            .metrics
            .policy_sets
            .get(id.0)
            .and_then(|m| m.retry.as_ref());
        let budget = compiled.budgets.get(id.0).and_then(Option::as_ref);
        retry::on_response(&plan, explain, budget, metrics, now());
        Action::Continue
    }
}
