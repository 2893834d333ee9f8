//! Load shedding: under overload, drop the least important work first, before it costs the
//! upstream anything.
//!
//! Why in front of the concurrency limiter: the limiter protects the upstream by bounding what
//! is in flight, but it is priority-blind at its door; when demand is three times capacity it
//! refuses critical and sheddable requests alike. This stage decides *which* requests the
//! overload costs, from each request's [`Rank`] (its priority class, and within a class retries
//! before first attempts, since retries are the amplification):
//! - [`rate`]: per-class rate limits (GCRA through the `governor` crate), per worker or shared
//!   by every worker through shared data;
//! - [`throttle`]: Google SRE's client-side throttling per class: reject with probability
//!   `max(0, (requests − K × accepts) / (requests + 1))` over a sliding window, so a caller
//!   facing an upstream that refuses stops sending it most of what it would refuse;
//! - [`level`]: a DAGOR-like admission level fed by the limiter's queue: while requests wait
//!   too long (or the queue overflows) ranks are shed from the least important up, critical
//!   first attempts last; it recovers step by step once the signal clears.
//!
//! Inside the limiter the same rank orders the wait queue (most important first) and lets a
//! more important arrival displace the least important waiter of a full queue.

pub mod classify;
pub mod level;
pub mod rate;
pub mod stage;
pub mod throttle;

#[cfg(test)]
mod tests;

use crate::config::PriorityId;
use crate::duration::Nanos;

/// Where a request stands in the shedding order: its class, and whether it is a retry.
/// Smaller is more important; [`Rank::index`] orders every request of a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rank {
    /// Its priority class (0 is the most important).
    pub class: PriorityId,
    /// Whether it is a retry (shed before the first attempts of its class).
    pub retry: bool,
}

impl Rank {
    /// Ranks for `classes` classes: two per class.
    pub fn count(classes: usize) -> usize {
        classes.saturating_mul(2)
    }

    /// Its position in the shedding order: `2 × class + retry`.
    pub fn index(self) -> usize {
        self.class
            .0
            .saturating_mul(2)
            .saturating_add(usize::from(self.retry))
    }

    /// The same, saturated to a byte (the wait queue stores ranks compactly; at most 16
    /// classes, so 32 ranks, fit).
    pub fn byte(self) -> u8 {
        u8::try_from(self.index()).unwrap_or(u8::MAX)
    }
}

/// The admission level's parameters (`shedding.admission`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdmissionParams {
    /// Overloaded when waiters admitted over an interval waited longer than this on average.
    pub target_queue_wait: Nanos,
    /// How often the level moves.
    pub interval: Nanos,
    /// How far it moves per interval, in ranks (a fraction sheds that fraction of a rank).
    pub step: f64,
}

/// Client-side throttling's parameters (`shedding.throttle`), Envoy admission_control's knobs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThrottleParams {
    /// Requests allowed per accepted one before throttling starts (SRE's K; 2 in the book).
    pub k: f64,
    /// Length of the sliding window.
    pub window: Nanos,
    /// Below this request rate (per second over the window) nothing is throttled.
    pub min_rps: f64,
    /// The highest rejection probability.
    pub max_reject_probability: f64,
}

/// Whose requests one rate limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateScope {
    /// Each worker VM has its own limit (no shared-data traffic; the proxy allows workers ×).
    Worker,
    /// One limit for the whole proxy, kept in shared data.
    Shared,
}

/// One class's rate limit (`shedding.rate_limits.<class>`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitParams {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests that may arrive at once above the sustained rate.
    pub burst: u32,
    /// Per worker or shared.
    pub scope: RateScope,
}

/// The validated `shedding` section.
#[derive(Debug, Clone, PartialEq)]
pub struct SheddingConfig {
    /// The admission level (`None`: off).
    pub admission: Option<AdmissionParams>,
    /// Client-side throttling (`None`: off).
    pub throttle: Option<ThrottleParams>,
    /// Rate limits by class.
    pub rate_limits: Vec<(PriorityId, RateLimitParams)>,
    /// Status of an overload refusal (shed, throttled, displaced); gRPC gets UNAVAILABLE.
    pub overload_status: u16,
    /// Status of a rate-limit refusal; gRPC gets RESOURCE_EXHAUSTED.
    pub rate_limit_status: u16,
    /// `retry-after` seconds on overload refusals (at least 1 on rate-limit refusals, which
    /// say when the limit has room again).
    pub retry_after_seconds: u32,
    /// Body (and grpc-message) of every refusal; `None`: a line naming the reason.
    pub body: Option<String>,
    /// Whether the request's class is written into the priority header upstream.
    pub propagate: bool,
}

impl Default for SheddingConfig {
    /// What `"shedding": {}` means.
    fn default() -> Self {
        SheddingConfig {
            admission: Some(AdmissionParams {
                target_queue_wait: 20 * crate::duration::MILLISECOND,
                interval: 100 * crate::duration::MILLISECOND,
                step: 0.1,
            }),
            throttle: Some(ThrottleParams {
                k: 2.0,
                window: 10 * crate::duration::SECOND,
                min_rps: 1.0,
                max_reject_probability: 0.9,
            }),
            rate_limits: Vec::new(),
            overload_status: 503,
            rate_limit_status: 429,
            retry_after_seconds: 1,
            body: None,
            propagate: true,
        }
    }
}
