//! Gradient2 (after Netflix concurrency-limits): compare recent latency with a no-load
//! baseline; when it rises above the baseline times a tolerance, shrink the limit in proportion,
//! otherwise grow it by a small queue allowance.
//!
//! Two departures from Netflix's, both measured in `host-tests/bench/concurrency-overload.json`:
//! - the comparison is like with like — the window's fastest requests (5th percentile) against
//!   their no-load value — instead of the window average against a long-term average. A
//!   long-term average learns queued latency as normal when a service starts out overloaded
//!   (the limit grew 104 → 194 in 15 s at 3× capacity);
//! - the baseline comes from [`NoLoadRtt`]: it only falls between brief drain probes and is
//!   replaced at each probe, instead of drifting up (a drift learns the limiter's own standing
//!   queue: the limit crept to 63–76 for a capacity of 40).
//!
//! At equilibrium under overload the limit sits where `tolerance × baseline / current` balances
//! the queue allowance: a little above the upstream's capacity C, roughly `C × (1 + (t − 1) ×
//! p5 / mean service time) + queue_allowance`. A probe infers C as `(limit − allowance) / t`,
//! which is at or below that (p5 ≤ mean), so it errs towards draining deeper.

use super::noload::{NoLoadRtt, NoLoadSnapshot, Phase, ProbeParams};
use super::{Bounds, ProbedLimit, Sample};
use crate::duration::Nanos;

/// Parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gradient2Params {
    /// Limit bounds.
    pub bounds: Bounds,
    /// Weight of each new limit estimate (0..=1).
    pub smoothing: f64,
    /// How much recent RTT may exceed the no-load RTT before the limit shrinks (≥ 1).
    pub rtt_tolerance: f64,
    /// Requests of queue allowed on top of the gradient's estimate.
    pub queue_size: f64,
    /// No-load RTT probes.
    pub probe: ProbeParams,
    /// Start from the initial limit and double it each window the limit binds while latency
    /// holds, until it first rises (see [`Gradient2::update`]).
    pub slow_start: bool,
}

/// How much slow start grows the limit per window.
const SLOW_START_GROWTH: f64 = 2.0;

/// Well above the tolerance the equilibrium sits at: a baseline this far below the fastest
/// requests for a while is stale (or the upstream got slower) and is probed early.
fn far_above(params: &Gradient2Params) -> f64 {
    1.25 * params.rtt_tolerance
}

/// State.
#[derive(Debug, Clone)]
pub struct Gradient2 {
    params: Gradient2Params,
    limit: f64,
    noload: NoLoadRtt,
    /// Still in slow start.
    slow_start: bool,
}

impl Gradient2 {
    /// Starts at the initial limit.
    pub fn new(params: Gradient2Params) -> Gradient2 {
        Gradient2 {
            params,
            limit: params.bounds.clamp(params.bounds.initial),
            noload: NoLoadRtt::new(params.probe, far_above(&params)),
            slow_start: params.slow_start,
        }
    }

    /// Whether it is still in slow start.
    pub fn in_slow_start(&self) -> bool {
        self.slow_start
    }

    /// Rebuilds from [`ProbedLimit::snapshot`] values (clamped to the parameters).
    pub fn restore(
        params: Gradient2Params,
        (limit, noload): (f64, NoLoadSnapshot),
        slow_start: bool,
    ) -> Gradient2 {
        Gradient2 {
            params,
            limit: params.bounds.clamp(limit),
            noload: NoLoadRtt::restore(params.probe, far_above(&params), noload),
            slow_start: slow_start && params.slow_start,
        }
    }

    /// Feeds one sample taken at `now`; returns the enforced limit.
    pub fn update(&mut self, sample: Sample, now: Nanos) -> f64 {
        let Some((phase, fastest)) = self.track(&sample, now) else {
            return self.limit();
        };
        // Hold the limit during a probe (its samples measure the drain, not the load), and when
        // load is too low to say anything about capacity (application-limited).
        if phase == Phase::Probing || f64::from(sample.in_flight) < self.limit / 2.0 {
            return self.limit();
        }
        let gradient = (self.params.rtt_tolerance * self.noload.rtt() / fastest).clamp(0.5, 1.0);
        if self.slow_start {
            return self.slow_start_step(&sample, gradient);
        }
        let estimate = self.limit * gradient + self.params.queue_size;
        let smoothed =
            self.limit * (1.0 - self.params.smoothing) + estimate * self.params.smoothing;
        self.limit = self.params.bounds.clamp(smoothed);
        self.limit()
    }
}

