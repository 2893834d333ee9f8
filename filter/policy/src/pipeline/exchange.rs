//! One request's passage through its policy set: what each stage decided at the request, and
//! what follows at the response and when the stream ends.
//!
//! Why a value per request: the limiter slot, the retry reservation and the attempt mark must
//! be settled exactly once whichever way the stream ends (answered, reset while queued, answered
//! locally). [`Exchange`] holds them and its methods are the only place that settles them.

use super::context::RequestContext;
use crate::concurrency::limiter::{Arrival, Limiter, OverLimit, StreamId, Ticket};
use crate::config::PolicySetId;
use crate::duration::Nanos;
use crate::env::Env;
use crate::reply::LocalReply;
use crate::retry::policy::{RetryPolicy, ATTEMPT_COUNT_HEADER, MAX_RETRIES_HEADER};
use crate::retry::{AttemptMark, RetryPlan};
use crate::routing::RequestView;
use crate::trust::TrustedPeers;
use std::cell::Cell;
use std::rc::Rc;

/// The response as the stages read it: headers by lower-case name (`:status` included).
pub trait ResponseView {
    /// A response header.
    fn header(&mut self, name: &str) -> Option<String>;
}

/// What the stages of one policy set can reach.
pub(super) struct Stages<'a> {
    pub env: Env<'a>,
    pub limiter: Option<&'a Limiter>,
    pub retry: Option<&'a RetryPolicy>,
    pub trusted_peers: &'a TrustedPeers,
    /// Only for the limiter's accounting (a request it would refuse is admitted and counted in
    /// flight, since it is); the pipeline drops every effect of a dry run itself.
    pub dry_run: bool,
}

/// What happens to the request after its request stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Forward it.
    Continue,
    /// Hold it: it waits for a concurrency slot (resumed by a later release or tick).
    Pause,
    /// Answer it with this reply and forward nothing.
    Reply(LocalReply),
}

/// Effects of the request stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestEffects {
    /// Request headers to set before forwarding.
    pub set_headers: Vec<(&'static str, String)>,
    /// Forward, hold or answer.
    pub verdict: Verdict,
}

/// Effects of the response stages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseEffects {
    /// Response headers to set.
    pub set_headers: Vec<(String, String)>,
    /// A waiting stream that now holds the slot this one freed: resume it.
    pub resume: Option<StreamId>,
}

/// Where a request stands with its policy set's concurrency limiter.
#[derive(Debug, Clone)]
enum Slot {
    /// No limiter, or already released.
    None,
    /// Holds a slot since this time.
    Held(Nanos),
    /// Waiting in the queue (the ticket says when it leaves, and how).
    Waiting(Rc<Cell<Ticket>>),
    /// Answered by the limiter with a local reply.
    Rejected,
}

impl Slot {
    /// Since when it holds a slot, if it does (a waiter admitted from the queue holds one too).
    fn held_since(&self) -> Option<Nanos> {
        match self {
            Slot::Held(since) => Some(*since),
            Slot::Waiting(ticket) => match ticket.get() {
                Ticket::Admitted(since) => Some(since),
                Ticket::Waiting | Ticket::Rejected => None,
            },
            Slot::None | Slot::Rejected => None,
        }
    }

    /// Whether the response is the limiter's own local reply.
    fn rejected(&self) -> bool {
        match self {
            Slot::Rejected => true,
            Slot::Waiting(ticket) => ticket.get() == Ticket::Rejected,
            Slot::None | Slot::Held(_) => false,
        }
    }

    /// Whether the request never reached the router (answered locally, or still queued).
    fn never_routed(&self) -> bool {
        match self {
            Slot::Waiting(ticket) => !matches!(ticket.get(), Ticket::Admitted(_)),
            Slot::Rejected => true,
            Slot::None | Slot::Held(_) => false,
        }
    }
}

/// One request's state across its policy set's stages.
#[derive(Debug, Clone)]
pub struct Exchange {
    policy_set: PolicySetId,
    stream: StreamId,
    slot: Slot,
    retry_plan: Option<RetryPlan>,
    /// Whether this request is itself a retry (for load shedding).
    attempt: AttemptMark,
    /// The response status, once seen (for a release at the end of the stream).
    status: Option<u16>,
}

