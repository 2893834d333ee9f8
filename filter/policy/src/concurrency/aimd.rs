//! Additive increase, multiplicative decrease: +1 per sample taken at high load, × backoff on
//! a drop or when the RTT exceeds a timeout. Simple and predictable; reacts only to failure.

use super::{Bounds, Sample};
use crate::duration::Nanos;

/// Parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AimdParams {
    /// Limit bounds.
    pub bounds: Bounds,
    /// Multiplier on a drop (0.5..1).
    pub backoff_ratio: f64,
    /// An RTT above this counts as a drop.
    pub timeout: Nanos,
}

/// State.
#[derive(Debug, Clone)]
pub struct Aimd {
    params: AimdParams,
    limit: f64,
}

impl Aimd {
    /// Starts at the initial limit.
    pub fn new(params: AimdParams) -> Aimd {
        Aimd {
            params,
            limit: params.bounds.clamp(params.bounds.initial),
        }
    }

    /// Current limit.
    pub fn limit(&self) -> f64 {
        self.limit
    }

    /// Rebuilds with a learned limit (clamped).
    pub fn restore(params: AimdParams, limit: f64) -> Aimd {
        Aimd {
            params,
            limit: params.bounds.clamp(limit),
        }
    }

    /// Feeds one sample.
    pub fn update(&mut self, sample: Sample) -> f64 {
        let next = if sample.dropped || sample.rtt > self.params.timeout {
            self.limit * self.params.backoff_ratio
        } else if f64::from(sample.in_flight) * 2.0 >= self.limit {
            self.limit + 1.0
        } else {
            self.limit
        };
        self.limit = self.params.bounds.clamp(next);
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::concurrency::script::steady;
    use crate::duration::MILLISECOND;
    use crate::test_support::test;

    fn params() -> AimdParams {
        AimdParams {
            bounds: Bounds {
                initial: 10.0,
                min: 2.0,
                max: 50.0,
            },
            backoff_ratio: 0.9,
            timeout: 100 * MILLISECOND,
        }
    }

    #[test]
    fn increases_additively_and_backs_off_multiplicatively() {
        let mut a = Aimd::new(params());
        for s in steady(5, 10, 100) {
            a.update(s);
        }
        assert_eq!(a.limit(), 15.0);
        for s in steady(1, 200, 100) {
            a.update(s);
        }
        assert_eq!(a.limit(), 13.5, "a timeout is a drop");
        for s in steady(100, 10, 100) {
            a.update(s);
        }
        assert_eq!(a.limit(), 50.0, "bounded by max");
        for s in steady(100, 500, 100) {
            a.update(s);
        }
        assert_eq!(a.limit(), 2.0, "bounded by min");
        for s in steady(10, 10, 0) {
            a.update(s);
        }
        assert_eq!(a.limit(), 2.0, "no growth without load");
    }
}
