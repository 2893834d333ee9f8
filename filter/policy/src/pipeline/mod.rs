//! Every request through its policy set's stages, in one fixed order, with the effects each
//! stage asks for returned as values.
//!
//! Why one pipeline: each policy decides at the request, observes the response and acts on the
//! tick. Written as stages over one per-request [`Exchange`], a new policy is one stage, the
//! plugin has one thing to call per host callback, and what a request went through is in one
//! value instead of fields spread over the plugin.
//!
//! Order (a stage runs only if its policy is on for the request's set):
//! 1. **route**: the request's policy set ([`Pipeline::begin`]); unmatched requests pass untouched;
//! 2. **deadline**: read the caller's deadline; answer at once when it is spent;
//! 3. **shedding**: the request's class (a trusted peer's priority header, its route, or the
//!    default) and retry mark make its rank; rate limits, throttling and the admission level
//!    may refuse it; its class is written upstream;
//! 4. **concurrency**: admit, wait (pause) or answer locally; the queue serves the most
//!    important waiter first and displaces the least important when full; a waiter leaves by
//!    its deadline;
//! 5. **retry**: the attempt mark (a retry, believed only from trusted peers), the reservation
//!    and `x-envoy-max-retries` (also for a request that waits, so its reservation is booked in
//!    the second it arrived);
//! 6. **forward**: the deadline left, written into the request when it goes upstream: at once,
//!    or when it leaves the queue ([`Resume`]), so the wait is taken off the budget.
//!
//! The admission level moves at the tick, from the pressure the limiter's queue saw.
//!
//! `dry_run` is applied here, in one place: stages decide and count as usual, and the pipeline
//! drops every effect that would change a request or response ([`DryRun`]). The limiter is
//! told too, for its accounting only: a request it would have refused goes on, so it counts it
//! in flight.

mod context;
mod exchange;
mod retry_response;

use crate::concurrency::limiter::{Limiter, StreamId};
use crate::config::{Config, PolicySetId, PriorityId};
use crate::deadline::stage::{DeadlinePolicy, Forwarding};
use crate::deadline::DeadlineConfig;
use crate::duration::Nanos;
use crate::env::Env;
use crate::metrics::{ClassMetric, Metric, Telemetry};
use crate::reply::LocalReply;
use crate::retry::policy::RetryPolicy;
use crate::routing::RequestView;
use crate::shedding::stage::SheddingPolicy;
use crate::store::SharedStore;
pub use exchange::{Exchange, RequestEffects, ResponseEffects, ResponseView, Resume, Verdict};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

/// How often retry budgets flush locally counted first attempts and refresh their gauge.
const BUDGET_FLUSH_PERIOD: Nanos = 1_000_000_000;

/// Tick period the plugin should ask the host for, from none to the most frequent (so the
/// greatest of several needs is the one to ask for).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TickNeed {
    /// No policy acts on ticks.
    None,
    /// Once a second (budget flushes).
    Slow,
    /// Every 10 ms (queued requests wait on ticks).
    Fast,
}

#[cfg(test)]
#[test]
fn the_greatest_tick_need_is_the_most_frequent() {
    assert!(TickNeed::None < TickNeed::Slow && TickNeed::Slow < TickNeed::Fast);
}

/// One policy set's policies, as this VM runs them, with its telemetry.
pub struct PolicySetRuntime<T> {
    telemetry: T,
    retry: Option<RetryPolicy>,
    limiter: Option<Limiter>,
    deadline: Option<DeadlinePolicy>,
    shedding: Option<SheddingPolicy>,
}

impl<T: Telemetry> PolicySetRuntime<T> {
    fn env<'a>(&'a self, store: &'a dyn SharedStore) -> Env<'a> {
        Env {
            store,
            metrics: &self.telemetry,
        }
    }
}

/// What a tick decided: streams to answer (their wait ran out), then streams to resume.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TickOutcome {
    /// Answer each of these streams with its reply.
    pub reject: Vec<(StreamId, LocalReply)>,
    /// Resume each of these streams (after editing its headers): it holds a slot now.
    pub resume: Vec<Resume>,
}

/// What the pipeline keeps of a request while it waits in a queue.
#[derive(Debug, Clone)]
struct Waiting {
    policy_set: PolicySetId,
    /// Its deadline headers, to write when it leaves (`None`: no deadline stage).
    forwarding: Option<Forwarding>,
    /// Its class, when its set sheds.
    class: Option<PriorityId>,
}

/// A configuration's policy sets, ready for requests.
pub struct Pipeline<T> {
    config: Config,
    sets: Vec<PolicySetRuntime<T>>,
    last_budget_flush: Cell<Nanos>,
    /// Requests waiting in a queue, with the deadline headers to write when they leave it and
    /// their class (to count a refusal at the tick). Bounded by the queues' sizes: an entry
    /// leaves when its stream resumes, is answered or goes away.
    waiting: RefCell<HashMap<StreamId, Waiting>>,
    /// How the queue of a set without a deadline section reads a request's deadline.
    default_deadline_rules: DeadlineConfig,
}

