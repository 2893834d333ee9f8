//! TCP Vegas applied to requests: estimate the queue from how far the current RTT is above the
//! no-load RTT (`queue = limit × (1 − rtt_noload / rtt)`); grow while the queue is small,
//! shrink when it is large. Both RTTs are the window's fastest requests (like with like), and
//! the no-load RTT is re-measured by [`NoLoadRtt`]'s brief drain probes, never by dropping the
//! limit to a floor.

use super::noload::{NoLoadRtt, NoLoadSnapshot, Phase, ProbeParams};
use super::{Bounds, ProbedLimit, Sample};
use crate::duration::Nanos;

/// Parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VegasParams {
    /// Limit bounds.
    pub bounds: Bounds,
    /// Weight of each new limit (0..=1).
    pub smoothing: f64,
    /// No-load RTT probes.
    pub probe: ProbeParams,
}

/// Vegas holds a queue of a few requests, well under half the limit: fastest requests 1.5× the
/// baseline for a while mean a stale baseline (or a slower upstream), probed early.
const FAR_ABOVE: f64 = 1.5;

/// State.
#[derive(Debug, Clone)]
pub struct Vegas {
    params: VegasParams,
    limit: f64,
    noload: NoLoadRtt,
}

/// Vegas' thresholds for a limit: (alpha, beta, step), all growing with log10(limit).
fn thresholds(limit: f64) -> (f64, f64, f64) {
    let log = limit.max(1.0).log10().max(1.0);
    (3.0 * log, 6.0 * log, log)
}

impl Vegas {
    /// Starts at the initial limit.
    pub fn new(params: VegasParams) -> Vegas {
        Vegas {
            params,
            limit: params.bounds.clamp(params.bounds.initial),
            noload: NoLoadRtt::new(params.probe, FAR_ABOVE),
        }
    }

    /// Rebuilds from [`ProbedLimit::snapshot`] values (clamped to the parameters).
    pub fn restore(params: VegasParams, (limit, noload): (f64, NoLoadSnapshot)) -> Vegas {
        Vegas {
            params,
            limit: params.bounds.clamp(limit),
            noload: NoLoadRtt::restore(params.probe, FAR_ABOVE, noload),
        }
    }

    /// Feeds one sample taken at `now`; returns the enforced limit.
    pub fn update(&mut self, sample: Sample, now: Nanos) -> f64 {
        let Some((phase, fastest)) = self.track(&sample, now, true) else {
            return self.limit();
        };
        let (alpha, beta, step) = thresholds(self.limit);
        let next = if sample.dropped {
            self.limit - step
        } else if phase == Phase::Probing || f64::from(sample.in_flight) * 2.0 < self.limit {
            return self.limit();
        } else {
            let queue = (self.limit * (1.0 - self.noload.rtt() / fastest)).ceil();
            if queue <= step {
                self.limit + beta
            } else if queue < alpha {
                self.limit + step
            } else if queue > beta {
                self.limit - step
            } else {
                return self.limit();
            }
        };
        let smoothed = self.limit * (1.0 - self.params.smoothing) + next * self.params.smoothing;
        self.limit = self.params.bounds.clamp(smoothed);
        self.limit()
    }
}

impl ProbedLimit for Vegas {
    fn learned(&self) -> f64 {
        self.limit
    }
    fn noload(&self) -> &NoLoadRtt {
        &self.noload
    }
    fn noload_mut(&mut self) -> &mut NoLoadRtt {
        &mut self.noload
    }
    fn bounds(&self) -> &Bounds {
        &self.params.bounds
    }
    /// Vegas holds a queue of alpha..beta requests above capacity.
    fn implied_capacity(&self) -> f64 {
        let (alpha, _, _) = thresholds(self.limit);
        self.limit - alpha
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::concurrency::script::steady;
    use crate::concurrency::Sample;
    use crate::duration::{MILLISECOND, SECOND};
    use crate::test_support::test;

    fn params() -> VegasParams {
        VegasParams {
            bounds: Bounds {
                initial: 20.0,
                min: 5.0,
                max: 300.0,
            },
            smoothing: 1.0,
            probe: ProbeParams {
                interval: 0,
                duration: 0,
            },
        }
    }

    #[test]
    fn grows_when_rtt_stays_at_no_load() {
        let mut v = Vegas::new(params());
        for s in steady(100, 10, 1000) {
            v.update(s, 0);
        }
        assert!(v.limit() > 100.0, "{}", v.limit());
        for s in steady(1000, 10, 1000) {
            v.update(s, 0);
        }
        assert!(v.limit() <= 300.0);
    }

    #[test]
    fn shrinks_when_queueing_and_on_drops() {
        let mut v = Vegas::new(params());
        for s in steady(50, 10, 1000) {
            v.update(s, 0);
        }
        let before = v.limit();
        for s in steady(50, 30, 1000) {
            v.update(s, 0);
        }
        assert!(
            v.limit() < before,
            "queue estimate large → shrink: {before} → {}",
            v.limit()
        );
        let before = v.limit();
        v.update(
            Sample {
                rtt: 10 * MILLISECOND,
                in_flight: 1000,
                dropped: true,
                turned_away: true,
                fastest: 10 * MILLISECOND,
                started: 0,
            },
            0,
        );
        assert!(v.limit() < before);
    }

    #[test]
    fn the_first_probe_halves_the_limit_later_ones_stay_shallow() {
        let p = VegasParams {
            probe: ProbeParams {
                interval: 10 * SECOND,
                duration: 500 * MILLISECOND,
            },
            ..params()
        };
        let mut v = Vegas::new(p);
        let (mut now, mut deep, mut shallow) = (0, 0, 0);
        for s in steady(400, 10, 1000) {
            now += 100 * MILLISECOND;
            let s = Sample {
                started: now - 100 * MILLISECOND,
                ..s
            };
            v.update(s, now);
            if v.noload.probing() {
                let (alpha, _, _) = thresholds(v.limit);
                assert!(v.limit() < v.limit, "the probe lowers the enforced limit");
                if v.noload.probed() {
                    shallow += 1;
                    assert!(
                        (v.limit() - 0.9 * (v.limit - alpha)).abs() < 1e-9,
                        "a measured baseline is probed just below capacity: {} of {}",
                        v.limit(),
                        v.limit
                    );
                } else {
                    deep += 1;
                    assert_eq!(v.limit(), 0.5 * v.limit, "the first probe at half");
                }
            }
        }
        assert!(deep > 0 && shallow > 0, "deep {deep}, shallow {shallow}");
        assert!(v.limit() > 100.0, "{}", v.limit());
    }
}
