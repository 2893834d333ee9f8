//! One request's passage through its policy set: what each stage decided at the request, and
//! what follows at the response and when the stream ends.
//!
//! Why a value per request: the limiter slot, the retry reservation and the attempt mark must
//! be settled exactly once whichever way the stream ends (answered, reset while queued, answered
//! locally). [`Exchange`] holds them and its methods are the only place that settles them.

use super::context::RequestContext;
use super::retry_response::settle_retries;
use crate::concurrency::limiter::{Arrival, Limiter, OverLimit, Refusal, StreamId, Ticket};
use crate::config::{PolicySetId, PriorityClasses, PriorityId};
use crate::deadline::stage::{
    Arrival as DeadlineArrival, DeadlinePolicy, Forwarding, ResponseFacts,
};
use crate::deadline::{Deadline, DeadlineConfig};
use crate::duration::Nanos;
use crate::env::Env;
use crate::headers::{HeaderEdit, HeaderName};
use crate::metrics::{ClassMetric, Metric, ShedReason};
use crate::reply::LocalReply;
use crate::retry::policy::{RetryPolicy, MAX_RETRIES_HEADER};
use crate::retry::{AttemptMark, RetryPlan};
use crate::routing::RequestView;
use crate::shedding::classify::Ignored;
use crate::shedding::stage::SheddingPolicy;
use crate::shedding::Rank;
use crate::trust::TrustedPeers;
use std::cell::Cell;
use std::rc::Rc;

/// The response as the stages read it: headers by lower-case name (`:status` included), and
/// the peers on either side (asked only for a response that carries or gets a final mark).
pub trait ResponseView {
    /// A response header.
    fn header(&mut self, name: &str) -> Option<String>;
    /// The upstream host that answered (Envoy's `upstream.address`), to trust its marks.
    fn upstream_address(&mut self) -> Option<String> {
        None
    }
    /// The URI SAN of the upstream's certificate (`upstream.uri_san_peer_certificate`).
    fn upstream_principal(&mut self) -> Option<String> {
        None
    }
    /// The downstream peer (`source.address`), to decide whether marks may reach it.
    fn downstream_address(&mut self) -> Option<String> {
        None
    }
    /// The URI SAN of the downstream peer's certificate (`connection.uri_san_peer_certificate`).
    fn downstream_principal(&mut self) -> Option<String> {
        None
    }
}

/// What the stages of one policy set can reach.
pub(super) struct Stages<'a> {
    pub env: Env<'a>,
    pub limiter: Option<&'a Limiter>,
    pub retry: Option<&'a RetryPolicy>,
    pub deadline: Option<&'a DeadlinePolicy>,
    /// How the request's deadline is read: the deadline section's, or the defaults (for the
    /// concurrency queue of a set without one).
    pub deadline_rules: &'a DeadlineConfig,
    pub shedding: Option<&'a SheddingPolicy>,
    pub priority: &'a PriorityClasses,
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
    /// Request headers to set or remove before forwarding.
    pub headers: Vec<HeaderEdit>,
    /// Forward, hold or answer.
    pub verdict: Verdict,
}

/// Effects of the response stages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseEffects {
    /// Response headers to set or remove.
    pub headers: Vec<HeaderEdit>,
    /// A waiting stream that now holds the slot this one freed: resume it.
    pub resume: Option<Resume>,
}

/// A waiting request that leaves the queue for the upstream: edit its headers, then resume it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    /// The stream to resume.
    pub stream: StreamId,
    /// Its request headers to set or remove first (the deadline left now, after its wait).
    pub headers: Vec<HeaderEdit>,
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
    /// The request's deadline, when its policy set propagates deadlines.
    deadline: Option<Deadline>,
    /// Whether the request is gRPC (known when it has a deadline, or its answer is throttling's).
    grpc: bool,
    /// Its shedding rank, when its policy set sheds.
    rank: Option<Rank>,
    /// Whether throttling waits for the upstream's answer to this request.
    throttle_answer: bool,
}

/// When a waiter must leave the queue: its deadline less what the deadline stage keeps back
/// (`offset`, `min_useful`), or without that stage the deadline as the request states it.
fn queue_deadline(
    stages: &Stages<'_>,
    context: &mut RequestContext<'_>,
    deadline: Option<Deadline>,
    now: Nanos,
) -> Option<Nanos> {
    match stages.deadline {
        Some(policy) => deadline.map(|d| policy.forward_by(d)),
        None => context
            .deadline(stages.deadline_rules, now)
            .deadline
            .map(|d| d.at),
    }
}

