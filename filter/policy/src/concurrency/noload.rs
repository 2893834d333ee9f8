//! The no-load RTT — what a request costs when it meets no queue — learned by brief drains.
//!
//! Why a drain: every delay-based limit compares current latency with a no-load baseline, and
//! a limiter that runs at its limit keeps a small queue upstream, so its own samples never show
//! the baseline again. Learning "the lowest RTT seen, drifting up slowly" (so a lasting latency
//! shift is accepted) therefore learns the standing queue too, and the limit creeps up with it.
//! Envoy's native filter re-measures by dropping concurrency to a floor (3 by default) for a
//! whole measurement, which rejects requests (envoy#8337); BBR drains to 4 packets.
//!
//! Here a probe is short and, once the baseline has settled, shallow: while demand exceeds the
//! limit, every `interval` the enforced limit is lowered for `duration` (long enough for the
//! upstream queue to empty and for a window of unqueued requests to complete) to just below the
//! capacity the algorithm's own equilibrium implies. That inference is only as good as the
//! baseline, so the first probe — whose baseline came from traffic that may already have been
//! queued — halves the limit instead: a shallow probe above capacity never drains the queue and
//! would confirm a baseline learned too high. (A baseline too *low* only makes the inferred
//! capacity, and so the probe, lower.) The fastest window statistic seen during the probe
//! *replaces* the baseline (so a lasting shift up is accepted at the next probe); between probes
//! the baseline only falls, and only by a clear step (10 %), which also brings the next probe
//! forward. The first probe comes `interval / 8` after the baseline is first
//! learned, and a probe that moves the baseline by more than 10 % is followed by another after
//! `interval / 8` (as is a baseline that falls by more than 10 % between probes: after a
//! latency shift down, windows that mix slow and fast requests leave it too high): a baseline
//! learned while already overloaded (at a cold start the first
//! window's fastest requests are its median, not its fastest) converges in a few seconds, and a
//! settled one costs one probe per interval. A baseline that the fastest requests stay far
//! above for 8 windows in a row (a lasting latency shift, or a limit still far above capacity)
//! is probed at once rather than at the end of the interval, so a limit that backs off from a
//! slower upstream comes back within seconds.
//!
//! A probe is also the test of whose queue it is: a probe result above the baseline is learned
//! only if draining did not lower the latency (the upstream really got slower), and a rise of
//! more than 10 % only from a probe brought forward by a lasting rise. If draining lowered the
//! latency but not to the baseline, the probe was too shallow to empty our own queue and
//! measured what was left of it; it is discarded and repeated soon from the lower limit. A
//! probe that starts as load steps up compares with a window from before the queue built, so
//! only a lasting rise may move the baseline far. (Seen in Envoy and the simulator before these
//! rules: a probe at the onset of 3× overload replaced a 62 ms baseline with 90–150 ms, and the
//! limit held 45 for a capacity of 16.) A limiter below saturation never probes: an idle or warming service
//! is never throttled by measurement.

use crate::duration::Nanos;

/// When and how long to probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeParams {
    /// Time between probes while saturated (0 = never probe).
    pub interval: Nanos,
    /// How long the lowered limit holds.
    pub duration: Nanos,
}

/// What the no-load tracker says about the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Normal operation: the algorithm may move the limit.
    Tracking,
    /// A probe is under way: hold the limit, enforce the probe limit.
    Probing,
}

/// The learned no-load RTT and the probe schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoLoadRtt {
    params: ProbeParams,
    /// Learned no-load RTT in nanoseconds (0 = not learned yet).
    rtt: f64,
    /// When the next probe is due (once the limiter is saturated).
    next_probe: Nanos,
    /// When the current probe began, if one is under way.
    probing_since: Option<Nanos>,
    /// Fastest statistic seen during the current probe.
    probe_best: f64,
    /// "Far above" the baseline: this ratio of it.
    far_above: f64,
    /// Consecutive windows whose fastest requests were far above the baseline and not falling.
    high_streak: u32,
    /// The previous window's fastest requests (ns, 0 = none).
    last_fastest: f64,
    /// Whether a probe has measured the baseline (shallow probes are enough from then on).
    probed: bool,
    /// Whether the current probe was brought forward by a lasting rise.
    for_rise: bool,
}