impl<T: Telemetry> Pipeline<T> {
    /// Opens every policy set of `config`: shared state under `<scope>.` in `store` (created if
    /// missing), telemetry from `telemetry_of` (given the set's name).
    pub fn open(
        config: Config,
        store: &dyn SharedStore,
        scope: &str,
        now: Nanos,
        mut telemetry_of: impl FnMut(&crate::config::PolicySet) -> T,
    ) -> Pipeline<T> {
        let prefix = format!("ballast.{scope}");
        let sets = config
            .policy_sets
            .iter()
            .map(|set| {
                let telemetry = telemetry_of(set);
                let env = Env {
                    store,
                    metrics: &telemetry,
                };
                let retry = set.retry.clone().map(|rules| {
                    RetryPolicy::open(env, &prefix, &set.name, rules, set.retry_budget)
                });
                let limiter = set
                    .concurrency
                    .clone()
                    .map(|c| Limiter::open(env, Limiter::key_for(&prefix, &set.name), c, now));
                let shedding = set.shedding.clone().map(|shedding| {
                    SheddingPolicy::new(shedding, &config.priority.classes, &prefix, &set.name, now)
                });
                PolicySetRuntime {
                    telemetry,
                    retry,
                    limiter,
                    deadline: set.deadline.clone().map(DeadlinePolicy::new),
                    shedding,
                }
            })
            .collect();
        Pipeline {
            config,
            sets,
            last_budget_flush: Cell::new(0),
            waiting: RefCell::new(HashMap::new()),
            default_deadline_rules: DeadlineConfig::default(),
        }
    }

    /// The validated configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The tick period the policies need.
    pub fn tick_need(&self) -> TickNeed {
        if self.sets.iter().any(|s| s.limiter.is_some()) {
            TickNeed::Fast
        } else if self
            .sets
            .iter()
            .any(|s| s.retry.as_ref().is_some_and(RetryPolicy::has_budget))
        {
            TickNeed::Slow
        } else {
            TickNeed::None
        }
    }

    fn set(&self, id: PolicySetId) -> Option<&PolicySetRuntime<T>> {
        self.sets.get(id.index())
    }

    /// Periodic work of every policy set: queued requests to answer or resume, budget flushes.
    pub fn tick(&self, store: &dyn SharedStore, now: Nanos) -> TickOutcome {
        let mut outcome = TickOutcome::default();
        for set in &self.sets {
            if let Some(limiter) = &set.limiter {
                let done = limiter.tick(set.env(store), now);
                for (stream, reply, why) in done.reject {
                    let waited = self.waiting.borrow_mut().remove(&stream);
                    if reply.is_deadline() && set.deadline.is_some() {
                        set.telemetry.add(Metric::DeadlineExpiredQueued, 1);
                    }
                    let class = waited.and_then(|w| w.class);
                    if let (Some(class), Some(reason)) = (class, exchange::shed_reason(why)) {
                        set.telemetry.add_class(ClassMetric::Shed(reason), class, 1);
                    }
                    outcome.reject.push((stream, reply));
                }
                for stream in done.resume {
                    outcome.resume.push(self.leaving(store, stream, now));
                }
                if let Some(shedding) = &set.shedding {
                    shedding.observe(set.env(store), limiter.take_pressure(), now);
                }
            }
        }
        if now.saturating_sub(self.last_budget_flush.get()) >= BUDGET_FLUSH_PERIOD {
            self.last_budget_flush.set(now);
            for set in &self.sets {
                if let Some(retry) = &set.retry {
                    retry.flush(set.env(store), now);
                }
            }
        }
        outcome
    }

    /// The pipeline is going away: its configuration was replaced and no stream uses it any
    /// more, or the plugin stops. First attempts counted locally are written to their budgets
    /// (they would be lost), and each limiter's entry leaves the shared record (it would
    /// linger until the holder timeout, and a table filled by replaced configurations refuses
    /// new ones).
    pub fn close(&self, store: &dyn SharedStore, now: Nanos) {
        for set in &self.sets {
            if let Some(retry) = &set.retry {
                retry.flush(set.env(store), now);
            }
            if let Some(limiter) = &set.limiter {
                limiter.close(set.env(store), now);
            }
        }
    }

