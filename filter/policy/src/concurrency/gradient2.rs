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
    /// Requests of queue allowed on top of the gradient's estimate…
    pub queue_size: f64,
    /// …or, when above 0, this fraction of the limit, at most `queue_size` (the default: 10 %
    /// of the limit up to 4; a fixed 4 is 10 % of a limit of 40 but 40 % of one of 10, and
    /// holds a small upstream's queue deep).
    pub queue_fraction: f64,
    /// No-load RTT probes.
    pub probe: ProbeParams,
    /// Start from the initial limit and grow it ([`SLOW_START_GROWTH`]) each window the limit
    /// binds while latency holds, until it first rises (see [`Gradient2::update`]).
    pub slow_start: bool,
}

/// How much slow start grows the limit per window. Less than TCP's doubling: the step that
/// overshoots the capacity fills the upstream's queue with up to (growth − 1) × the capacity
/// until the rise shows, and every request admitted meanwhile waits for it. Measured on the
/// simulator's cold 10× spike (seeds 1–8 and 11): admitted critical p99 109–127 ms with 2,
/// 104–115 ms with 1.75 (2× unloaded: 120 ms), warm-up at 0.8× rejecting nothing on 30 of 30
/// seeds with both. Not lower: the step must stay clearly above the rise it ends on
/// ([`far_above`], 1.5× by default) or an overshoot of one step can pass unseen (1.5 let a
/// limit of 15 on an upstream of 10 through on one seed, p99 155 ms).
const SLOW_START_GROWTH: f64 = 1.75;

/// Base RTTs after a growth step before a window may show what the grown limit did: a request
/// admitted just after it can queue behind the ones already in service (up to one more base
/// RTT while the limit stays within twice the capacity), so a window that began one base RTT
/// later still completes requests admitted before the step, and reads as "latency holds"
/// when the grown limit already queues.
const SETTLE_BASE_RTTS: f64 = 2.0;

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
    /// The lowest window RTT (the window's aggregate) seen in slow start (0: none yet).
    slow_start_base: f64,
    /// When slow start last grew the limit: it grows again only on a window that began
    /// [`SETTLE_BASE_RTTS`] base RTTs after that, whose requests all met the grown limit
    /// (windows of every worker feed this one record, so counting windows would not do).
    slow_start_grew_at: Nanos,
}

impl Gradient2 {
    /// Starts at the initial limit.
    pub fn new(params: Gradient2Params) -> Gradient2 {
        Gradient2 {
            params,
            limit: params.bounds.clamp(params.bounds.initial),
            noload: NoLoadRtt::new(params.probe, far_above(&params)),
            slow_start: params.slow_start,
            slow_start_base: 0.0,
            slow_start_grew_at: 0,
        }
    }

    /// Slow start's state: whether it is on, when it last grew the limit, and the lowest
    /// window RTT seen.
    pub fn slow_start_state(&self) -> (bool, Nanos, f64) {
        (
            self.slow_start,
            self.slow_start_grew_at,
            self.slow_start_base,
        )
    }

    /// Whether it is still in slow start.
    pub fn in_slow_start(&self) -> bool {
        self.slow_start
    }

    /// Rebuilds from [`ProbedLimit::snapshot`] values (clamped to the parameters).
    pub fn restore(
        params: Gradient2Params,
        (limit, noload): (f64, NoLoadSnapshot),
        (slow_start, grew_at, base): (bool, Nanos, f64),
    ) -> Gradient2 {
        Gradient2 {
            params,
            limit: params.bounds.clamp(limit),
            noload: NoLoadRtt::restore(params.probe, far_above(&params), noload),
            slow_start: slow_start && params.slow_start,
            slow_start_base: if base.is_finite() && base > 0.0 {
                base
            } else {
                0.0
            },
            slow_start_grew_at: grew_at,
        }
    }

    /// Feeds one sample taken at `now`; returns the enforced limit.
    pub fn update(&mut self, sample: Sample, now: Nanos) -> f64 {
        let Some((phase, fastest)) = self.track(&sample, now, !self.slow_start) else {
            return self.limit();
        };
        if self.slow_start && phase != Phase::Probing {
            return self.slow_start_step(&sample, now);
        }
        // Hold the limit during a probe (its samples measure the drain, not the load), and when
        // load is too low to say anything about capacity (application-limited).
        if phase == Phase::Probing || f64::from(sample.in_flight) < self.limit / 2.0 {
            return self.limit();
        }
        let gradient = (self.params.rtt_tolerance * self.noload.rtt() / fastest).clamp(0.5, 1.0);
        let estimate = self.limit * gradient + self.allowance();
        let smoothed =
            self.limit * (1.0 - self.params.smoothing) + estimate * self.params.smoothing;
        self.limit = self.params.bounds.clamp(smoothed);
        self.limit()
    }
}

impl Gradient2 {
    /// The queue allowed on top of the gradient's estimate at the current limit.
    fn allowance(&self) -> f64 {
        if self.params.queue_fraction > 0.0 {
            (self.params.queue_fraction * self.limit).min(self.params.queue_size)
        } else {
            self.params.queue_size
        }
    }

