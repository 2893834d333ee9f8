//! The admission level (after WeChat's DAGOR): how many ranks pass the door, moved by the
//! limiter's queue.
//!
//! Why a level instead of shedding by queue position alone: the priority queue already serves
//! critical requests first, but every request it later refuses has waited first, holding a
//! caller and a queue place for nothing. The level sheds those at arrival. It is a number of
//! ranks, fractional: at 2.4 the first two ranks pass, 40 % of the third passes (exactly, by
//! an accumulator, not by dice), the rest are shed. Each `interval` it moves one `step` down
//! while the queue says overload (its waiters waited longer than the target on average, a
//! refused waiter counting as the whole `max_wait`), and one step up otherwise, so it settles
//! where the admitted demand fits and recovers within `ranks / step` intervals once the
//! overload clears. It never goes below 1: critical first attempts are shed last, by the
//! limiter's queue only, when they alone exceed what the upstream serves (measured: shedding
//! a fraction of them at the door as well cost goodput at 10x and shortened no wait).

use super::AdmissionParams;
use crate::duration::Nanos;

/// What the limiter's queue saw since the level last moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pressure {
    /// Waiters that left the queue: with a slot, or refused (full, timed out, displaced).
    pub waiters: u32,
    /// The time they waited, summed (a refused one counts as the queue's whole `max_wait`).
    pub waited: Nanos,
    /// How many of them were refused.
    pub refused: u32,
}

impl Pressure {
    /// Adds another worker's or interval's pressure.
    pub fn add(&mut self, other: Pressure) {
        self.waiters = self.waiters.saturating_add(other.waiters);
        self.waited = self.waited.saturating_add(other.waited);
        self.refused = self.refused.saturating_add(other.refused);
    }

    /// A waiter left the queue after `waited`, with a slot or `refused`.
    pub fn left_queue(&mut self, waited: Nanos, refused: bool) {
        self.waiters = self.waiters.saturating_add(1);
        self.waited = self.waited.saturating_add(waited);
        self.refused = self.refused.saturating_add(u32::from(refused));
    }

    /// Whether it says overload under `params`: the waiters' average wait is over the target.
    pub fn overloaded(&self, params: &AdmissionParams) -> bool {
        self.waiters > 0 && self.waited / u64::from(self.waiters) > params.target_queue_wait
    }
}

/// One worker's admission level.
#[derive(Debug, Clone)]
pub struct AdmissionLevel {
    params: AdmissionParams,
    /// Ranks there are (the level's top: everything passes).
    ranks: f64,
    /// Ranks that pass, fractional.
    level: f64,
    /// Fractional admission of the boundary rank, carried between requests.
    credit: f64,
    /// Pressure gathered since the last move.
    pressure: Pressure,
    last_move: Nanos,
}

impl AdmissionLevel {
    /// Everything passes at first.
    pub fn new(params: AdmissionParams, ranks: usize, now: Nanos) -> AdmissionLevel {
        let ranks = f64::from(u32::try_from(ranks.max(1)).unwrap_or(u32::MAX));
        AdmissionLevel {
            params,
            ranks,
            level: ranks,
            credit: 0.0,
            pressure: Pressure::default(),
            last_move: now,
        }
    }

    /// The level now, in ranks.
    pub fn level(&self) -> f64 {
        self.level
    }

    /// Whether the level sheds any of rank `index` now (it is the boundary rank or below it).
    pub fn sheds(&self, index: usize) -> bool {
        f64::from(u32::try_from(index).unwrap_or(u32::MAX)) + 1.0 > self.level
    }

    /// Whether a request of rank `index` passes (the boundary rank passes its fraction).
    pub fn admits(&mut self, index: usize) -> bool {
        let index = f64::from(u32::try_from(index).unwrap_or(u32::MAX));
        if index + 1.0 <= self.level {
            return true;
        }
        if index >= self.level {
            return false;
        }
        self.credit += self.level - index;
        if self.credit >= 1.0 {
            self.credit -= 1.0;
            true
        } else {
            false
        }
    }

    /// Gathers pressure; moves the level when an interval has passed. Returns whether it moved.
    pub fn observe(&mut self, pressure: Pressure, now: Nanos) -> bool {
        self.pressure.add(pressure);
        if now < self.last_move {
            // The clock stepped back: start the interval again.
            self.last_move = now;
        }
        if now.saturating_sub(self.last_move) < self.params.interval {
            return false;
        }
        let before = self.level;
        self.level = if self.pressure.overloaded(&self.params) {
            (self.level - self.params.step).max(1.0)
        } else {
            (self.level + self.params.step).min(self.ranks)
        };
        self.pressure = Pressure::default();
        self.last_move = now;
        before != self.level
    }
}
