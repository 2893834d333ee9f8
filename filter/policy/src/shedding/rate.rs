//! Per-class rate limits: GCRA from the `governor` crate, fed host time, per worker or shared
//! by every worker through shared data.
//!
//! Why governor: GCRA keeps one number per limit (the theoretical arrival time, TAT), so a
//! limit shared by all workers is one 8-byte shared-data value updated by compare-and-swap,
//! and governor's arithmetic is maintained and tested elsewhere. Two adaptations:
//! - time: governor's clock is [`HostClock`], a cell the stage sets to the host's time before
//!   each check; the limiter is built at time 0, so every VM's TAT counts from the same origin
//!   and a shared TAT means the same to all of them;
//! - state: governor asks its [`StateStore`] to compare-and-replace the TAT. [`StagedTat`]
//!   answers from a staged value and records the replacement; a shared limit stages what it read
//!   from shared data and writes the replacement back with that read's version, retrying the
//!   whole check when another worker wrote in between ([`MAX_CAS_ATTEMPTS`]; after that it lets
//!   the request through and counts it, as every shared policy fails open). A refused request
//!   writes nothing.

use super::{RateLimitParams, RateScope};
use crate::duration::{Nanos, SECOND};
use crate::store::{SharedStore, StoreError, MAX_CAS_ATTEMPTS};
use core::num::NonZeroU32;
use core::time::Duration;
use governor::clock::Clock;
use governor::nanos::Nanos as GovernorNanos;
use governor::state::{NotKeyed, StateStore};
use governor::{Quota, RateLimiter};
use std::cell::Cell;
use std::rc::Rc;

/// Host time for governor: whatever the stage last set.
#[derive(Debug, Clone, Default)]
pub struct HostClock(Rc<Cell<Nanos>>);

impl Clock for HostClock {
    type Instant = GovernorNanos;

    fn now(&self) -> GovernorNanos {
        GovernorNanos::from(self.0.get())
    }
}

/// A TAT staged for one governor check, and its replacement if the check admitted.
#[derive(Debug, Default)]
struct Staged {
    current: Cell<Option<u64>>,
    replaced: Cell<Option<u64>>,
}

/// governor's state store over a [`Staged`] TAT; the limit keeps a second handle to stage and
/// read it (governor gives its store back only by value).
#[derive(Debug, Clone, Default)]
pub struct StagedTat(Rc<Staged>);

impl StateStore for StagedTat {
    type Key = NotKeyed;

    fn measure_and_replace<T, F, E>(&self, _key: &NotKeyed, f: F) -> Result<T, E>
    where
        F: Fn(Option<GovernorNanos>) -> Result<(T, GovernorNanos), E>,
    {
        let (out, next) = f(self.0.current.get().map(GovernorNanos::from))?;
        let next = u64::from(next);
        self.0.current.set(Some(next));
        self.0.replaced.set(Some(next));
        Ok(out)
    }
}

/// What one check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Within the limit.
    Allowed,
    /// Over it: room again after this long.
    Limited(Nanos),
    /// Every compare-and-swap lost (or the store failed): let through, count it.
    Contended,
}

/// One class's rate limit.
#[derive(Debug)]
pub struct ClassRateLimit {
    scope: RateScope,
    /// The shared-data key of a shared limit's TAT.
    key: String,
    clock: HostClock,
    state: StagedTat,
    limiter: RateLimiter<NotKeyed, StagedTat, HostClock>,
}

/// The quota for `params`: one request per `1 / per_second`, `burst` at once.
fn quota(params: &RateLimitParams) -> Option<Quota> {
    let period_ns = (crate::numeric::approx_f64(SECOND) / params.per_second).round();
    if !period_ns.is_finite() || period_ns < 1.0 {
        return None;
    }
    let period = Duration::from_nanos(crate::numeric::saturating_u64(period_ns));
    let burst = NonZeroU32::new(params.burst.max(1))?;
    Some(Quota::with_period(period)?.allow_burst(burst))
}

impl ClassRateLimit {
    /// A limit with `params`; a shared one keeps its TAT under `key`. `None` for parameters
    /// governor cannot express (validation refuses them first).
    pub fn new(params: &RateLimitParams, key: String) -> Option<ClassRateLimit> {
        let clock = HostClock::default();
        let state = StagedTat::default();
        // Built at time 0: the origin every VM's TAT counts from.
        let limiter = RateLimiter::new(quota(params)?, state.clone(), clock.clone());
        Some(ClassRateLimit {
            scope: params.scope,
            key,
            clock,
            state,
            limiter,
        })
    }

    /// The shared-data key (for tests and the README's key list).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// One governor check at `now` against the staged TAT.
    fn check_staged(&self, now: Nanos) -> Result<(), Nanos> {
        self.clock.0.set(now);
        self.state.0.replaced.set(None);
        self.limiter.check().map_err(|not_until| {
            let wait = not_until.wait_time_from(GovernorNanos::from(now));
            u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX)
        })
    }

    /// Whether a request arriving `now` is within the limit.
    pub fn check(&self, store: &dyn SharedStore, now: Nanos) -> RateDecision {
        match self.scope {
            RateScope::Worker => match self.check_staged(now) {
                Ok(()) => RateDecision::Allowed,
                Err(wait) => RateDecision::Limited(wait),
            },
            RateScope::Shared => self.check_shared(store, now),
        }
    }

    fn check_shared(&self, store: &dyn SharedStore, now: Nanos) -> RateDecision {
        let state = &self.state.0;
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Ok(read) = store.get(&self.key) else {
                return RateDecision::Contended;
            };
            let tat = read
                .value
                .as_deref()
                .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
                .map(u64::from_le_bytes);
            state.current.set(tat);
            if let Err(wait) = self.check_staged(now) {
                return RateDecision::Limited(wait);
            }
            let Some(next) = state.replaced.get() else {
                return RateDecision::Allowed;
            };
            match store.set(&self.key, &next.to_le_bytes(), read.cas) {
                Ok(()) => return RateDecision::Allowed,
                Err(StoreError::Mismatch) => continue,
                Err(StoreError::Failed) => return RateDecision::Contended,
            }
        }
        RateDecision::Contended
    }
}
