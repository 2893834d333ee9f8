//! The no-load RTT — what a request costs when it meets no queue — learned by brief drains.
//!
//! Why a drain: every delay-based limit compares current latency with a no-load baseline, and
//! a limiter that runs at its limit keeps a small queue upstream, so its own samples never show
//! the baseline again. Learning "the lowest RTT seen, drifting up slowly" (so a lasting latency
//! shift is accepted) therefore learns the standing queue too, and the limit creeps up with it
//! (measured: 63–76 for a capacity of 40). Envoy's native filter re-measures by dropping
//! concurrency to a floor (3 by default) for a whole measurement and rejects the rest
//! (envoy#8337); BBR drains to 4 packets.
//!
//! **When.** Only while demand exceeds the limit (requests are queued or rejected): an idle or
//! warming service is never throttled by measurement, and below capacity there is no queue of
//! ours to hide the baseline. The first probe comes `interval / 8` after the baseline is first
//! learned; then every `interval`, or `interval / 8` after a probe that moved the baseline (or
//! was discarded), after a clear fall between probes, and at once when the fastest requests
//! have stayed far above the baseline for 8 windows' time (a lasting rise).
//!
//! **How deep.** For `duration` (two windows: one to drain, one of unqueued requests) the
//! enforced limit drops to just below the capacity the algorithm's equilibrium implies — or,
//! until a probe has been learned, to half the limit: a baseline learned from traffic that was
//! already queued implies too high a capacity, and a shallow probe above capacity measures the
//! queue instead of draining it. Only windows that started after the probe began count, and
//! the probe's result is their mean, compared with a smoothed pre-probe value: the minimum of
//! several small windows' 5th percentiles is biased low and made a slower upstream look like a
//! drained queue.
//!
//! **What is learned.** Between probes the baseline only falls, and only by clear steps (10 %):
//! following every dip would ratchet it down to the luckiest window's noise. A probe is the test
//! of whose queue it is. A result below the baseline is learned; within 10 % above it, it
//! confirms the baseline (which does not rise by confirmation, or noise would creep it up). A
//! higher one is learned only if draining did not lower the latency (the upstream got slower,
//! not our queue) and the rise followed a lasting rise, or was seen by two probes in a row: a probe that starts
//! as load steps up compares with a window from before the queue built, and its "rise" is the
//! queue (seen in Envoy and the simulator before these rules: a probe at the onset of 3×
//! overload replaced a 62 ms baseline with 90–150 ms, and the limit held 45 for a capacity of
//! 16). A probe that drained part of our queue but not all is discarded and repeated soon from
//! the lower limit.
//!
//! **Clocks.** Time is the host's wall clock: a probe whose start lies in the future (the clock
//! stepped back) ends, and no probe is scheduled further than `interval` ahead. A probe that
//! saw no usable window within 4 × `duration` (traffic stopped) is over, for enforcement too.

use crate::duration::Nanos;

/// When and how long to probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeParams {
    /// Time between probes while saturated (0 = never probe).
    pub interval: Nanos,
    /// How long the lowered limit holds.
    pub duration: Nanos,
}

impl ProbeParams {
    /// A probe older than this is over, whatever it saw; also how long a rise must last.
    fn stale_after(&self) -> Nanos {
        self.duration.saturating_mul(4)
    }
}

/// What the no-load tracker says about the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Normal operation: the algorithm may move the limit.
    Tracking,
    /// A probe is under way: hold the limit, enforce the probe limit.
    Probing,
}

/// One window's fastest requests, as the tracker needs them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// The window's fastest-requests RTT (ns).
    pub fastest: f64,
    /// When the window began.
    pub window_started: Nanos,
    /// When it was summarised.
    pub now: Nanos,
    /// Whether demand exceeded the limit during the window.
    pub turned_away: bool,
    /// Whether a probe may start now (not while gradient2's slow start holds the limit low:
    /// it measures no-load latency anyway, and a probe there halves the limit it is testing).
    pub may_probe: bool,
}

/// The learned no-load RTT and the probe schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoLoadRtt {
    params: ProbeParams,
    /// "Far above" the baseline: this ratio of it.
    far_above: f64,
    state: NoLoadSnapshot,
}

/// The tracker's state as plain numbers, for shared data.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct NoLoadSnapshot {
    /// Learned RTT (ns, 0 = none).
    pub rtt: f64,
    /// When the next probe is due.
    pub next_probe: Nanos,
    /// Current probe start, 0 when none.
    pub probing_since: Nanos,
    /// Sum of the fastest-requests RTTs of the current probe's windows.
    pub probe_sum: f64,
    /// How many windows that sum holds.
    pub probe_windows: u32,
    /// Since when the fastest requests have been far above the baseline (0 = they are not).
    pub rise_since: Nanos,
    /// Recent windows' fastest requests, smoothed (0 = none).
    pub last_fastest: f64,
    /// Whether a probe result has been learned (later probes may be shallow).
    pub probed: bool,
    /// Whether the current probe was brought forward by a lasting rise.
    pub for_rise: bool,
    /// Whether the last probe saw a large rise it could not yet trust.
    pub pending_rise: bool,
}