    /// Slow start (as TCP's): a cold limiter knows nothing of the upstream's capacity, and an
    /// initial limit far above it fills the upstream's own queue for as long as the gradient
    /// takes to come down (seconds, at smoothing 0.2). So it starts low, and each window in
    /// which demand met the limit (`turned_away`, with the window's peak in flight at half the
    /// limit or more) grows it by [`SLOW_START_GROWTH`], the queue absorbing the ramp; after a step
    /// only a window that began [`SETTLE_BASE_RTTS`] base RTTs later may grow it again, since
    /// only its requests all met the grown limit. Rise detection compares the
    /// window's RTT (its `aggregate`) with the lowest window RTT seen in slow start: once the
    /// upstream queues, every request after the step waits, so the aggregate moves within
    /// one window, where the fastest requests (gradient2's usual signal) keep showing the
    /// unqueued ones for a while; and a window aggregate is steady where a small window's 5th
    /// percentile is noisy. A window beyond [`far_above`] × that base (or with a drop) ends
    /// slow start at the last limit that held (the current one / growth); from there the
    /// gradient rules.
    fn slow_start_step(&mut self, sample: &Sample, now: Nanos) -> f64 {
        let rtt = crate::numeric::approx_f64(sample.rtt);
        let base = self.slow_start_base;
        let rose = base > 0.0 && rtt > far_above(&self.params) * base;
        if rose || sample.dropped {
            self.slow_start = false;
            self.limit = self.params.bounds.clamp(self.limit / SLOW_START_GROWTH);
            return self.limit();
        }
        if rtt > 0.0 && (base == 0.0 || rtt < base) {
            self.slow_start_base = rtt;
        }
        let settled = self
            .slow_start_grew_at
            .saturating_add(crate::numeric::saturating_u64(
                SETTLE_BASE_RTTS * self.slow_start_base,
            ));
        let binding = sample.turned_away && f64::from(sample.in_flight) >= self.limit / 2.0;
        if binding && (self.slow_start_grew_at == 0 || sample.started >= settled) {
            self.slow_start_grew_at = now.max(1);
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
        (self.limit - self.allowance()) / self.params.rtt_tolerance
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
            queue_fraction: 0.0,
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
    fn no_probe_halves_the_limit_slow_start_is_testing() {
        use crate::duration::{MILLISECOND, SECOND};
        let mut p = params();
        p.slow_start = true;
        p.bounds.initial = 5.0;
        p.probe = ProbeParams {
            interval: SECOND,
            duration: 200 * MILLISECOND,
        };
        let mut g = Gradient2::new(p);
        let window = |in_flight: u32, turned_away: bool, i: u64| Sample {
            rtt: 50 * MILLISECOND,
            in_flight,
            dropped: false,
            turned_away,
            fastest: 50 * MILLISECOND,
            started: i * 100 * MILLISECOND,
        };
        let end = |i: u64| (i + 1) * 100 * MILLISECOND;
        // Unloaded for 2 s: a probe comes due (an eighth of the interval after the first).
        for i in 0..20 {
            g.update(window(1, false, i), end(i));
        }
        // Then demand meets the limit: each growth step is enforced, none is held down.
        let mut enforced = Vec::new();
        for i in 20..30 {
            let limit = crate::numeric::saturating_u32(g.limit());
            enforced.push(g.update(window(limit, true, i), end(i)));
            assert_eq!(g.limit(), g.learned(), "no probe in slow start");
        }
        let step = |n: i32| 5.0 * SLOW_START_GROWTH.powi(n);
        assert_eq!(enforced[0], step(1));
        assert!(
            enforced.contains(&step(2)) && enforced.contains(&step(3)),
            "{enforced:?}"
        );
    }

    #[test]
    fn slow_start_grows_while_latency_holds_then_falls_back_to_the_last_limit_that_held() {
        use crate::duration::MILLISECOND;
        let mut p = params();
        p.slow_start = true;
        p.bounds.initial = 5.0;
        let mut g = Gradient2::new(p);
        // Window `i` runs from i × 100 ms to (i + 1) × 100 ms.
        // A base RTT of 60 ms: a window must begin 120 ms after a doubling to judge it.
        let window = |rtt_ms: u64, in_flight: u32, i: u64| Sample {
            rtt: rtt_ms * MILLISECOND,
            in_flight,
            dropped: false,
            turned_away: true,
            fastest: rtt_ms * MILLISECOND,
            started: i * 100 * MILLISECOND,
        };
        let end = |i: u64| (i + 1) * 100 * MILLISECOND;
        let step = |n: i32| 5.0 * SLOW_START_GROWTH.powi(n);
        let mut limits = Vec::new();
        for i in 0..7 {
            let limit = crate::numeric::saturating_u32(g.limit());
            limits.push(g.update(window(60, limit, i), end(i)));
        }
        assert_eq!(
            limits,
            [
                step(1),
                step(1),
                step(1),
                step(2),
                step(2),
                step(2),
                step(3)
            ],
            "grows on binding windows that began two base RTTs after the last step \
             (one base RTT later, the window's requests still include ones admitted before it)"
        );
        assert!(g.in_slow_start());
        // A window that did not meet the limit holds it.
        let unbound = Sample {
            turned_away: false,
            ..window(50, 40, 7)
        };
        assert_eq!(g.update(unbound, end(7)), step(3));
        // The window's RTT rises well past the lowest seen (now 50 ms; beyond far_above, 1.875×):
        // back to the last limit that held.
        let slower = Sample {
            turned_away: false,
            ..window(90, 40, 8)
        };
        assert_eq!(
            g.update(slower, end(8)),
            step(3),
            "90 ms is within 1.875 × 50 ms"
        );
        assert!(g.in_slow_start());
        assert_eq!(g.update(window(100, 40, 9), end(9)), step(2));
        assert!(!g.in_slow_start());
        // From there the gradient rules: another rise shrinks it gradually, no more growth steps.
        let after = g.update(window(200, 20, 10), end(10));
        assert!(after < step(2), "{after}");
        let mut quiet = Gradient2::new(p);
        let idle = Sample {
            turned_away: false,
            ..window(50, 5, 0)
        };
        assert_eq!(
            quiet.update(idle, end(0)),
            5.0,
            "no growth while demand stays under the limit"
        );
        assert!(quiet.in_slow_start());
    }
}
