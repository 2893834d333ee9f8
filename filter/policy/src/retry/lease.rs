//! A worker's lease on the shared retry budget: spare retries taken from it in a batch and lent
//! to this worker's requests without touching shared data, and what the worker owes the budget
//! (first attempts counted here, unused retries given back, final failures) until it next
//! writes to it.
//!
//! Why: the budget is one record in proxy-wasm shared data, which Envoy keeps in one
//! process-wide locked map and copies on every get and set. Reserving each request's retries
//! there and refunding them at its response cost two compare-and-swap rounds per request, each
//! decoding and encoding the record, for requests that are almost never retried. With a lease
//! a retry is still paid for by a token taken from the shared budget before it can happen, so
//! the bound across workers holds; the shared round is paid once per batch instead.
//!
//! Rules that keep README's bound ("Retry budgets") as it was:
//! - spare retries are booked in the budget's second they were taken in and lent only to
//!   requests of that second (a request of a later second takes a new batch), so every
//!   request's retries are counted in its own second, as when it reserved them itself;
//! - a batch is what the request in hand needs plus at most [`SPARE_REQUESTS`] requests' worth,
//!   and no more than a [`LEASE_SHARE`]th of what the budget has left besides, so one worker
//!   never holds much of a small budget, nor more than [`SPARE_REQUESTS`] ×
//!   `max_retries_per_request` spare retries;
//! - spare retries go back at the worker's next write: its once-a-second flush at the latest,
//!   a new batch, or a final failure (which shrinks the floor: the next batch is taken against
//!   the smaller floor, as each reservation was);
//! - a finished request's unused retries go back to the spare pool when they are of its second
//!   (up to its cap), else they are owed, into their own second, until the next write.

use super::BudgetState;
use crate::duration::{Nanos, SECOND};
use crate::retry::BudgetParams;

/// Spare retries a worker may hold, in requests' worth (`max_retries_per_request` each).
pub const SPARE_REQUESTS: u32 = 8;
/// A batch takes beyond the request's need at most this fraction (1/n) of what is left.
pub const LEASE_SHARE: u32 = 4;
/// Seconds whose refunds a worker can owe at once, by second modulo this: more than the longest
/// window (60 s), so two live seconds never share a slot.
const REFUND_SLOTS: usize = 64;
/// [`REFUND_SLOTS`], to take a second modulo it.
const REFUND_RING: u64 = 64;

/// Unused retries owed to the budget's bucket of `second`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Refund {
    second: u64,
    n: u32,
}

/// One worker's side of the budget. `Default`: nothing held, nothing owed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The budget second the spare retries were booked in.
    second: u64,
    /// Retries booked in `second` and lent to no request.
    spare: u32,
    /// First attempts counted here and not yet written.
    firsts: u32,
    /// Final failures counted here and not yet written (a write that lost every race).
    failures: u32,
    /// Retries owed in `refunds`, in all.
    owed: u32,
    /// Unused retries given back and not yet written, at the slot of their second.
    refunds: [Refund; REFUND_SLOTS],
}

impl Default for Lease {
    fn default() -> Self {
        Lease {
            second: 0,
            spare: 0,
            firsts: 0,
            failures: 0,
            owed: 0,
            refunds: [Refund::default(); REFUND_SLOTS],
        }
    }
}

/// What taking a new batch gave: the request's grant, and the spare retries left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renewal {
    /// Retries granted to the request in hand.
    pub granted: u32,
    /// The budget second they (and the spare ones) are booked in.
    pub second: u64,
    /// Spare retries the worker holds now.
    pub spare: u32,
}

/// The oldest second still in a `ttl` window at `now` (by this worker's clock; the budget's own
/// clock is never behind it, so a second older than this has left the budget's window too).
pub fn oldest_live(params: &BudgetParams, now: Nanos) -> u64 {
    (now / SECOND).saturating_sub(u64::from(params.ttl_seconds.max(1)) - 1)
}

impl Lease {
    /// Counts a first attempt, written with the next write.
    pub fn count_first(&mut self) {
        self.firsts = self.firsts.saturating_add(1);
    }

    /// Counts a final failure, written with the next write.
    pub fn count_failure(&mut self) {
        self.failures = self.failures.saturating_add(1);
    }

    /// Spare retries held (and not yet stale: see [`Lease::lend`]).
    pub fn spare(&self) -> u32 {
        self.spare
    }

    /// Lends `wanted` spare retries to a request at `now`: only whole, and only if they were
    /// booked in this second (or in a later one, which another worker's clock reached first).
    /// Returns the second they are booked in.
    pub fn lend(&mut self, now: Nanos, wanted: u32) -> Option<u64> {
        if self.second < now / SECOND || self.spare < wanted {
            return None;
        }
        self.spare -= wanted;
        Some(self.second)
    }