impl NoLoadRtt {
    /// Nothing learned yet; a window whose fastest requests exceed `far_above` × the baseline
    /// counts towards a lasting rise (choose it above the algorithm's own tolerance, so its
    /// equilibrium never looks "far above").
    pub fn new(params: ProbeParams, far_above: f64) -> NoLoadRtt {
        NoLoadRtt {
            params,
            far_above,
            state: NoLoadSnapshot::default(),
        }
    }

    /// Learned no-load RTT in nanoseconds (0 = not learned).
    pub fn rtt(&self) -> f64 {
        self.state.rtt
    }

    /// Whether a probe is under way (as of its last observation).
    pub fn probing(&self) -> bool {
        self.state.probing_since > 0
    }

    /// Whether a probe is under way at `now`: a probe that started in the future (clock stepped
    /// back) or saw no window for 4 × its duration (traffic stopped) no longer holds the limit.
    pub fn probing_at(&self, now: Nanos) -> bool {
        let since = self.state.probing_since;
        since > 0 && now >= since && now - since < self.params.stale_after()
    }

    /// Whether a probe result has been learned, so the next probe may be shallow (module doc).
    pub fn probed(&self) -> bool {
        self.state.probed
    }

    /// Feeds one window's fastest requests.
    pub fn observe(&mut self, o: Observation) -> Phase {
        if !(o.fastest.is_finite() && o.fastest > 0.0) {
            return if self.probing() {
                Phase::Probing
            } else {
                Phase::Tracking
            };
        }
        let now = o.now;
        let interval = self.params.interval;
        // A clock that stepped back must not postpone probes (or hold one) for as long.
        self.state.next_probe = self.state.next_probe.min(now.saturating_add(interval));
        let since = self.state.probing_since;
        if since > now {
            self.end_probe(now, interval / 8);
        } else if since > 0 {
            if o.window_started >= since {
                self.state.probe_sum += o.fastest;
                self.state.probe_windows = self.state.probe_windows.saturating_add(1);
            }
            let elapsed = now - since;
            let waiting = self.state.probe_windows == 0 && elapsed < self.params.stale_after();
            if elapsed < self.params.duration || waiting {
                return Phase::Probing;
            }
            self.finish_probe(now);
            return Phase::Probing;
        }
        let s = &mut self.state;
        if s.rtt <= 0.0 {
            s.rtt = o.fastest;
            s.next_probe = now.saturating_add(interval / 8);
        } else if o.fastest < 0.9 * s.rtt {
            s.rtt = o.fastest;
            s.next_probe = s.next_probe.min(now.saturating_add(interval / 8));
        }
        s.last_fastest = if s.last_fastest > 0.0 {
            0.5 * (s.last_fastest + o.fastest)
        } else {
            o.fastest
        };
        if o.fastest > self.far_above * s.rtt {
            if s.rise_since == 0 {
                s.rise_since = now.max(1);
            }
        } else {
            s.rise_since = 0;
        }
        let rise = s.rise_since > 0 && now - s.rise_since.min(now) >= self.params.stale_after();
        let due = interval > 0 && now > 0 && (now >= s.next_probe || rise);
        if o.turned_away && o.may_probe && due {
            s.probing_since = now;
            s.probe_sum = 0.0;
            s.probe_windows = 0;
            s.for_rise = rise;
        }
        Phase::Tracking
    }

    /// A probe ran its course: learn its result or discard it (module doc), schedule the next.
    fn finish_probe(&mut self, now: Nanos) {
        let s = &mut self.state;
        let interval = self.params.interval;
        let best = s.probe_sum / f64::from(s.probe_windows.max(1));
        if s.probe_windows == 0 || !(best.is_finite() && best > 0.0) {
            self.end_probe(now, interval / 8);
            return;
        }
        let drain_did_not_help = best >= 0.9 * s.last_fastest;
        let next_in = if best <= 1.1 * s.rtt {
            // Confirmed (a drained window's 5th percentile is noisy): the baseline may fall,
            // but never rises by confirmation, or it would creep up by noise.
            let fell = best < 0.9 * s.rtt;
            s.rtt = s.rtt.min(best);
            s.probed = true;
            s.pending_rise = false;
            if fell {
                interval / 8
            } else {
                interval
            }
        } else if drain_did_not_help && (s.for_rise || s.pending_rise) {
            s.rtt = best;
            s.probed = true;
            s.pending_rise = false;
            interval / 8
        } else {
            s.pending_rise = drain_did_not_help;
            interval / 8
        };
        self.end_probe(now, next_in);
    }