/// Windows in a row far above the baseline that bring a probe forward.
const HIGH_STREAK_PROBE: u32 = 8;

/// The tracker's state as plain numbers, for shared data.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct NoLoadSnapshot {
    /// Learned RTT (ns, 0 = none).
    pub rtt: f64,
    /// When the next probe is due.
    pub next_probe: Nanos,
    /// Current probe start, 0 when none (time 0 is never a probe start: see `observe`).
    pub probing_since: Nanos,
    /// Best RTT seen in the current probe (0 = none).
    pub probe_best: f64,
    /// Windows in a row far above the baseline and not falling.
    pub high_streak: u32,
    /// The previous window's fastest requests.
    pub last_fastest: f64,
    /// Whether a probe has measured the baseline.
    pub probed: bool,
    /// Whether the current probe was brought forward by a lasting rise.
    pub for_rise: bool,
}

impl NoLoadRtt {
    /// Nothing learned yet; a window whose fastest requests exceed `far_above` × the baseline
    /// counts towards an early probe (choose it above the algorithm's own tolerance, so its
    /// equilibrium never looks "far above").
    pub fn new(params: ProbeParams, far_above: f64) -> NoLoadRtt {
        NoLoadRtt {
            params,
            rtt: 0.0,
            next_probe: 0,
            probing_since: None,
            probe_best: 0.0,
            far_above,
            high_streak: 0,
            last_fastest: 0.0,
            probed: false,
            for_rise: false,
        }
    }

    /// Whether a probe has measured the baseline, so the next may be shallow (module doc).
    pub fn probed(&self) -> bool {
        self.probed
    }

    /// Learned no-load RTT in nanoseconds (0 = not learned).
    pub fn rtt(&self) -> f64 {
        self.rtt
    }

    /// Whether a probe is under way.
    pub fn probing(&self) -> bool {
        self.probing_since.is_some()
    }

    /// Feeds a window's fastest-requests RTT (`fastest`, ns) observed at `now`; `saturated`
    /// says whether the limit was binding during the window.
    pub fn observe(&mut self, fastest: f64, now: Nanos, saturated: bool) -> Phase {
        if !(fastest.is_finite() && fastest > 0.0) {
            return if self.probing() {
                Phase::Probing
            } else {
                Phase::Tracking
            };
        }
        if let Some(since) = self.probing_since {
            if self.probe_best <= 0.0 || fastest < self.probe_best {
                self.probe_best = fastest;
            }
            if now.saturating_sub(since) < self.params.duration {
                return Phase::Probing;
            }
            // A lower value is always learned. A higher one only if draining did not lower the
            // latency (the rise is the upstream's, not a queue of ours): a drain that lowered
            // it but not to the baseline was too shallow — it measured what was left of our
            // queue — so keep the baseline and probe again soon, from a lower limit.
            let best = self.probe_best;
            let accepted = best <= self.rtt
                || (best >= 0.9 * self.last_fastest && (self.for_rise || best <= 1.1 * self.rtt));
            let moved = !accepted || (best - self.rtt).abs() > 0.1 * self.rtt;
            self.probed = true;
            if accepted {
                self.rtt = best;
            }
            self.probing_since = None;
            self.probe_best = 0.0;
            self.high_streak = 0;
            self.next_probe = now.saturating_add(if moved {
                self.params.interval / 8
            } else {
                self.params.interval
            });
            return Phase::Probing;
        }
        if self.rtt <= 0.0 {
            self.rtt = fastest;
            self.next_probe = now.saturating_add(self.params.interval / 8);
        } else if fastest < 0.9 * self.rtt {
            // Only a clear fall counts: following every small dip would ratchet the baseline
            // down to the luckiest window's noise (with 4 workers, 125-sample windows, it fell
            // 25 % below the true value); the probe it brings forward re-measures it.
            self.rtt = fastest;
            let soon = now.saturating_add(self.params.interval / 8);
            self.next_probe = self.next_probe.min(soon);
        }
        self.last_fastest = fastest;
        if fastest > self.far_above * self.rtt {
            self.high_streak = self.high_streak.saturating_add(1);
        } else {
            self.high_streak = 0;
        }
        let rise = self.high_streak >= HIGH_STREAK_PROBE;
        let due = self.params.interval > 0 && now > 0 && (now >= self.next_probe || rise);
        if saturated && due {
            self.probing_since = Some(now);
            self.probe_best = 0.0;
            self.for_rise = rise;
        }
        Phase::Tracking
    }