    /// Takes back `n` unused retries booked in `second`: into the spare pool when they are of
    /// its second (up to `cap` spare), the rest owed to their second unless it already left
    /// the window (`oldest_live`). Returns what found no slot to be owed in (to write now:
    /// only a second far ahead of this worker's clock can take a live second's slot).
    pub fn give_back(&mut self, second: u64, n: u32, cap: u32, oldest_live: u64) -> u32 {
        let mut n = n;
        if second == self.second {
            let room = cap.saturating_sub(self.spare).min(n);
            self.spare += room;
            n -= room;
        }
        if n == 0 || second < oldest_live {
            return 0;
        }
        let slot = usize::try_from(second % REFUND_RING)
            .ok()
            .and_then(|i| self.refunds.get_mut(i));
        match slot {
            Some(slot) if slot.n > 0 && slot.second == second => slot.n = slot.n.saturating_add(n),
            Some(slot) if slot.n == 0 || slot.second < oldest_live => {
                self.owed = self.owed.saturating_sub(slot.n);
                *slot = Refund { second, n };
            }
            _ => return n,
        }
        self.owed = self.owed.saturating_add(n);
        0
    }

    /// Nothing held and nothing owed: a flush has nothing to write.
    pub fn is_idle(&self) -> bool {
        self.spare == 0 && self.firsts == 0 && self.failures == 0 && self.owed == 0
    }

    /// Writes what the worker owes into `state` at `now`, and its spare retries unless
    /// `keep_spare` and they are of the budget's current second. Returns whether they were kept.
    pub fn write_into(
        &self,
        state: &mut BudgetState,
        params: &BudgetParams,
        now: Nanos,
        keep_spare: bool,
    ) -> bool {
        if self.firsts > 0 {
            state.record_firsts(params, now, self.firsts);
        }
        if self.failures > 0 {
            state.record_failures(params, now, self.failures);
        }
        if self.owed > 0 {
            for refund in self.refunds.iter().filter(|r| r.n > 0) {
                state.refund(params, now, refund.second, refund.n);
            }
        }
        let kept = keep_spare && self.second == state.current_second(now);
        if !kept && self.spare > 0 {
            state.refund(params, now, self.second, self.spare);
        }
        kept
    }

    /// After a stored [`Lease::write_into`]: nothing owed any more; no spare retries unless
    /// they were kept.
    pub fn written(&mut self, kept: bool) {
        if !kept {
            self.spare = 0;
        }
        self.firsts = 0;
        self.failures = 0;
        if self.owed > 0 {
            self.owed = 0;
            self.refunds = [Refund::default(); REFUND_SLOTS];
        }
    }

    /// Writes what the worker owes into `state` and takes a new batch at `now` for a request
    /// wanting `wanted` retries (more than the spare ones of this second): its need, plus up
    /// to `cap` spare retries and no more than a [`LEASE_SHARE`]th of what is left besides.
    /// Fewer when the budget has fewer: the request then gets what there is.
    pub fn renew(
        &self,
        state: &mut BudgetState,
        params: &BudgetParams,
        now: Nanos,
        wanted: u32,
        cap: u32,
    ) -> Renewal {
        let kept = self.write_into(state, params, now, true);
        let have = if kept { self.spare } else { 0 };
        let need = wanted.saturating_sub(have);
        let (taken, second) = state.withdraw_with(params, now, |whole| {
            let extra = cap.min(whole.saturating_sub(need) / LEASE_SHARE);
            need.saturating_add(extra)
        });
        let total = have.saturating_add(taken);
        let granted = total.min(wanted);
        Renewal {
            granted,
            second,
            spare: total - granted,
        }
    }