    fn end_probe(&mut self, now: Nanos, next_in: Nanos) {
        let s = &mut self.state;
        s.probing_since = 0;
        s.probe_sum = 0.0;
        s.probe_windows = 0;
        s.rise_since = 0;
        s.for_rise = false;
        s.next_probe = now.saturating_add(next_in);
    }

    /// Plain numbers for shared data.
    pub fn snapshot(&self) -> NoLoadSnapshot {
        self.state
    }

    /// Rebuilds from [`NoLoadRtt::snapshot`] (non-finite or negative RTTs become "unknown").
    pub fn restore(params: ProbeParams, far_above: f64, snapshot: NoLoadSnapshot) -> NoLoadRtt {
        NoLoadRtt {
            params,
            far_above,
            state: NoLoadSnapshot {
                rtt: super::learned(snapshot.rtt),
                probe_sum: super::learned(snapshot.probe_sum),
                last_fastest: super::learned(snapshot.last_fastest),
                ..snapshot
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )] // test arithmetic
    use super::*;
    use crate::duration::{MILLISECOND, SECOND};
    use crate::test_support::test;

    const MS: f64 = MILLISECOND as f64;
    const WINDOW: Nanos = 250 * MILLISECOND;

    fn tracker() -> NoLoadRtt {
        NoLoadRtt::new(
            ProbeParams {
                interval: 10 * SECOND,
                duration: 2 * WINDOW,
            },
            1.5,
        )
    }

    /// Feeds a window of `fastest_ms` that ended at `now` (and began one window earlier).
    fn feed(n: &mut NoLoadRtt, fastest_ms: f64, now: Nanos, turned_away: bool) -> Phase {
        n.observe(Observation {
            fastest: fastest_ms * MS,
            window_started: now.saturating_sub(WINDOW),
            now,
            turned_away,
            may_probe: true,
        })
    }

    /// Runs a whole probe that sees `fastest_ms`, starting with the window at `start`; returns
    /// the time after it.
    fn probe(n: &mut NoLoadRtt, fastest_ms: f64, start: Nanos) -> Nanos {
        feed(n, fastest_ms, start, true);
        assert!(n.probing(), "a probe starts at {start}");
        feed(n, fastest_ms, start + WINDOW, true);
        feed(n, fastest_ms, start + 2 * WINDOW, true);
        assert!(!n.probing(), "and ends after its duration");
        start + 2 * WINDOW
    }

    #[test]
    fn baseline_only_falls_between_probes_and_by_clear_steps() {
        let mut n = tracker();
        assert_eq!(feed(&mut n, 20.0, SECOND, false), Phase::Tracking);
        assert_eq!(n.rtt(), 20.0 * MS);
        feed(&mut n, 30.0, 2 * SECOND, false);
        assert_eq!(n.rtt(), 20.0 * MS, "a queued window does not lift it");
        feed(&mut n, 19.0, 3 * SECOND, false);
        assert_eq!(
            n.rtt(),
            20.0 * MS,
            "noise-sized dips do not ratchet it down"
        );
        feed(&mut n, 15.0, 4 * SECOND, false);
        assert_eq!(n.rtt(), 15.0 * MS);
        feed(&mut n, f64::NAN, 5 * SECOND, true);
        assert_eq!(n.rtt(), 15.0 * MS, "no information, no change");
    }

    #[test]
    fn probes_only_when_turned_away_and_due_and_the_first_is_deep() {
        let mut n = tracker();
        feed(&mut n, 20.0, SECOND, true);
        feed(&mut n, 20.0, 2 * SECOND, true);
        assert!(!n.probing(), "not before interval/8");
        feed(&mut n, 22.0, 3 * SECOND, false);
        assert!(!n.probing(), "never while demand fits the limit");
        assert!(!n.probed(), "the first probe will be deep");
        let after = probe(&mut n, 21.0, 3 * SECOND + WINDOW);
        assert_eq!(n.rtt(), 20.0 * MS, "within 10 %: confirmed, not raised");
        assert!(n.probed());
        feed(&mut n, 21.0, after + 5 * SECOND, true);
        assert!(!n.probing(), "a settled baseline waits a whole interval");
        feed(&mut n, 21.0, after + 10 * SECOND, true);
        assert!(n.probing());
    }

    #[test]
    fn a_probe_that_drains_part_of_our_queue_is_discarded_and_repeated() {
        let mut n = tracker();
        feed(&mut n, 20.0, SECOND, false);
        feed(&mut n, 80.0, 5 * SECOND, true);
        assert!(n.probing(), "due");
        feed(&mut n, 50.0, 5 * SECOND + WINDOW, true);
        feed(&mut n, 45.0, 5 * SECOND + 2 * WINDOW, true);
        assert!(!n.probing());
        assert_eq!(n.rtt(), 20.0 * MS, "80 → 45 ms: our queue, not learned");
        assert!(!n.probed(), "nothing learned: the next probe is deep again");
        feed(&mut n, 40.0, 6 * SECOND, true);
        assert!(!n.probing(), "not at once");
        feed(&mut n, 40.0, 6 * SECOND + 750 * MILLISECOND, true);
        assert!(n.probing(), "repeated interval/8 later");
    }

    #[test]
    fn a_large_rise_needs_a_lasting_rise_or_two_probes() {
        // Two probes in a row: a moderate lasting rise (30 %, below "far above") is learned.
        let mut n = tracker();
        feed(&mut n, 20.0, SECOND, false);
        let t = probe(&mut n, 26.0, 3 * SECOND);
        assert_eq!(n.rtt(), 20.0 * MS, "one probe at the onset is not trusted");
        probe(&mut n, 26.0, t + 1250 * MILLISECOND);
        assert_eq!(n.rtt(), 26.0 * MS, "the second one is");
        // A lasting rise far above the baseline brings a probe forward and is learned at once.
        let mut n = tracker();
        feed(&mut n, 20.0, SECOND, false);
        let t = probe(&mut n, 20.0, 3 * SECOND);
        let mut now = t;
        while now < t + 3 * SECOND {
            now += WINDOW;
            feed(&mut n, 40.0, now, true);
            if n.probing() {
                break;
            }
        }
        assert!(n.probing(), "a rise lasting 4 probe durations probes early");
        assert!(
            now <= t + 2250 * MILLISECOND,
            "2 s after it began, not the interval"
        );
        feed(&mut n, 40.0, now + WINDOW, true);
        feed(&mut n, 40.0, now + 2 * WINDOW, true);
        assert_eq!(n.rtt(), 40.0 * MS, "the upstream got slower: learned");
    }

    #[test]
    fn no_probe_starts_while_probes_are_not_allowed() {
        let mut n = tracker();
        feed(&mut n, 20.0, SECOND, false);
        let held = n.observe(Observation {
            fastest: 20.0 * MS,
            window_started: 3 * SECOND - WINDOW,
            now: 3 * SECOND,
            turned_away: true,
            may_probe: false,
        });
        assert_eq!(held, Phase::Tracking);
        assert!(!n.probing(), "due and turned away, but not allowed");
        feed(&mut n, 20.0, 3 * SECOND + WINDOW, true);
        assert!(n.probing(), "the next allowed window starts the due probe");
    }

    #[test]
    fn only_windows_that_began_inside_the_probe_count() {
        let mut n = tracker();
        feed(&mut n, 20.0, SECOND, false);
        feed(&mut n, 30.0, 3 * SECOND, true);
        assert!(n.probing());
        n.observe(Observation {
            fastest: 10.0 * MS,
            window_started: 2 * SECOND,
            now: 3 * SECOND + 3 * WINDOW,
            turned_away: true,
            may_probe: true,
        });
        assert!(n.probing(), "a window from before the probe is no result");
        feed(&mut n, 19.0, 3 * SECOND + 4 * WINDOW, true);
        assert!(!n.probing());
        assert_eq!(n.rtt(), 19.0 * MS);
    }

    #[test]
    fn clocks_that_step_back_or_stop_do_not_hold_a_probe() {
        let mut n = tracker();
        feed(&mut n, 20.0, 100 * SECOND, false);
        feed(&mut n, 25.0, 105 * SECOND, true);
        assert!(n.probing_at(105 * SECOND));
        assert!(
            !n.probing_at(104 * SECOND),
            "a probe in the future is not enforced"
        );
        assert!(
            !n.probing_at(105 * SECOND + 4 * 2 * WINDOW),
            "nor one that saw no window for 4 durations"
        );
        feed(&mut n, 25.0, 50 * SECOND, true);
        assert!(!n.probing(), "the clock stepped back: the probe ended");
        feed(&mut n, 25.0, 51 * SECOND + 250 * MILLISECOND, true);
        assert!(n.probing(), "and the next is not 55 s away");
    }

    #[test]
    fn snapshot_round_trips_and_sanitises() {
        let mut n = tracker();
        feed(&mut n, 20.0, SECOND, true);
        feed(&mut n, 20.0, 11 * SECOND, true);
        let restored = NoLoadRtt::restore(n.params, 1.5, n.snapshot());
        assert_eq!(restored, n);
        let bad = NoLoadRtt::restore(
            n.params,
            1.5,
            NoLoadSnapshot {
                rtt: f64::INFINITY,
                probe_sum: -1.0,
                last_fastest: f64::NAN,
                ..NoLoadSnapshot::default()
            },
        );
        assert_eq!(bad.rtt(), 0.0);
        assert_eq!(bad.snapshot().last_fastest, 0.0);
        assert!(!bad.probing());
    }
}
