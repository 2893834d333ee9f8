//! TCP Vegas applied to requests: estimate the queue from how far the current RTT is above the
//! no-load RTT (`queue = limit × (1 − rtt_noload / rtt)`); grow while the queue is small,
//! shrink when it is large. The no-load RTT is re-measured periodically by forgetting it, which
//! never touches the limit itself (unlike a probe that drops concurrency to a floor).

use super::{Bounds, Sample};

/// Parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VegasParams {
    /// Limit bounds.
    pub bounds: Bounds,
    /// Weight of each new limit (0..=1).
    pub smoothing: f64,
    /// Forget the no-load RTT every this many samples (0 = never).
    pub probe_every: u32,
}

/// State.
#[derive(Debug, Clone)]
pub struct Vegas {
    params: VegasParams,
    limit: f64,
    rtt_noload: f64,
    samples: u32,
}

impl Vegas {
    /// Starts at the initial limit.
    pub fn new(params: VegasParams) -> Vegas {
        Vegas {
            params,
            limit: params.bounds.clamp(params.bounds.initial),
            rtt_noload: 0.0,
            samples: 0,
        }
    }

    /// Current (fractional) limit.
    pub fn limit(&self) -> f64 {
        self.limit
    }

    /// The learned state: (limit, rtt_noload, samples), for sharing between workers.
    pub fn snapshot(&self) -> (f64, f64, u32) {
        (self.limit, self.rtt_noload, self.samples)
    }

    /// Rebuilds from [`Vegas::snapshot`] values (clamped to the parameters).
    pub fn restore(params: VegasParams, (limit, rtt_noload, samples): (f64, f64, u32)) -> Vegas {
        let mut restored = Vegas::new(params);
        restored.limit = params.bounds.clamp(limit);
        restored.rtt_noload = super::learned(rtt_noload);
        restored.samples = samples;
        restored
    }

    /// Feeds one sample.
    pub fn update(&mut self, sample: Sample) -> f64 {
        let rtt = sample.rtt as f64;
        if rtt <= 0.0 {
            return self.limit;
        }
        self.samples = self.samples.saturating_add(1);
        if self.params.probe_every > 0 && self.samples.is_multiple_of(self.params.probe_every) {
            self.rtt_noload = rtt;
            return self.limit;
        }
        // The no-load RTT comes from the window's fastest requests (a window's aggregate is
        // already inflated when the service starts out overloaded).
        let shortest = if sample.min_rtt > 0 {
            (sample.min_rtt as f64).min(rtt)
        } else {
            rtt
        };
        if self.rtt_noload <= 0.0 || shortest < self.rtt_noload {
            self.rtt_noload = shortest;
        }
        let log = self.limit.max(1.0).log10().max(1.0);
        let (alpha, beta, threshold) = (3.0 * log, 6.0 * log, log);
        let queue = (self.limit * (1.0 - self.rtt_noload / rtt)).ceil();
        let next = if sample.dropped {
            self.limit - log
        } else if f64::from(sample.in_flight) * 2.0 < self.limit {
            return self.limit;
        } else if queue <= threshold {
            self.limit + beta
        } else if queue < alpha {
            self.limit + log
        } else if queue > beta {
            self.limit - log
        } else {
            return self.limit;
        };
        let smoothed = self.limit * (1.0 - self.params.smoothing) + next * self.params.smoothing;
        self.limit = self.params.bounds.clamp(smoothed);
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::concurrency::script::steady;
    use crate::concurrency::Sample;
    use crate::duration::MILLISECOND;
    use crate::test_support::test;

    fn params() -> VegasParams {
        VegasParams {
            bounds: Bounds {
                initial: 20.0,
                min: 5.0,
                max: 300.0,
            },
            smoothing: 1.0,
            probe_every: 1000,
        }
    }

    #[test]
    fn grows_when_rtt_stays_at_no_load() {
        let mut v = Vegas::new(params());
        for s in steady(100, 10, 1000) {
            v.update(s);
        }
        assert!(v.limit() > 100.0, "{}", v.limit());
        for s in steady(1000, 10, 1000) {
            v.update(s);
        }
        assert!(v.limit() <= 300.0);
    }

    #[test]
    fn shrinks_when_queueing_and_on_drops() {
        let mut v = Vegas::new(params());
        for s in steady(50, 10, 1000) {
            v.update(s);
        }
        let before = v.limit();
        for s in steady(50, 30, 1000) {
            v.update(s);
        }
        assert!(
            v.limit() < before,
            "queue estimate large → shrink: {before} → {}",
            v.limit()
        );
        let before = v.limit();
        v.update(Sample {
            rtt: 10 * MILLISECOND,
            in_flight: 1000,
            dropped: true,
            min_rtt: 0,
        });
        assert!(v.limit() < before);
    }

    #[test]
    fn probing_no_load_rtt_keeps_the_limit() {
        let p = VegasParams {
            probe_every: 10,
            ..params()
        };
        let mut v = Vegas::new(p);
        let mut lowest = f64::MAX;
        for s in steady(500, 10, 1000) {
            v.update(s);
            if v.samples > 20 {
                lowest = lowest.min(v.limit());
            }
        }
        assert!(
            lowest > 20.0,
            "a probe never collapses the limit: lowest {lowest}"
        );
    }
}
