//! Per-request adapter: route the request, count it, apply the policy set's decisions.
//!
//! Why so little here: decisions come from `ballast-policy`; this context routes once per
//! request with the fewest host calls, carries the chosen policy set and each policy's plan
//! through the request's phases, and performs what the plans say.

use crate::concurrency::{Arrival, OverLimit, Ticket};
use crate::request::{property_text, response_header, HostRequest};
use crate::retry;
use crate::root::{now, Compiled};
use ballast_policy::config::{Measure, PolicySetId};
use ballast_policy::deadline;
use ballast_policy::duration::Nanos;
use ballast_policy::retry::{AttemptMark, RetryPlan};
use ballast_policy::routing::RequestView;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::cell::Cell;
use std::rc::Rc;

/// Where this request stands with its policy set's concurrency limiter.
#[derive(Debug, Clone)]
enum Slot {
    /// No limiter, or already released.
    None,
    /// Holds a slot since this time.
    Held(Nanos),
    /// Waiting in the queue.
    Waiting(Rc<Cell<Ticket>>),
    /// Rejected by the limiter with a local reply.
    Rejected,
}

/// One HTTP stream.
pub struct BallastHttp {
    compiled: Option<Rc<Compiled>>,
    context_id: u32,
    policy_set: Option<PolicySetId>,
    retry_plan: Option<RetryPlan>,
    slot: Slot,
    /// Whether this request is itself a retry (for load shedding).
    attempt: AttemptMark,
    /// The response status, once seen (for a release at end of stream).
    status: Option<u16>,
}

impl BallastHttp {
    /// A stream governed by `compiled` (`None` only if the root was never configured).
    pub fn new(compiled: Option<Rc<Compiled>>, context_id: u32) -> Self {
        Self {
            compiled,
            context_id,
            policy_set: None,
            retry_plan: None,
            slot: Slot::None,
            attempt: AttemptMark::First,
            status: None,
        }
    }

    /// The slot this request holds, if any (a waiter admitted from the queue holds one too).
    fn held_since(&self) -> Option<Nanos> {
        match &self.slot {
            Slot::Held(since) => Some(*since),
            Slot::Waiting(ticket) => match ticket.get() {
                Ticket::Admitted(since) => Some(since),
                Ticket::Waiting | Ticket::Rejected => None,
            },
            Slot::None | Slot::Rejected => None,
        }
    }

    /// Whether the response is the limiter's own local reply.
    fn rejected_by_limiter(&self) -> bool {
        match &self.slot {
            Slot::Rejected => true,
            Slot::Waiting(ticket) => ticket.get() == Ticket::Rejected,
            Slot::None | Slot::Held(_) => false,
        }
    }

    /// Releases the slot (with an RTT sample when `status` is known).
    fn release(&mut self, status: Option<u16>) {
        let (Some(compiled), Some(id)) = (&self.compiled, self.policy_set) else {
            return;
        };
        let Some(limiter) = compiled.limiters.get(id.0).and_then(Option::as_ref) else {
            return;
        };
        if let Some(since) = self.held_since() {
            let now = now();
            let resumed = limiter.release(
                now,
                status.map(|_| now.saturating_sub(since)),
                status.unwrap_or(0),
            );
            if resumed {
                // Resuming a waiter switched the effective context: switch back.
                let _ = hostcalls::set_effective_context(self.context_id);
            }
            self.slot = Slot::None;
        } else if let Slot::Waiting(ticket) = &self.slot {
            if ticket.get() == Ticket::Waiting {
                limiter.abandon(self.context_id);
            }
            self.slot = Slot::None;
        }
    }
}

/// What the limiter asks of a request it cannot admit at once.
fn over_limit(request: &mut HostRequest, read_deadline: bool) -> OverLimit {
    let grpc = request
        .header("content-type")
        .is_some_and(|ct| ct.starts_with("application/grpc"));
    let remaining = if read_deadline {
        let grpc_timeout = request.header(deadline::GRPC_TIMEOUT).map(str::to_owned);
        let envoy_expected = request.header(deadline::ENVOY_EXPECTED_TIMEOUT_MS);
        deadline::remaining(grpc_timeout.as_deref(), envoy_expected)
    } else {
        None
    };
    OverLimit { grpc, remaining }
}

fn response_status() -> u16 {
    response_header(":status")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

impl Context for BallastHttp {
    fn on_done(&mut self) -> bool {
        // A request that never reached the router (cancelled while queued, or rejected) gives
        // its whole retry reservation back; one reset after admission refunds nothing (its
        // attempts are unknown).
        let never_routed = match &self.slot {
            Slot::Waiting(ticket) => !matches!(ticket.get(), Ticket::Admitted(_)),
            Slot::Rejected => true,
            Slot::None | Slot::Held(_) => false,
        };
        if let (true, Some(plan), Some(compiled), Some(id)) = (
            never_routed,
            self.retry_plan.take(),
            &self.compiled,
            self.policy_set,
        ) {
            if let Some(budget) = compiled.budgets.get(id.0).and_then(Option::as_ref) {
                let _ = budget.refund(now(), plan.reserved_in, plan.reserved);
            }
        }
        // The stream ended without a response (reset, cancelled): free the slot, no sample.
        self.release(None);
        true
    }
}

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
        let now = now();
        if let Some(limiter) = compiled.limiters.get(id.0).and_then(Option::as_ref) {
            let arrival = limiter.arrive(self.context_id, now, compiled.config.dry_run, || {
                over_limit(&mut request, limiter.respects_deadlines())
            });
            match arrival {
                Arrival::Admitted => self.slot = Slot::Held(now),
                Arrival::Rejected => {
                    self.slot = Slot::Rejected;
                    return Action::Pause;
                }
                Arrival::Waiting(ticket) => self.slot = Slot::Waiting(ticket),
            }
        }
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
                now,
                compiled.config.dry_run,
            );
        }
        if matches!(self.slot, Slot::Waiting(_)) {
            return Action::Pause;
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(compiled) = self.compiled.clone() else {
            return Action::Continue;
        };
        let Some(id) = self.policy_set else {
            return Action::Continue;
        };
        if self.retry_plan.is_none() && matches!(self.slot, Slot::None) {
            return Action::Continue;
        }
        let status = response_status();
        self.status = Some(status);
        let local_reject = self.rejected_by_limiter();
        if let Some(plan) = self.retry_plan.take() {
            let budget = compiled.budgets.get(id.0).and_then(Option::as_ref);
            if local_reject {
                // No attempt reached the router: give the whole reservation back.
                if let Some(budget) = budget {
                    let _ = budget.refund(now(), plan.reserved_in, plan.reserved);
                }
            } else {
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
                retry::on_response(&plan, status, explain, budget, metrics, now());
            }
        }
        let measure_at_headers = compiled
            .config
            .policy_set(id)
            .and_then(|set| set.concurrency.as_ref())
            .is_some_and(|c| c.measure == Measure::Headers);
        if !local_reject && (measure_at_headers || end_of_stream) {
            self.release(Some(status));
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, _body_size: usize, end_of_stream: bool) -> Action {
        if end_of_stream && self.held_since().is_some() {
            self.release(Some(self.status.unwrap_or(0)));
        }
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.held_since().is_some() {
            self.release(Some(self.status.unwrap_or(0)));
        }
        Action::Continue
    }
}
