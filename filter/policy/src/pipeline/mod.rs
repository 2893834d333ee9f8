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
//! 2. **classify**: the attempt mark (a retry, believed only from trusted peers), for the stages
//!    that use it (retry today);
//! 3. **concurrency**: admit, wait (pause) or answer locally;
//! 4. **retry**: the reservation and `x-envoy-max-retries` (also for a request that waits, so
//!    its reservation is booked in the second it arrived).
//!
//! Deadline, shedding and rate-limit stages come between classify and concurrency when they
//! land.
//!
//! `dry_run` is applied here, in one place: stages decide and count as usual, and the pipeline
//! drops every effect that would change a request or response ([`DryRun`]). The limiter is
//! told too, for its accounting only: a request it would have refused goes on, so it counts it
//! in flight.

mod context;
mod exchange;

use crate::concurrency::limiter::{Limiter, StreamId, TickOutcome};
use crate::config::{Config, PolicySetId};
use crate::duration::Nanos;
use crate::env::Env;
use crate::metrics::{Metric, Telemetry};
use crate::retry::policy::RetryPolicy;
use crate::routing::RequestView;
use crate::store::SharedStore;
pub use exchange::{Exchange, RequestEffects, ResponseEffects, ResponseView, Verdict};
use std::cell::Cell;

/// How often retry budgets flush locally counted first attempts and refresh their gauge.
const BUDGET_FLUSH_PERIOD: Nanos = 1_000_000_000;

/// Tick period the plugin should ask the host for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickNeed {
    /// No policy acts on ticks.
    None,
    /// Once a second (budget flushes).
    Slow,
    /// Every 10 ms (queued requests wait on ticks).
    Fast,
}

/// One policy set's policies, as this VM runs them, with its telemetry.
pub struct PolicySetRuntime<T> {
    telemetry: T,
    retry: Option<RetryPolicy>,
    limiter: Option<Limiter>,
}

impl<T: Telemetry> PolicySetRuntime<T> {
    fn env<'a>(&'a self, store: &'a dyn SharedStore) -> Env<'a> {
        Env {
            store,
            metrics: &self.telemetry,
        }
    }
}

/// A configuration's policy sets, ready for requests.
pub struct Pipeline<T> {
    config: Config,
    sets: Vec<PolicySetRuntime<T>>,
    last_budget_flush: Cell<Nanos>,
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
                PolicySetRuntime {
                    telemetry,
                    retry,
                    limiter,
                }
            })
            .collect();
        Pipeline {
            config,
            sets,
            last_budget_flush: Cell::new(0),
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
                outcome.reject.extend(done.reject);
                outcome.resume.extend(done.resume);
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

    /// Routes a request to its policy set and runs its request stages. `None`: no policy set
    /// applies (the caller counts it as unmatched).
    pub fn begin(
        &self,
        store: &dyn SharedStore,
        request: &mut dyn RequestView,
        stream: StreamId,
        now: Nanos,
    ) -> Option<(Exchange, RequestEffects)> {
        let id = self.config.routes.route(request).policy_set()?;
        let stages = self.stages(store, id)?;
        stages.env.metrics.add(Metric::RequestsTotal, 1);
        let (exchange, effects) = Exchange::begin(id, &stages, request, stream, now);
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
        match self.stages(store, exchange.policy_set()) {
            Some(stages) => self.dry_run().response(exchange.on_response_headers(
                &stages,
                response,
                end_of_stream,
                now,
            )),
            None => ResponseEffects::default(),
        }
    }

    /// The response ended (last body chunk or trailers).
    pub fn on_response_end(
        &self,
        store: &dyn SharedStore,
        exchange: &mut Exchange,
        now: Nanos,
    ) -> Option<StreamId> {
        let stages = self.stages(store, exchange.policy_set())?;
        exchange.on_response_end(&stages, now)
    }

    /// The stream is gone (finished, reset or cancelled).
    pub fn on_done(
        &self,
        store: &dyn SharedStore,
        exchange: &mut Exchange,
        now: Nanos,
    ) -> Option<StreamId> {
        let stages = self.stages(store, exchange.policy_set())?;
        exchange.on_done(&stages, now)
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
            set_headers: Vec::new(),
            verdict: Verdict::Continue,
        }
    }

    /// In a dry run the response goes on untouched: no header set. A stream to resume is kept:
    /// resuming is how a held stream goes on, and a dry run holds none.
    fn response(self, effects: ResponseEffects) -> ResponseEffects {
        if !self.0 {
            return effects;
        }
        ResponseEffects {
            set_headers: Vec::new(),
            resume: effects.resume,
        }
    }
}
