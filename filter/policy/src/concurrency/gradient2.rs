//! Gradient2 (Netflix concurrency-limits): compare a long-term RTT average with the recent RTT;
//! when recent latency rises above the long-term baseline (times a tolerance), shrink the limit
//! in proportion, otherwise grow it by a small queue allowance.

use super::{Bounds, Sample};

/// Parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gradient2Params {
    /// Limit bounds.
    pub bounds: Bounds,
    /// Weight of each new limit estimate (0..=1).
    pub smoothing: f64,
    /// How much recent RTT may exceed the long-term RTT before the limit shrinks (≥ 1).
    pub rtt_tolerance: f64,
    /// Samples averaged into the long-term RTT.
    pub long_window: u32,
    /// Requests of queue allowed on top of the gradient's estimate.
    pub queue_size: f64,
}

/// State.
#[derive(Debug, Clone)]
pub struct Gradient2 {
    params: Gradient2Params,
    limit: f64,
    long_rtt: f64,
    noload_rtt: f64,
    samples: u32,
}

impl Gradient2 {
    /// Starts at the initial limit.
    pub fn new(params: Gradient2Params) -> Gradient2 {
        Gradient2 {
            params,
            limit: params.bounds.clamp(params.bounds.initial),
            long_rtt: 0.0,
            noload_rtt: 0.0,
            samples: 0,
        }
    }

    /// Current (fractional) limit.
    pub fn limit(&self) -> f64 {
        self.limit
    }

    /// The learned state: (limit, long_rtt, samples), for sharing between workers.
    pub fn snapshot(&self) -> (f64, f64, u32) {
        (self.limit, self.long_rtt, self.samples)
    }

    /// The learned no-load RTT (lowest window 5th-percentile RTT, drifting up slowly).
    pub fn noload_rtt(&self) -> f64 {
        self.noload_rtt
    }

    /// Restores the no-load RTT of [`Gradient2::noload_rtt`].
    pub fn with_noload_rtt(mut self, noload_rtt: f64) -> Gradient2 {
        self.noload_rtt = super::learned(noload_rtt);
        self
    }

    /// Rebuilds from [`Gradient2::snapshot`] values (clamped to the parameters).
    pub fn restore(
        params: Gradient2Params,
        (limit, long_rtt, samples): (f64, f64, u32),
    ) -> Gradient2 {
        let mut restored = Gradient2::new(params);
        restored.limit = params.bounds.clamp(limit);
        restored.long_rtt = super::learned(long_rtt);
        restored.samples = samples;
        restored
    }

    /// Feeds one sample.
    pub fn update(&mut self, sample: Sample) -> f64 {
        let rtt = sample.rtt as f64;
        if rtt <= 0.0 {
            return self.limit;
        }
        // Long-term RTT: plain average while warming up, then an exponential average.
        self.samples = self.samples.saturating_add(1);
        let window = f64::from(self.params.long_window.max(1));
        if f64::from(self.samples) <= window.min(10.0) {
            self.long_rtt += (rtt - self.long_rtt) / f64::from(self.samples);
        } else {
            self.long_rtt += (rtt - self.long_rtt) / window;
        }
        // After a long period of high latency the baseline drifts up; pull it back towards
        // recent RTT faster so the limit can recover.
        if self.long_rtt / rtt > 2.0 {
            self.long_rtt *= 0.95;
        }
        // Application-limited: too little load to learn anything about capacity.
        if f64::from(sample.in_flight) < self.limit / 2.0 {
            return self.limit;
        }
        // No-load RTT: the lowest window "fastest requests" RTT seen, drifting up slowly so a
        // lasting latency shift is accepted. Without it, a service that starts out overloaded
        // teaches gradient2 its queued latency as normal and the limit never comes down.
        if sample.min_rtt > 0 {
            let fastest = sample.min_rtt as f64;
            self.noload_rtt = if self.noload_rtt <= 0.0 || fastest < self.noload_rtt {
                fastest
            } else {
                (self.noload_rtt * (1.0 + 0.1 / window)).min(fastest)
            };
        }
        // Compare like with like: the window's fastest requests against the no-load RTT (a
        // standing queue delays every request, so it lifts them too); without them, the window
        // aggregate against the long-term aggregate, as in Netflix's.
        let (baseline, current) = if self.noload_rtt > 0.0 && sample.min_rtt > 0 {
            (self.noload_rtt, sample.min_rtt as f64)
        } else {
            (self.long_rtt, rtt)
        };
        let gradient = (self.params.rtt_tolerance * baseline / current).clamp(0.5, 1.0);
        let estimate = self.limit * gradient + self.params.queue_size;
        let smoothed =
            self.limit * (1.0 - self.params.smoothing) + estimate * self.params.smoothing;
        self.limit = self.params.bounds.clamp(smoothed);
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::concurrency::script::steady;
    use crate::test_support::test;

    fn params() -> Gradient2Params {
        Gradient2Params {
            bounds: Bounds {
                initial: 20.0,
                min: 5.0,
                max: 200.0,
            },
            smoothing: 0.2,
            rtt_tolerance: 1.5,
            long_window: 600,
            queue_size: 4.0,
        }
    }

    #[test]
    fn grows_under_headroom_up_to_max() {
        let mut g = Gradient2::new(params());
        let mut last = g.limit();
        for s in steady(50, 10, 1000) {
            let limit = g.update(s);
            assert!(limit >= last, "steady RTT with full load grows the limit");
            last = limit;
        }
        assert!(last > 40.0, "{last}");
        for s in steady(2000, 10, 1000) {
            g.update(s);
        }
        assert_eq!(g.limit(), 200.0, "bounded by max");
    }

    #[test]
    fn backs_off_when_latency_rises() {
        let mut g = Gradient2::new(params());
        for s in steady(200, 10, 1000) {
            g.update(s);
        }
        let before = g.limit();
        for s in steady(30, 40, 1000) {
            g.update(s);
        }
        assert!(
            g.limit() < before * 0.6,
            "queueing (4× RTT) shrinks the limit: {before} → {}",
            g.limit()
        );
        for s in steady(3000, 40, 1000) {
            g.update(s);
        }
        assert!(g.limit() >= 5.0, "bounded by min");
    }

    #[test]
    fn idle_load_never_lowers_the_limit() {
        let mut g = Gradient2::new(params());
        for s in steady(100, 10, 2) {
            g.update(s);
        }
        assert_eq!(
            g.limit(),
            20.0,
            "app-limited samples leave the initial limit"
        );
        for s in steady(100, 80, 2) {
            g.update(s);
        }
        assert_eq!(
            g.limit(),
            20.0,
            "even slow samples at low load do not throttle"
        );
    }
}