impl Exchange {
    /// Runs the request stages (after routing) for `stream`.
    pub(super) fn begin(
        policy_set: PolicySetId,
        stages: &Stages<'_>,
        request: &mut dyn RequestView,
        stream: StreamId,
        now: Nanos,
    ) -> (Exchange, RequestEffects) {
        let mut exchange = Exchange {
            policy_set,
            stream,
            slot: Slot::None,
            retry_plan: None,
            attempt: AttemptMark::First,
            status: None,
        };
        let mut effects = RequestEffects {
            set_headers: Vec::new(),
            verdict: Verdict::Continue,
        };
        let mut context = RequestContext::new(request, stages.trusted_peers);
        if let Some(limiter) = stages.limiter {
            let arrival = limiter.arrive(stages.env, stream, now, stages.dry_run, || OverLimit {
                grpc: context.grpc(),
                remaining: limiter
                    .respects_deadlines()
                    .then(|| context.remaining())
                    .flatten(),
            });
            match arrival {
                Arrival::Admitted => exchange.slot = Slot::Held(now),
                Arrival::Rejected(reply) => {
                    exchange.slot = Slot::Rejected;
                    effects.verdict = Verdict::Reply(reply);
                    return (exchange, effects);
                }
                Arrival::Waiting(ticket) => {
                    exchange.slot = Slot::Waiting(ticket);
                    effects.verdict = Verdict::Pause;
                }
            }
        }
        if let Some(retry) = stages.retry {
            let marks = context.attempt_marks();
            exchange.attempt = retry.observe_mark(stages.env, marks, || context.peer_trusted());
            let decision = retry.on_request(stages.env, context.request(), now);
            if let Some(n) = decision.max_retries {
                effects
                    .set_headers
                    .push((MAX_RETRIES_HEADER, n.to_string()));
            }
            exchange.retry_plan = Some(decision.plan);
        }
        (exchange, effects)
    }

    /// The policy set the request was routed to.
    pub fn policy_set(&self) -> PolicySetId {
        self.policy_set
    }

    /// Whether the request is itself a retry, as a trusted peer marked it.
    pub fn attempt(&self) -> AttemptMark {
        self.attempt
    }

    /// Settles the retry plan and, when RTTs end at the headers (or the response has no body),
    /// releases the slot.
    pub(super) fn on_response_headers(
        &mut self,
        stages: &Stages<'_>,
        response: &mut dyn ResponseView,
        end_of_stream: bool,
        now: Nanos,
    ) -> ResponseEffects {
        let mut effects = ResponseEffects::default();
        if self.retry_plan.is_none() && matches!(self.slot, Slot::None) {
            return effects;
        }
        let status = response
            .header(":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        self.status = Some(status);
        let local_reply = self.slot.rejected();
        if let (Some(plan), Some(retry)) = (self.retry_plan.take(), stages.retry) {
            if local_reply {
                // No attempt reached the router: give the whole reservation back.
                retry.never_routed(stages.env, &plan, now);
            } else {
                let attempts = response.header(ATTEMPT_COUNT_HEADER);
                if let Some(explained) =
                    retry.on_response(stages.env, &plan, status, attempts.as_deref(), now)
                {
                    effects
                        .set_headers
                        .push((explained.header, explained.value));
                }
            }
        }
        let at_headers = stages.limiter.is_some_and(Limiter::measures_at_headers);
        if !local_reply && (at_headers || end_of_stream) {
            effects.resume = self.release(stages, Some(status), now);
        }
        effects
    }

    /// The response's last body chunk or its trailers: releases a slot still held.
    pub(super) fn on_response_end(&mut self, stages: &Stages<'_>, now: Nanos) -> Option<StreamId> {
        self.slot.held_since()?;
        self.release(stages, Some(self.status.unwrap_or(0)), now)
    }

    /// The stream is gone. A request that never reached the router gives its whole retry
    /// reservation back (one reset after admission refunds nothing: its attempts are unknown);
    /// a slot still held is freed without a sample.
    pub(super) fn on_done(&mut self, stages: &Stages<'_>, now: Nanos) -> Option<StreamId> {
        if self.slot.never_routed() {
            if let (Some(plan), Some(retry)) = (self.retry_plan.take(), stages.retry) {
                retry.never_routed(stages.env, &plan, now);
            }
        }
        self.release(stages, None, now)
    }

    /// Frees the slot (with an RTT sample when `status` is known) or leaves the queue.
    fn release(
        &mut self,
        stages: &Stages<'_>,
        status: Option<u16>,
        now: Nanos,
    ) -> Option<StreamId> {
        let limiter = stages.limiter?;
        if let Some(since) = self.slot.held_since() {
            self.slot = Slot::None;
            let rtt = status.map(|_| now.saturating_sub(since));
            return limiter.release(stages.env, now, rtt, status.unwrap_or(0));
        }
        if let Slot::Waiting(ticket) = &self.slot {
            if ticket.get() == Ticket::Waiting {
                limiter.abandon(self.stream);
            }
            self.slot = Slot::None;
        }
        None
    }
}