impl Gradient2 {
    /// Slow start (as TCP's): a cold limiter knows nothing of the upstream's capacity, and an
    /// initial limit far above it fills the upstream's own queue for as long as the gradient
    /// takes to come down (seconds, at smoothing 0.2). So it starts low, and each window in
    /// which demand met the limit (`turned_away`) with latency holding doubles it, the queue
    /// absorbing the ramp. The first window whose fastest requests exceed the tolerance (or
    /// that saw a drop) ends slow start and goes back to the last limit that held, half the
    /// current one; from there the gradient rules.
    fn slow_start_step(&mut self, sample: &Sample, gradient: f64) -> f64 {
        if gradient < 1.0 || sample.dropped {
            self.slow_start = false;
            self.limit = self.params.bounds.clamp(self.limit / SLOW_START_GROWTH);
        } else if sample.turned_away {
            self.limit = self.params.bounds.clamp(self.limit * SLOW_START_GROWTH);
            if self.limit >= self.params.bounds.max {
                self.slow_start = false;
            }
        }
        self.limit()
    }
}

impl ProbedLimit for Gradient2 {
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
    /// Equilibrium: limit ≈ tolerance × C + allowance, so C ≈ (limit − allowance) / t.
    fn implied_capacity(&self) -> f64 {
        (self.limit - self.params.queue_size) / self.params.rtt_tolerance
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
            queue_size: 4.0,
            probe: ProbeParams {
                interval: 0,
                duration: 0,
            },
            slow_start: false,
        }
    }

    #[test]
    fn grows_under_headroom_up_to_max() {
        let mut g = Gradient2::new(params());
        let mut last = g.limit();
        for s in steady(50, 10, 1000) {
            let limit = g.update(s, 0);
            assert!(limit >= last, "steady RTT with full load grows the limit");
            last = limit;
        }
        assert!(last > 40.0, "{last}");
        for s in steady(2000, 10, 1000) {
            g.update(s, 0);
        }
        assert_eq!(g.limit(), 200.0, "bounded by max");
    }

    #[test]
    fn backs_off_when_latency_rises() {
        let mut g = Gradient2::new(params());
        for s in steady(200, 10, 1000) {
            g.update(s, 0);
        }
        let before = g.limit();
        for s in steady(30, 40, 1000) {
            g.update(s, 0);
        }
        assert!(
            g.limit() < before * 0.6,
            "queueing (4× RTT) shrinks the limit: {before} → {}",
            g.limit()
        );
        for s in steady(3000, 40, 1000) {
            g.update(s, 0);
        }
        assert!(g.limit() >= 5.0, "bounded by min");
    }

    #[test]
    fn idle_load_never_lowers_the_limit() {
        let mut g = Gradient2::new(params());
        for s in steady(100, 10, 2) {
            g.update(s, 0);
        }
        assert_eq!(
            g.limit(),
            20.0,
            "app-limited samples leave the initial limit"
        );
        for s in steady(100, 80, 2) {
            g.update(s, 0);
        }
        assert_eq!(
            g.limit(),
            20.0,
            "even slow samples at low load do not throttle"
        );
    }

    #[test]
    fn slow_start_doubles_while_latency_holds_then_falls_back_to_the_last_limit_that_held() {
        let mut p = params();
        p.slow_start = true;
        p.bounds.initial = 5.0;
        let mut g = Gradient2::new(p);
        let window = |fastest_ms: u64, in_flight: u32| Sample {
            rtt: fastest_ms * crate::duration::MILLISECOND,
            in_flight,
            dropped: false,
            turned_away: true,
            fastest: fastest_ms * crate::duration::MILLISECOND,
            started: 0,
        };
        let mut limits = Vec::new();
        for _ in 0..3 {
            let limit = g.limit() as u32;
            limits.push(g.update(window(50, limit), 0));
        }
        assert_eq!(limits, [10.0, 20.0, 40.0], "doubles each binding window at no-load latency");
        assert!(g.in_slow_start());
        // Latency rises past the tolerance (1.5 × 50 ms): back to the last limit that held.
        assert_eq!(g.update(window(90, 40), 0), 20.0);
        assert!(!g.in_slow_start());
        // From there the gradient rules: another rise shrinks it gradually, no more doubling.
        let after = g.update(window(200, 20), 0);
        assert!(after < 20.0, "{after}");
        let mut quiet = Gradient2::new(p);
        let idle = Sample {
            turned_away: false,
            ..window(50, 5)
        };
        assert_eq!(quiet.update(idle, 0), 5.0, "no growth while demand stays under the limit");
        assert!(quiet.in_slow_start());
    }
}