/// Which class-metric reason a limiter refusal counts as (a deadline drop is not shedding).
pub(super) fn shed_reason(why: Refusal) -> Option<ShedReason> {
    match why {
        Refusal::Limit => Some(ShedReason::Concurrency),
        Refusal::Displaced => Some(ShedReason::Displaced),
        Refusal::Deadline => None,
    }
}

/// The request's rank for load shedding, and the priority header to forward: the class it
/// was given (`propagate`), or, without propagation, the removal of a header not believed.
fn classify(
    stages: &Stages<'_>,
    shedding: &SheddingPolicy,
    context: &mut RequestContext<'_>,
    route_priority: Option<PriorityId>,
) -> (Rank, Option<HeaderEdit>) {
    let priority = stages.priority;
    let header = context
        .request()
        .header(&priority.header)
        .map(str::to_owned);
    let found =
        priority.classify_request(header.as_deref(), || context.peer_trusted(), route_priority);
    match found.ignored {
        Some(Ignored::Untrusted) => stages.env.metrics.add(Metric::SheddingPriorityUntrusted, 1),
        Some(Ignored::Unknown) => stages.env.metrics.add(Metric::SheddingPriorityUnknown, 1),
        None => {}
    }
    let rank = Rank {
        class: found.class,
        retry: context.attempt().is_retry(),
    };
    let name: HeaderName = priority.header.clone().into();
    let edit = if shedding.config().propagate {
        let class = priority.name(found.class).to_string();
        (header.as_deref() != Some(class.as_str())).then_some((name, Some(class)))
    } else {
        (found.ignored == Some(Ignored::Untrusted)).then_some((name, None))
    };
    (rank, edit)
}

impl Exchange {
    /// Runs the request stages (after routing) for `stream`. A request that must wait comes
    /// back with the deadline headers still to write, for when it leaves the queue.
    pub(super) fn begin(
        policy_set: PolicySetId,
        stages: &Stages<'_>,
        request: &mut dyn RequestView,
        route_priority: Option<PriorityId>,
        stream: StreamId,
        now: Nanos,
    ) -> (Exchange, RequestEffects, Option<Forwarding>) {
        let mut exchange = Exchange {
            policy_set,
            stream,
            slot: Slot::None,
            retry_plan: None,
            attempt: AttemptMark::First,
            status: None,
            deadline: None,
            grpc: false,
            rank: None,
            throttle_answer: false,
        };
        let mut effects = RequestEffects {
            headers: Vec::new(),
            verdict: Verdict::Continue,
        };
        let mut context = RequestContext::new(request, stages.trusted_peers);
        let mut forwarding = None;
        if let Some(policy) = stages.deadline {
            let reading = context.deadline(policy.config(), now);
            match policy.arrive(stages.env, &reading, || context.grpc(), now) {
                DeadlineArrival::Go(go) => {
                    exchange.deadline = go.deadline;
                    exchange.grpc = go.grpc;
                    forwarding = Some(go);
                }
                // A dry run goes on to the other stages, which count what they would do.
                DeadlineArrival::Reply(reply) if !stages.dry_run => {
                    effects.verdict = Verdict::Reply(reply);
                    return (exchange, effects, None);
                }
                DeadlineArrival::Reply(_) => {}
            }
        }
        if let Some(shedding) = stages.shedding {
            let (rank, edit) = classify(stages, shedding, &mut context, route_priority);
            exchange.rank = Some(rank);
            effects.headers.extend(edit);
            if let (true, Some(limiter)) = (shedding.level_sheds(rank), stages.limiter) {
                limiter.rank_overflows(rank.byte(), now);
            }
            match shedding.arrive(stages.env, rank, || context.grpc(), now) {
                Ok(()) => {
                    if shedding.throttles() {
                        exchange.throttle_answer = true;
                        exchange.grpc = context.grpc();
                    }
                }
                Err(reply) if !stages.dry_run => {
                    effects.headers.clear();
                    effects.verdict = Verdict::Reply(reply);
                    return (exchange, effects, None);
                }
                Err(_) => {}
            }
        }
        if let Some(limiter) = stages.limiter {
            let deadline = exchange.deadline;
            let rank = exchange.rank.map(Rank::byte);
            let arrival = limiter.arrive(stages.env, stream, rank, now, stages.dry_run, || {
                OverLimit {
                    grpc: context.grpc(),
                    remaining: limiter
                        .respects_deadlines()
                        .then(|| queue_deadline(stages, &mut context, deadline, now))
                        .flatten()
                        .map(|leave_by| leave_by.saturating_sub(now)),
                }
            });
            match arrival {
                Arrival::Admitted => exchange.slot = Slot::Held(now),
                Arrival::Rejected(reply, why) => {
                    if reply.is_deadline() && stages.deadline.is_some() {
                        stages.env.metrics.add(Metric::DeadlineExpiredQueued, 1);
                    }
                    if let (Some(rank), Some(reason)) = (exchange.rank, shed_reason(why)) {
                        stages
                            .env
                            .metrics
                            .add_class(ClassMetric::Shed(reason), rank.class, 1);
                    }
                    effects.headers.clear();
                    exchange.slot = Slot::Rejected;
                    effects.verdict = Verdict::Reply(reply);
                    return (exchange, effects, None);
                }
                Arrival::Waiting(ticket) => {
                    exchange.slot = Slot::Waiting(ticket);
                    effects.verdict = Verdict::Pause;
                }
            }
        }
        if let Some(retry) = stages.retry {
            exchange.attempt = context.attempt();
            retry.count_mark(stages.env, exchange.attempt);
            let trusted_peers = stages.trusted_peers;
            let decision = retry.on_request(
                stages.env,
                context.request(),
                |request| crate::trust::peer_is_trusted(trusted_peers, request),
                now,
            );
            if let Some(n) = decision.max_retries {
                effects
                    .headers
                    .push((MAX_RETRIES_HEADER.into(), Some(n.to_string())));
            }
            exchange.retry_plan = Some(decision.plan);
        }
        if effects.verdict == Verdict::Pause {
            return (exchange, effects, forwarding);
        }
        if let (Some(policy), Some(forwarding)) = (stages.deadline, forwarding) {
            effects
                .headers
                .extend(policy.forward(stages.env, &forwarding, now));
        }
        (exchange, effects, None)
    }