    /// Plain numbers for shared data.
    pub fn snapshot(&self) -> NoLoadSnapshot {
        NoLoadSnapshot {
            rtt: self.rtt,
            next_probe: self.next_probe,
            probing_since: self.probing_since.unwrap_or(0),
            probe_best: self.probe_best,
            high_streak: self.high_streak,
            last_fastest: self.last_fastest,
            probed: self.probed,
            for_rise: self.for_rise,
        }
    }

    /// Rebuilds from [`NoLoadRtt::snapshot`] (non-finite or negative RTTs become "unknown").
    pub fn restore(params: ProbeParams, far_above: f64, snapshot: NoLoadSnapshot) -> NoLoadRtt {
        NoLoadRtt {
            params,
            far_above,
            high_streak: snapshot.high_streak,
            last_fastest: super::learned(snapshot.last_fastest),
            probed: snapshot.probed,
            for_rise: snapshot.for_rise,
            rtt: super::learned(snapshot.rtt),
            next_probe: snapshot.next_probe,
            probing_since: (snapshot.probing_since > 0).then_some(snapshot.probing_since),
            probe_best: super::learned(snapshot.probe_best),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::{MILLISECOND, SECOND};
    use crate::test_support::test;

    const MS: f64 = MILLISECOND as f64;

    fn tracker() -> NoLoadRtt {
        NoLoadRtt::new(
            ProbeParams {
                interval: 10 * SECOND,
                duration: 500 * MILLISECOND,
            },
            1.5,
        )
    }

    #[test]
    fn baseline_only_falls_between_probes() {
        let mut n = tracker();
        assert_eq!(n.observe(20.0 * MS, SECOND, true), Phase::Tracking);
        assert_eq!(n.rtt(), 20.0 * MS);
        n.observe(30.0 * MS, 2 * SECOND, false);
        assert_eq!(n.rtt(), 20.0 * MS, "a queued window does not lift it");
        n.observe(19.0 * MS, 3 * SECOND, false);
        assert_eq!(
            n.rtt(),
            20.0 * MS,
            "noise-sized dips do not ratchet it down"
        );
        n.observe(15.0 * MS, 3 * SECOND, false);
        assert_eq!(n.rtt(), 15.0 * MS);
        n.observe(f64::NAN, 4 * SECOND, true);
        assert_eq!(n.rtt(), 15.0 * MS, "no information, no change");
    }

    #[test]
    fn probes_only_when_saturated_and_due_and_replaces_the_baseline() {
        let mut n = tracker();
        n.observe(20.0 * MS, SECOND, true);
        n.observe(20.0 * MS, 2 * SECOND, true);
        assert!(!n.probing(), "not before interval/8");
        n.observe(20.0 * MS, 2 * SECOND + 500 * MILLISECOND, true);
        assert!(
            n.probing(),
            "the first probe comes interval/8 after learning"
        );
        n.observe(20.0 * MS, 3 * SECOND, true);
        assert!(!n.probing());
        n.observe(20.0 * MS, 8 * SECOND, true);
        assert!(!n.probing(), "an unmoved baseline waits a whole interval");
        assert_eq!(n.observe(21.0 * MS, 13 * SECOND, false), Phase::Tracking);
        assert!(!n.probing(), "an unsaturated limiter never probes");
        n.observe(21.0 * MS, 13 * SECOND, true);
        assert!(n.probing(), "due and saturated");
        assert_eq!(
            n.observe(22.0 * MS, 13 * SECOND + 250 * MILLISECOND, true),
            Phase::Probing
        );
        assert_eq!(
            n.observe(21.5 * MS, 13 * SECOND + 500 * MILLISECOND, true),
            Phase::Probing
        );
        assert!(!n.probing(), "the probe ended after its duration");
        assert_eq!(
            n.rtt(),
            21.5 * MS,
            "a small rise that draining did not remove is accepted"
        );
        assert_eq!(n.observe(21.5 * MS, 14 * SECOND, true), Phase::Tracking);
        assert!(!n.probing(), "a settled baseline waits a whole interval");
        n.observe(21.5 * MS, 24 * SECOND, true);
        assert!(n.probing(), "and then probes again");
    }

    #[test]
    fn a_lasting_rise_brings_the_probe_forward() {
        let mut n = tracker();
        n.observe(20.0 * MS, SECOND, true);
        let mut t = 3 * SECOND;
        n.observe(20.0 * MS, t, true);
        n.observe(20.0 * MS, t + SECOND, true);
        assert!(!n.probing(), "settled: next probe in 10 s");
        for _ in 0..7 {
            t += 4 * SECOND / 10;
            n.observe(41.0 * MS, t, true);
            assert!(!n.probing());
        }
        n.observe(41.0 * MS, t + 400 * MILLISECOND, true);
        assert!(
            n.probing(),
            "8 windows far above the baseline probe at once"
        );
    }

    #[test]
    fn a_falling_baseline_is_probed_soon() {
        let mut n = tracker();
        n.observe(20.0 * MS, SECOND, true);
        n.observe(20.0 * MS, 3 * SECOND, true);
        n.observe(20.0 * MS, 4 * SECOND, true);
        assert!(!n.probing(), "settled: next probe at 14 s");
        n.observe(10.0 * MS, 5 * SECOND, true);
        assert_eq!(n.rtt(), 10.0 * MS, "falls at once");
        n.observe(12.0 * MS, 6 * SECOND, true);
        assert!(!n.probing(), "not at once");
        n.observe(12.0 * MS, 6 * SECOND + 500 * MILLISECOND, true);
        assert!(n.probing(), "but interval/8 later");
    }

    #[test]
    fn a_probe_that_only_drains_part_of_our_queue_is_discarded() {
        let mut n = tracker();
        n.observe(20.0 * MS, SECOND, false);
        n.observe(80.0 * MS, 5 * SECOND, true);
        assert!(n.probing(), "due");
        n.observe(50.0 * MS, 5 * SECOND + 250 * MILLISECOND, true);
        n.observe(45.0 * MS, 5 * SECOND + 500 * MILLISECOND, true);
        assert!(!n.probing());
        assert_eq!(
            n.rtt(),
            20.0 * MS,
            "80 → 45 ms: still our queue, not learned"
        );
        n.observe(60.0 * MS, 6 * SECOND, true);
        assert!(!n.probing(), "not at once");
        n.observe(60.0 * MS, 6 * SECOND + 750 * MILLISECOND, true);
        assert!(n.probing(), "repeated interval/8 later");
        n.observe(58.0 * MS, 7 * SECOND, true);
        n.observe(57.0 * MS, 7 * SECOND + 250 * MILLISECOND, true);
        assert!(!n.probing());
        assert_eq!(
            n.rtt(),
            20.0 * MS,
            "a large rise from a scheduled probe is not trusted: it may have started as load stepped up"
        );
        let mut t = 7 * SECOND + 250 * MILLISECOND;
        for _ in 0..HIGH_STREAK_PROBE {
            t += 100 * MILLISECOND;
            n.observe(58.0 * MS, t, true);
        }
        assert!(n.probing(), "a lasting rise brings a probe forward");
        n.observe(57.0 * MS, t + 250 * MILLISECOND, true);
        n.observe(57.0 * MS, t + 500 * MILLISECOND, true);
        assert_eq!(
            n.rtt(),
            57.0 * MS,
            "after a lasting rise, draining did not help: the upstream got slower, learned"
        );
    }

    #[test]
    fn snapshot_round_trips_and_sanitises() {
        let mut n = tracker();
        n.observe(20.0 * MS, SECOND, true);
        n.observe(20.0 * MS, 11 * SECOND, true);
        let restored = NoLoadRtt::restore(n.params, 1.5, n.snapshot());
        assert_eq!(restored, n);
        let bad = NoLoadRtt::restore(
            n.params,
            1.5,
            NoLoadSnapshot {
                rtt: f64::INFINITY,
                probe_best: -1.0,
                ..NoLoadSnapshot::default()
            },
        );
        assert_eq!(bad.rtt(), 0.0);
        assert!(!bad.probing());
    }
}