    /// After a stored [`Lease::renew`]: nothing owed, and the batch's spare retries held.
    pub fn renewed(&mut self, renewal: Renewal) {
        self.written(false);
        self.second = renewal.second;
        self.spare = renewal.spare;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::test;

    const P: BudgetParams = BudgetParams {
        ratio_ppm: 200_000,
        min_retries_per_second: 10,
        ttl_seconds: 10,
    };
    const T: Nanos = 1_000 * SECOND;

    #[test]
    fn a_batch_serves_later_requests_of_its_second_only() {
        let mut state = BudgetState::default();
        let mut lease = Lease::default();
        assert_eq!(lease.lend(T, 3), None, "nothing held yet");
        lease.count_first();
        let renewal = lease.renew(&mut state, &P, T, 3, 24);
        // 100 available: 3 for the request, a quarter of the 97 left beyond it (24, the cap).
        assert_eq!(
            renewal,
            Renewal {
                granted: 3,
                second: 1_000,
                spare: 24
            }
        );
        lease.renewed(renewal);
        assert_eq!(state.retries_in_window(&P, T), 27, "the batch is booked");
        assert_eq!(lease.lend(T + SECOND / 2, 3), Some(1_000));
        assert_eq!(lease.spare(), 21);
        assert_eq!(
            lease.lend(T + SECOND, 3),
            None,
            "a new second takes a new batch"
        );
        // The stale spare retries go back to their second with the next write.
        let next = lease.renew(&mut state, &P, T + SECOND, 3, 24);
        assert_eq!(
            state.retries_in_window(&P, T + SECOND),
            u64::from(6 + next.granted + next.spare)
        );
    }

    #[test]
    fn a_batch_takes_a_quarter_of_what_is_left_and_never_more_than_there_is() {
        let p = BudgetParams {
            ratio_ppm: 0,
            min_retries_per_second: 1,
            ttl_seconds: 10,
        };
        let lease = Lease::default();
        let mut state = BudgetState::default();
        // 10 available: 3 needed, a quarter of the 7 left (1).
        let r = lease.renew(&mut state, &p, T, 3, 24);
        assert_eq!((r.granted, r.spare), (3, 1));
        // 6 left: 5 needed, a quarter of the one left beyond is none.
        let r = lease.renew(&mut state, &p, T, 5, 24);
        assert_eq!((r.granted, r.spare), (5, 0));
        let r = lease.renew(&mut state, &p, T, 3, 24);
        assert_eq!((r.granted, r.spare), (1, 0), "what there is");
        assert_eq!(state.available_milli(&p, T), 0);
    }

    #[test]
    fn kept_spare_retries_count_toward_the_need() {
        let mut state = BudgetState::default();
        let mut lease = Lease::default();
        let r = lease.renew(&mut state, &P, T, 3, 1);
        lease.renewed(r);
        assert_eq!(lease.spare(), 1);
        // One held, three wanted: two more taken (and the cap's one spare).
        let r = lease.renew(&mut state, &P, T, 3, 1);
        assert_eq!((r.granted, r.spare), (3, 1));
        assert_eq!(state.retries_in_window(&P, T), 4 + 3);
    }

    #[test]
    fn unused_retries_go_to_the_pool_of_their_second_or_are_owed() {
        let mut state = BudgetState::default();
        let mut lease = Lease::default();
        let r = lease.renew(&mut state, &P, T, 3, 4);
        lease.renewed(r);
        assert_eq!(lease.spare(), 4);
        let oldest = oldest_live(&P, T);
        assert_eq!(lease.give_back(1_000, 3, 6, oldest), 0);
        assert_eq!(lease.spare(), 6, "up to the cap");
        // The seventh is owed, as are retries of other seconds; aged ones are dropped.
        assert_eq!(lease.give_back(999, 2, 6, oldest), 0);
        assert_eq!(lease.give_back(999, 1, 6, oldest), 0);
        assert_eq!(lease.give_back(oldest - 1, 5, 6, oldest), 0);
        assert!(!lease.is_idle());
        let before = state.retries_in_window(&P, T);
        let kept = lease.write_into(&mut state, &P, T, false);
        assert!(!kept);
        lease.written(kept);
        assert!(lease.is_idle());
        assert_eq!(state.retries_in_window(&P, T), before - 7, "spare 7 back");
    }

    #[test]
    fn every_second_of_a_window_has_its_slot() {
        let mut lease = Lease::default();
        let oldest = 100;
        for i in 0..60 {
            assert_eq!(lease.give_back(oldest + i, 1, 0, oldest), 0);
        }
        assert_eq!(lease.give_back(oldest + 3, 1, 0, oldest), 0, "merged");
        assert_eq!(lease.owed, 61);
        // Only a second 64 ahead of a live one would take its slot: written at once instead.
        assert_eq!(lease.give_back(oldest + 64, 2, 0, oldest), 2);
        // Once that second has aged out, its slot is free again.
        assert_eq!(lease.give_back(oldest + 64, 2, 0, oldest + 1), 0);
        assert_eq!(lease.owed, 62);
        let mut state = BudgetState::default();
        lease.written(lease.write_into(&mut state, &P, T, false));
        assert!(lease.is_idle());
    }

    #[test]
    fn first_attempts_and_failures_are_written_with_the_next_write() {
        let mut state = BudgetState::default();
        let mut lease = Lease::default();
        for _ in 0..10 {
            lease.count_first();
        }
        lease.count_failure();
        lease.written(lease.write_into(&mut state, &P, T, false));
        // 0.2 × 10 + 100 × 9 / 10.
        assert_eq!(state.available_milli(&P, T), 2_000 + 90_000);
        assert!(lease.is_idle());
    }
}