    /// The policy set the request was routed to.
    pub fn policy_set(&self) -> PolicySetId {
        self.policy_set
    }

    /// Whether it waited in the queue (only such a stream has deadline headers held for it).
    pub(super) fn waited(&self) -> bool {
        matches!(self.slot, Slot::Waiting(_))
    }

    /// The stream it belongs to.
    pub fn stream(&self) -> StreamId {
        self.stream
    }

    /// Its shedding rank, when its policy set sheds.
    pub fn rank(&self) -> Option<Rank> {
        self.rank
    }

    /// Whether the request is itself a retry, as a trusted peer marked it.
    pub fn attempt(&self) -> AttemptMark {
        self.attempt
    }

    /// Settles the retry plan, looks for the router's timeout of a forwarded deadline and, when
    /// RTTs end at the headers (or the response has no body), releases the slot. Returns the
    /// response headers to set and the waiter the freed slot went to.
    pub(super) fn on_response_headers(
        &mut self,
        stages: &Stages<'_>,
        response: &mut dyn ResponseView,
        end_of_stream: bool,
        now: Nanos,
    ) -> (Vec<HeaderEdit>, Option<StreamId>) {
        let mut effects: (Vec<HeaderEdit>, Option<StreamId>) = (Vec::new(), None);
        if self.retry_plan.is_none()
            && matches!(self.slot, Slot::None)
            && self.deadline.is_none()
            && !self.throttle_answer
        {
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
                effects.0.extend(settle_retries(
                    stages, retry, &plan, response, status, self.grpc, now,
                ));
            }
        }
        if let (Some(deadline), Some(policy), false) = (self.deadline, stages.deadline, local_reply)
        {
            if policy.budget_spent(deadline, now) {
                let grpc_status = if self.grpc {
                    response.header("grpc-status")
                } else {
                    None
                };
                let facts = ResponseFacts {
                    grpc: self.grpc,
                    status,
                    grpc_status: grpc_status.as_deref(),
                };
                effects.0.extend(
                    policy
                        .on_response(stages.env, facts)
                        .into_iter()
                        .map(|(name, value)| (name.into(), Some(value))),
                );
            }
        }
        if let (true, Some(rank), Some(shedding), false) = (
            self.throttle_answer,
            self.rank,
            stages.shedding,
            local_reply,
        ) {
            self.throttle_answer = false;
            let grpc_status = if self.grpc {
                response.header("grpc-status")
            } else {
                None
            };
            shedding.answered(rank.class, status, grpc_status.as_deref(), now);
        }
        let at_headers = stages.limiter.is_some_and(Limiter::measures_at_headers);
        if !local_reply && (at_headers || end_of_stream) {
            effects.1 = self.release(stages, Some(status), now);
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
