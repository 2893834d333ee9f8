//! Which ranks of a wait queue are overflowing: the memory behind the queue's adaptive order.
//!
//! Why: FIFO is the fair order while the queue drains, and a burst waits a little and is
//! served. But once a rank gets more work than it gets slots (its waiters run out of patience,
//! or are displaced, or find the queue full), FIFO serves every request of that rank after
//! nearly the longest wait: the admitted ones all arrive late, and the p99 of what is served is
//! `max_wait` plus the service time. Serving that rank newest first instead (Facebook's
//! adaptive LIFO, with CoDel's short timeout: "Fail at Scale", 2015) admits the freshest at
//! once and lets the oldest, the likeliest to have been given up on, time out. A rank overflows
//! once [`OVERFLOW_SIGNS`] such signs came within [`OVERFLOW_MEMORY`], and stays so for
//! [`OVERFLOW_MEMORY`] after the sign that last made the count, so neither a short burst nor
//! one lull flips it; other ranks keep their FIFO order meanwhile.

use crate::duration::{Nanos, SECOND};

/// How long a rank counts as overflowing after its last waiter that ran out of room or time.
pub const OVERFLOW_MEMORY: Nanos = SECOND;
/// Signs within one [`OVERFLOW_MEMORY`] that make a rank overflow: a burst that times out a
/// waiter or two of a class served in full otherwise is not an overload of it. Measured in the
/// shipped shedding scenarios over 9 seeds: with 1, critical at 3x lost 0.5 % on one seed (a
/// burst flipped it to the short wait); with 8, critical at 10x entered LIFO late enough that
/// its p99 was 117–141 ms; with 3, 3x kept every critical request on every seed and 10x
/// measured 109–127 ms (FIFO: ~190 ms).
pub const OVERFLOW_SIGNS: u32 = 3;
/// An overflowing rank's new waiters wait this fraction of their wait (CoDel's idea: a queue
/// that stands is a problem, not a buffer). Critical first attempts, with twice `max_wait`,
/// get half of `max_wait`: once critical alone overflows it cannot all be served, and its
/// whole wait only lengthened the admitted ones' (10x in the simulator: p99 127–154 ms with
/// the whole wait, 109–127 ms with this; a real Envoy cold 3x spike lost no critical request
/// either way once slow start no longer overshot).
pub const OVERFLOW_WAIT_DIVISOR: u64 = 4;

/// One rank's recent signs: when the current count began and how many, and until when the rank
/// counts as overflowing.
#[derive(Debug, Clone, Copy)]
struct Signs {
    rank: u8,
    since: Nanos,
    count: u32,
    until: Nanos,
}

/// Each rank's recent overflow signs (one entry per rank seen: at most 256).
#[derive(Debug, Clone, Default)]
pub struct Overflow {
    ranks: Vec<Signs>,
}

impl Overflow {
    /// Records that a waiter of `rank` could not be served in time or in room at `now`.
    pub fn record(&mut self, rank: u8, now: Nanos) {
        if !self.ranks.iter().any(|s| s.rank == rank) {
            self.ranks.push(Signs {
                rank,
                since: now,
                count: 0,
                until: 0,
            });
        }
        let Some(signs) = self.ranks.iter_mut().find(|s| s.rank == rank) else {
            return;
        };
        // A new count each period; signs a little out of order (a tick's time and an
        // arrival's) or from a clock that stepped back count in the current one.
        if now >= signs.since.saturating_add(OVERFLOW_MEMORY) {
            signs.since = now;
            signs.count = 0;
        }
        signs.count = signs.count.saturating_add(1);
        if signs.count >= OVERFLOW_SIGNS {
            signs.until = signs.until.max(now.saturating_add(OVERFLOW_MEMORY));
        }
    }

    /// Whether `rank` overflows at `now`: at least [`OVERFLOW_SIGNS`] signs came within one
    /// [`OVERFLOW_MEMORY`], the one that made the count less than [`OVERFLOW_MEMORY`] ago (a
    /// rank that keeps overflowing stays so across periods).
    pub fn is_overflowing(&self, rank: u8, now: Nanos) -> bool {
        self.ranks.iter().any(|s| s.rank == rank && now < s.until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::test;

    #[test]
    fn a_rank_overflows_after_enough_signs_for_a_second_after_the_last_and_alone() {
        let mut overflow = Overflow::default();
        assert!(!overflow.is_overflowing(3, 0));
        for i in 0..OVERFLOW_SIGNS - 1 {
            overflow.record(3, 10 + u64::from(i));
        }
        assert!(
            !overflow.is_overflowing(3, 20),
            "a short burst is not an overload"
        );
        overflow.record(3, 20);
        assert!(overflow.is_overflowing(3, 20));
        assert!(overflow.is_overflowing(3, 20 + OVERFLOW_MEMORY - 1));
        assert!(!overflow.is_overflowing(3, 20 + OVERFLOW_MEMORY));
        assert!(
            !overflow.is_overflowing(2, 20),
            "only the rank that overflowed"
        );
        // Signs spread thinner than OVERFLOW_SIGNS a period never add up.
        let mut sparse = Overflow::default();
        for i in 0..20 {
            sparse.record(1, i * OVERFLOW_MEMORY / 2);
        }
        assert!(!sparse.is_overflowing(1, 5 * OVERFLOW_MEMORY));
        assert_eq!(sparse.ranks.len(), 1, "one entry per rank");
    }
}