    /// A waiter leaves its queue for the upstream at `now`: the headers its deadline needs now.
    fn leaving(&self, store: &dyn SharedStore, stream: StreamId, now: Nanos) -> Resume {
        let waited = self.waiting.borrow_mut().remove(&stream);
        let headers = waited
            .and_then(|waiting| {
                let set = self.set(waiting.policy_set)?;
                let policy = set.deadline.as_ref()?;
                Some(policy.forward(set.env(store), waiting.forwarding.as_ref()?, now))
            })
            .unwrap_or_default();
        Resume { stream, headers }
    }

    /// Routes a request to its policy set and runs its request stages. `None`: no policy set
    /// applies (the caller counts it as unmatched).
    pub fn begin(
        &self,
        store: &dyn SharedStore,
        request: &mut dyn RequestView,
        stream: StreamId,
        now: Nanos,
    ) -> Option<(Exchange, RequestEffects)> {
        let routed = self.config.routes.route(request);
        let id = routed.policy_set()?;
        let route_priority = self.config.routes.priority_of(routed);
        let stages = self.stages(store, id)?;
        stages.env.metrics.add(Metric::RequestsTotal, 1);
        let (exchange, effects, held) =
            Exchange::begin(id, &stages, request, route_priority, stream, now);
        let class = exchange.rank().map(|rank| rank.class);
        if effects.verdict == Verdict::Pause && (held.is_some() || class.is_some()) {
            let waiting = Waiting {
                policy_set: id,
                forwarding: held,
                class,
            };
            self.waiting.borrow_mut().insert(stream, waiting);
        }
        Some((exchange, self.dry_run().request(effects)))
    }

    /// What a dry run lets through of the stages' effects.
    fn dry_run(&self) -> DryRun {
        DryRun(self.config.dry_run)
    }

    /// The response headers of an exchange arrived.
    pub fn on_response_headers(
        &self,
        store: &dyn SharedStore,
        exchange: &mut Exchange,
        response: &mut dyn ResponseView,
        end_of_stream: bool,
        now: Nanos,
    ) -> ResponseEffects {
        let Some(stages) = self.stages(store, exchange.policy_set()) else {
            return ResponseEffects::default();
        };
        let (headers, freed) = exchange.on_response_headers(&stages, response, end_of_stream, now);
        self.dry_run().response(ResponseEffects {
            headers,
            resume: freed.map(|stream| self.leaving(store, stream, now)),
        })
    }

    /// The response ended (last body chunk or trailers).
    pub fn on_response_end(
        &self,
        store: &dyn SharedStore,
        exchange: &mut Exchange,
        now: Nanos,
    ) -> Option<Resume> {
        let stages = self.stages(store, exchange.policy_set())?;
        let freed = exchange.on_response_end(&stages, now)?;
        Some(self.leaving(store, freed, now))
    }

    /// The stream is gone (finished, reset or cancelled).
    pub fn on_done(
        &self,
        store: &dyn SharedStore,
        exchange: &mut Exchange,
        now: Nanos,
    ) -> Option<Resume> {
        // A stream that goes away while it waits takes its entry with it.
        if exchange.waited() {
            self.waiting.borrow_mut().remove(&exchange.stream());
        }
        let stages = self.stages(store, exchange.policy_set())?;
        let freed = exchange.on_done(&stages, now)?;
        Some(self.leaving(store, freed, now))
    }

    /// The stages of a policy set.
    fn stages<'a>(
        &'a self,
        store: &'a dyn SharedStore,
        id: PolicySetId,
    ) -> Option<exchange::Stages<'a>> {
        let set = self.set(id)?;
        Some(exchange::Stages {
            env: set.env(store),
            limiter: set.limiter.as_ref(),
            retry: set.retry.as_ref(),
            deadline: set.deadline.as_ref(),
            deadline_rules: set
                .deadline
                .as_ref()
                .map_or(&self.default_deadline_rules, DeadlinePolicy::config),
            shedding: set.shedding.as_ref(),
            priority: &self.config.priority,
            trusted_peers: &self.config.trusted_peers,
            dry_run: self.config.dry_run,
        })
    }
}

/// Whether the configuration is a dry run, and what that lets through.
#[derive(Debug, Clone, Copy)]
struct DryRun(bool);

impl DryRun {
    /// In a dry run the request goes on untouched: no header set, never held, never answered.
    fn request(self, effects: RequestEffects) -> RequestEffects {
        if !self.0 {
            return effects;
        }
        RequestEffects {
            headers: Vec::new(),
            verdict: Verdict::Continue,
        }
    }

    /// In a dry run the response goes on untouched: no header set. A stream to resume is kept
    /// (without edits): resuming is how a held stream goes on, and a dry run holds none.
    fn response(self, effects: ResponseEffects) -> ResponseEffects {
        if !self.0 {
            return effects;
        }
        ResponseEffects {
            headers: Vec::new(),
            resume: effects.resume.map(|resume| Resume {
                stream: resume.stream,
                headers: Vec::new(),
            }),
        }
    }
}
