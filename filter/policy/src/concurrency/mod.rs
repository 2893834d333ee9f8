//! Concurrency limit algorithms: measured latency in, a limit on in-flight requests out.
//!
//! Why separate from enforcement (as Netflix concurrency-limits separates `Limit` from
//! `Limiter`): the algorithm only turns RTT samples into a number; who holds the in-flight
//! count, how workers share it, and what happens to a request over the limit (queue or reject)
//! is the limiter's business. That keeps each algorithm a small pure function of its inputs,
//! testable against scripted RTT sequences.
//!
//! All algorithms share two rules that Envoy's native adaptive_concurrency filter lacks:
//! - while in-flight load is below half the limit, a sample never lowers the limit (an idle or
//!   warming service must not be throttled: no rejections while load is below capacity);
//! - re-measuring the no-load RTT never drops the limit to a floor (envoy#8337): a probe lowers
//!   it only to just below the capacity the algorithm has inferred, and only while the limit is
//!   binding (see [`noload`]).

mod aimd;
mod gradient2;
pub mod holders;
pub mod lease;
pub mod limiter;
pub mod noload;
mod overflow;
mod probed;
pub mod queue;
mod record;
mod state;
mod vegas;
pub mod window;

pub use aimd::{Aimd, AimdParams};
pub use gradient2::{Gradient2, Gradient2Params};
pub use probed::ProbedLimit;
pub use record::Glance;
pub use state::{AlgorithmParams, Holding, LimiterState};
pub use vegas::{Vegas, VegasParams};

use crate::duration::Nanos;

/// One aggregated RTT observation for the limit algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Aggregated round-trip time of the window (percentile or average).
    pub rtt: Nanos,
    /// Most requests in flight during the window.
    pub in_flight: u32,
    /// Whether a request in the window was dropped or timed out upstream (a congestion signal).
    pub dropped: bool,
    /// Whether a request found no free slot during the window (queued or rejected): demand
    /// exceeded the limit, the only time the limiter itself can hold a queue upstream.
    pub turned_away: bool,
    /// The window's fastest requests (5th-percentile RTT; 0 when unknown): requests that met
    /// no queue show the service's no-load latency even while the window's aggregate is
    /// inflated, and a standing queue delays every request, so it lifts this too. Delay-based
    /// algorithms compare this with its no-load value (like with like).
    pub fastest: Nanos,
    /// When the window began (a no-load probe only counts windows that began inside it).
    pub started: Nanos,
}

/// Bounds shared by every algorithm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// Limit before any sample.
    pub initial: f64,
    /// Never below this.
    pub min: f64,
    /// Never above this.
    pub max: f64,
}

impl Bounds {
    fn clamp(&self, limit: f64) -> f64 {
        if limit.is_finite() {
            // max/min rather than f64::clamp, which panics when min > max.
            limit.max(self.min).min(self.max)
        } else {
            self.initial.max(self.min).min(self.max)
        }
    }
}

/// A limit algorithm with its state.
#[derive(Debug, Clone)]
pub enum LimitAlgorithm {
    /// Netflix's gradient2: long-term vs short-term RTT.
    Gradient2(Gradient2),
    /// TCP Vegas: estimated queue from no-load RTT.
    Vegas(Vegas),
    /// Additive increase, multiplicative decrease on drops and timeouts.
    Aimd(Aimd),
    /// A constant limit.
    Fixed(f64),
}

impl LimitAlgorithm {
    /// Feeds one sample taken at `now`; returns the new limit (whole requests, at least 1).
    pub fn update(&mut self, sample: Sample, now: Nanos) -> u32 {
        let limit = match self {
            LimitAlgorithm::Gradient2(g) => g.update(sample, now),
            LimitAlgorithm::Vegas(v) => v.update(sample, now),
            LimitAlgorithm::Aimd(a) => a.update(sample),
            LimitAlgorithm::Fixed(limit) => *limit,
        };
        to_whole(limit)
    }

    /// The limit enforced at `now` (a stale no-load probe no longer holds it down).
    pub fn limit_at(&self, now: Nanos) -> u32 {
        to_whole(match self {
            LimitAlgorithm::Gradient2(g) => g.limit_at(now),
            LimitAlgorithm::Vegas(v) => v.limit_at(now),
            LimitAlgorithm::Aimd(a) => a.limit(),
            LimitAlgorithm::Fixed(limit) => *limit,
        })
    }
}

/// A learned RTT restored from shared data: finite and non-negative, else 0 ("not learned").
fn learned(value: f64) -> f64 {
    if value.is_finite() && value >= 0.0 {
        value
    } else {
        0.0
    }
}

fn to_whole(limit: f64) -> u32 {
    if limit.is_finite() && limit >= 1.0 {
        crate::numeric::saturating_u32(limit.floor()).max(1)
    } else {
        1
    }
}

#[cfg(test)]
pub(crate) mod script {
    //! Scripted RTT sequences shared by the algorithms' tests.
    use super::Sample;
    use crate::duration::MILLISECOND;

    /// `n` samples of `rtt_ms` with in-flight at `in_flight`.
    pub fn steady(n: usize, rtt_ms: u64, in_flight: u32) -> Vec<Sample> {
        vec![
            Sample {
                rtt: rtt_ms * MILLISECOND,
                in_flight,
                dropped: false,
                turned_away: true,
                fastest: rtt_ms * MILLISECOND,
                started: 0,
            };
            n
        ]
    }
}
