//! What gradient2 and vegas share: a learned limit and a no-load tracker whose probes lower it.
//!
//! Why a trait with default methods: the two delay-based algorithms differ only in how a
//! window's fastest requests move the limit and in the upstream capacity their equilibrium
//! implies (how deep a probe goes); how the enforced limit follows a probe, what is shared
//! between workers and how a window reaches the tracker are the same and live here once.

use super::noload::{NoLoadRtt, NoLoadSnapshot, Observation, Phase};
use super::{Bounds, Sample};
use crate::duration::Nanos;

/// A limit held down by [`NoLoadRtt`]'s probes.
pub trait ProbedLimit {
    /// The learned limit (what holds outside probes).
    fn learned(&self) -> f64;
    /// The no-load RTT tracker.
    fn noload(&self) -> &NoLoadRtt;
    /// The no-load RTT tracker, to feed.
    fn noload_mut(&mut self) -> &mut NoLoadRtt;
    /// Limit bounds.
    fn bounds(&self) -> &Bounds;
    /// The upstream concurrency the algorithm's equilibrium implies at its learned limit.
    fn implied_capacity(&self) -> f64;

    /// The enforced (fractional) limit: the learned one, or the probe limit during a probe.
    fn limit(&self) -> f64 {
        self.enforced(self.noload().probing())
    }

    /// [`ProbedLimit::limit`] at `now`: a probe that went stale (no window for a while, or a
    /// clock that stepped back) no longer holds the limit down.
    fn limit_at(&self, now: Nanos) -> f64 {
        self.enforced(self.noload().probing_at(now))
    }

    /// The limit held with or without a probe: during one, 90 % of the implied capacity once
    /// a probe result has been learned, else half the limit; never above the learned limit,
    /// never below the minimum.
    fn enforced(&self, probing: bool) -> f64 {
        let limit = self.learned();
        if !probing {
            return limit;
        }
        let target = if self.noload().probed() {
            0.9 * self.implied_capacity()
        } else {
            0.5 * limit
        };
        self.bounds().clamp(target.min(limit))
    }

    /// The learned state (limit outside probes, no-load tracker), for sharing between workers.
    fn snapshot(&self) -> (f64, NoLoadSnapshot) {
        (self.learned(), self.noload().snapshot())
    }

    /// The learned no-load RTT (ns, 0 = not yet).
    fn noload_rtt(&self) -> f64 {
        self.noload().rtt()
    }

    /// Feeds a window's fastest requests to the tracker (a probe may start only if
    /// `may_probe`): `None` when the window has none, else the phase and the fastest RTT (ns)
    /// for the algorithm to compare.
    fn track(&mut self, sample: &Sample, now: Nanos, may_probe: bool) -> Option<(Phase, f64)> {
        let fastest = crate::numeric::approx_f64(sample.fastest);
        if fastest <= 0.0 {
            return None;
        }
        let phase = self.noload_mut().observe(Observation {
            fastest,
            window_started: sample.started,
            now,
            turned_away: sample.turned_away,
            may_probe,
        });
        Some((phase, fastest))
    }
}
