//! The retry budget's arithmetic: retries in any `ttl` window stay within
//! `ratio × first attempts + min_retries_per_second × ttl × (share of requests that did not fail)`.
//!
//! Why a windowed rate and not a counter of concurrent retries (Envoy's native budget): a rate
//! is what operators reason about ("retries may add at most 20 % load"), and it bounds the
//! amplification of a failing dependency no matter how slow it is. Finagle, Linkerd, tower and
//! gRPC (A6) all budget this way. Counting uses one bucket per second over the last `ttl`
//! seconds, so memory is fixed and old traffic ages out instead of accumulating forever.
//!
//! The floor is for quiet routes, whose few first attempts earn less than one retry: a blip
//! there should still be retried. It must not carry a storm: Finagle and Linkerd add it in
//! full, so at 30 req/s their defaults (20 %, 10/s) allow 53 % more load on a dependency that
//! fails everything. Here it shrinks with the share of the window's requests whose final
//! response failed: with every request failing only the ratio is left (retries do not help
//! then), with a failure here and there it is all there.
//!
//! The state is plain data with a compact byte encoding (`record`), so the plugin can keep one
//! budget per policy set in proxy-wasm shared data and update it with compare-and-swap from
//! every worker (in batches: see [`super::lease`]).
//!
//! Bound: the check is made at every grant (a worker's batch) over the trailing window — the current (partial)
//! second plus the `ttl - 1` whole seconds before it: retries granted in that window never
//! exceed `ratio ×` the first attempts counted in it `+ min × ttl`. Because first attempts stay
//! in the budget for `ttl`, a window examined afterwards can contain retries paid for by first
//! attempts just before it: any `ttl` window sees at most `ratio ×` the first attempts of the
//! `2 × ttl` window ending with it, `+ min × ttl` (plus one bucket of slack for windows not
//! aligned to whole seconds). Under steady traffic both are the same formula.

use crate::duration::{Nanos, SECOND};

/// Validated budget parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetParams {
    /// Retries allowed per first attempt, in parts per million (0.2 → 200,000).
    pub ratio_ppm: u32,
    /// Floor of retries per second that are always allowed.
    pub min_retries_per_second: u32,
    /// Window length in seconds (1..=60).
    pub ttl_seconds: u32,
}

mod record;

/// Most buckets a record holds: a window is at most 60 s, and one more is tolerated.
const MAX_BUCKETS: usize = 61;

/// One second of traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Bucket {
    second: u64,
    firsts: u32,
    retries: u32,
    /// Requests whose final response failed (after any retries).
    failed: u32,
}

/// The budget's counters over the window. `Default` is an empty window.
///
/// The buckets are in ascending order of second, no two alike (every writer appends the
/// current second, which is never older than the newest): the current second is the last
/// bucket, and expiry drops a prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BudgetState {
    buckets: Vec<Bucket>,
}

/// The oldest second of a window whose current second is `current`.
fn oldest_live(params: &BudgetParams, current: u64) -> u64 {
    current.saturating_sub(u64::from(params.ttl_seconds.max(1)) - 1)
}

impl BudgetState {
    /// The window's current second: `now`'s, or a later one another worker already wrote
    /// (clocks of workers read a moment apart, or a clock stepping back, must not wipe it).
    pub(crate) fn current_second(&self, now: Nanos) -> u64 {
        let newest = self.buckets.last().map_or(0, |b| b.second);
        (now / SECOND).max(newest)
    }

    /// Drops buckets that left the window (a prefix: the buckets are in order).
    fn expire(&mut self, params: &BudgetParams, now: Nanos) {
        let oldest = oldest_live(params, self.current_second(now));
        let gone = self
            .buckets
            .iter()
            .take_while(|b| b.second < oldest)
            .count();
        if gone > 0 {
            self.buckets.drain(..gone);
        }
    }

    /// The current second's bucket, added if missing.
    fn current(&mut self, now: Nanos) -> Option<&mut Bucket> {
        let second = self.current_second(now);
        if self.buckets.last().is_none_or(|b| b.second != second) {
            self.buckets.push(Bucket {
                second,
                ..Bucket::default()
            });
        }
        self.buckets.last_mut()
    }

    /// Counts `n` first attempts at `now`.
    pub fn record_firsts(&mut self, params: &BudgetParams, now: Nanos, n: u32) {
        self.expire(params, now);
        if let Some(bucket) = self.current(now) {
            bucket.firsts = bucket.firsts.saturating_add(n);
        }
    }

    /// Counts `n` requests whose final response failed, at `now`.
    pub fn record_failures(&mut self, params: &BudgetParams, now: Nanos, n: u32) {
        self.expire(params, now);
        if let Some(bucket) = self.current(now) {
            bucket.failed = bucket.failed.saturating_add(n);
        }
    }

    /// Retries still allowed in the window at `now`, in thousandths of a retry.
    pub fn available_milli(&self, params: &BudgetParams, now: Nanos) -> i64 {
        let oldest = oldest_live(params, self.current_second(now));
        let (firsts, retries, failed) = self.buckets.iter().filter(|b| b.second >= oldest).fold(
            (0u64, 0u64, 0u64),
            |(f, r, x), b| {
                (
                    f + u64::from(b.firsts),
                    r + u64::from(b.retries),
                    x + u64::from(b.failed),
                )
            },
        );
        let earned = firsts * u64::from(params.ratio_ppm) / 1_000;
        let full_floor =
            u64::from(params.min_retries_per_second) * u64::from(params.ttl_seconds) * 1_000;
        // The floor in proportion to the requests that did not fail (all of it before any
        // request was seen).
        let floor = (full_floor * firsts.saturating_sub(failed))
            .checked_div(firsts)
            .unwrap_or(full_floor);
        i64::try_from(earned + floor).unwrap_or(i64::MAX)
            - i64::try_from(retries * 1_000).unwrap_or(i64::MAX)
    }

    /// Takes up to `wanted` retries from the budget at `now`; returns how many were granted
    /// and the second they were booked in (to refund into the same bucket later).
    pub fn withdraw(&mut self, params: &BudgetParams, now: Nanos, wanted: u32) -> u32 {
        self.withdraw_at(params, now, wanted).0
    }

    /// [`BudgetState::withdraw`], also returning the bucket second of the grant.
    pub fn withdraw_at(&mut self, params: &BudgetParams, now: Nanos, wanted: u32) -> (u32, u64) {
        self.withdraw_with(params, now, |_| wanted)
    }

    /// Takes retries from the budget at `now`: `amount` is told the whole retries available
    /// and says how many to take (never more than there are). Returns how many were taken
    /// and the second they were booked in.
    pub fn withdraw_with(
        &mut self,
        params: &BudgetParams,
        now: Nanos,
        amount: impl FnOnce(u32) -> u32,
    ) -> (u32, u64) {
        self.expire(params, now);
        let whole = self.available_milli(params, now).max(0) / 1_000;
        let whole = u32::try_from(whole).unwrap_or(u32::MAX);
        let granted = amount(whole).min(whole);
        let second = self.current_second(now);
        match self.current(now) {
            Some(bucket) => {
                bucket.retries = bucket.retries.saturating_add(granted);
                (granted, second)
            }
            None => (0, second),
        }
    }

    /// Returns `n` unused retries to the bucket of second `granted_in` they were taken from;
    /// nothing if that bucket already left the window (its retries no longer count anyway).
    pub fn refund(&mut self, params: &BudgetParams, now: Nanos, granted_in: u64, n: u32) {
        self.expire(params, now);
        if let Some(bucket) = self.buckets.iter_mut().find(|b| b.second == granted_in) {
            bucket.retries = bucket.retries.saturating_sub(n);
        }
    }

    /// Retries counted in the window (for metrics and tests).
    pub fn retries_in_window(&self, params: &BudgetParams, now: Nanos) -> u64 {
        let oldest = oldest_live(params, self.current_second(now));
        self.buckets
            .iter()
            .filter(|b| b.second >= oldest)
            .map(|b| u64::from(b.retries))
            .sum()
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
    use crate::test_support::test;

    const P: BudgetParams = BudgetParams {
        ratio_ppm: 200_000,
        min_retries_per_second: 10,
        ttl_seconds: 10,
    };

    fn at(seconds: f64) -> Nanos {
        (seconds * SECOND as f64) as Nanos
    }

    #[test]
    fn floor_alone_allows_min_times_ttl() {
        let mut s = BudgetState::default();
        assert_eq!(s.available_milli(&P, 0), 100_000);
        assert_eq!(s.withdraw(&P, at(0.5), 1000), 100);
        assert_eq!(s.withdraw(&P, at(0.6), 1), 0, "floor spent");
    }

    #[test]
    fn ratio_of_first_attempts_is_added() {
        let mut s = BudgetState::default();
        s.record_firsts(&P, at(1.0), 1000);
        // 0.2 × 1000 + 10 × 10 = 300
        assert_eq!(s.withdraw(&P, at(1.5), 1000), 300);
        assert_eq!(s.withdraw(&P, at(1.6), 1), 0);
    }

    #[test]
    fn the_floor_shrinks_with_the_share_of_requests_that_failed() {
        // 30 first attempts a second for 10 s: the ratio earns 60 retries, the floor 100.
        let mut healthy = BudgetState::default();
        let mut storm = BudgetState::default();
        let mut blips = BudgetState::default();
        for second in 0..10 {
            let now = at(f64::from(second));
            for s in [&mut healthy, &mut storm, &mut blips] {
                s.record_firsts(&P, now, 30);
            }
            storm.record_failures(&P, now, 30);
            blips.record_failures(&P, now, 3);
        }
        let now = at(9.5);
        assert_eq!(healthy.available_milli(&P, now), 160_000);
        assert_eq!(
            storm.available_milli(&P, now),
            60_000,
            "every request failed: only the ratio (1.2x, not Linkerd's 1.53x)"
        );
        assert_eq!(
            blips.available_milli(&P, now),
            150_000,
            "10 % failed: 90 % of the floor"
        );
        // More failures than first attempts counted (firsts flushed late) leave no floor.
        let mut odd = BudgetState::default();
        odd.record_firsts(&P, 0, 2);
        odd.record_failures(&P, 0, 5);
        assert_eq!(odd.available_milli(&P, 0), 400);
    }

    #[test]
    fn ratio_zero_leaves_only_the_floor() {
        let p = BudgetParams { ratio_ppm: 0, ..P };
        let mut s = BudgetState::default();
        s.record_firsts(&p, 0, 1_000_000);
        assert_eq!(s.withdraw(&p, 0, u32::MAX), 100);
    }

    #[test]
    fn fractional_earnings_accumulate() {
        let p = BudgetParams {
            ratio_ppm: 200_000,
            min_retries_per_second: 0,
            ttl_seconds: 10,
        };
        let mut s = BudgetState::default();
        let mut granted = 0;
        for i in 0..100 {
            s.record_firsts(&p, at(f64::from(i) * 0.01), 1);
            granted += s.withdraw(&p, at(f64::from(i) * 0.01), 1);
        }
        assert_eq!(granted, 20, "one retry per five first attempts");
    }

    #[test]
    fn ttl_edges_age_out_whole_seconds() {
        let mut s = BudgetState::default();
        s.record_firsts(&P, at(0.0), 500); // earns 100
        assert_eq!(s.withdraw(&P, at(0.0), 1000), 200);
        // At 9.999 s second 0 is still in the 10-second window: nothing left.
        assert_eq!(s.withdraw(&P, at(9.999), 1), 0);
        // At 10.0 s second 0 has left: firsts and retries of second 0 are forgotten.
        assert_eq!(s.available_milli(&P, at(10.0)), 100_000);
        assert_eq!(s.retries_in_window(&P, at(10.0)), 0);
    }

    #[test]
    fn one_second_ttl() {
        let p = BudgetParams {
            ttl_seconds: 1,
            ..P
        };
        let mut s = BudgetState::default();
        assert_eq!(s.withdraw(&p, at(3.2), 100), 10);
        assert_eq!(s.withdraw(&p, at(3.9), 100), 0);
        assert_eq!(s.withdraw(&p, at(4.0), 100), 10);
    }

    #[test]
    fn refund_returns_unused_grants_to_their_bucket() {
        let mut s = BudgetState::default();
        let (granted, second) = s.withdraw_at(&P, 0, 100);
        assert_eq!((granted, second), (100, 0));
        s.refund(&P, at(0.1), second, 30);
        assert_eq!(s.withdraw(&P, at(0.2), 100), 30);
        s.refund(&P, at(0.3), 0, 1000);
        assert_eq!(
            s.retries_in_window(&P, at(0.3)),
            0,
            "refund never goes negative"
        );
    }

    #[test]
    fn refund_after_the_grant_aged_out_changes_nothing() {
        // A request held longer than ttl: its grant's bucket is gone; refunding must not take
        // retries off younger buckets (that would let the window exceed the bound).
        let p = BudgetParams {
            ratio_ppm: 0,
            min_retries_per_second: 10,
            ttl_seconds: 10,
        };
        let mut s = BudgetState::default();
        let (granted, second) = s.withdraw_at(&p, at(0.0), 3);
        assert_eq!(granted, 3);
        assert_eq!(s.withdraw(&p, at(10.5), 1000), 100, "a fresh window");
        s.refund(&p, at(10.6), second, 3);
        assert_eq!(
            s.withdraw(&p, at(10.7), 1000),
            0,
            "the stale refund gave nothing back"
        );
    }

    #[test]
    fn a_lagging_clock_does_not_wipe_newer_buckets() {
        let mut s = BudgetState::default();
        s.record_firsts(&P, at(5.0), 1000); // another worker already at second 5
                                            // This worker still reads second 4: the bucket of second 5 must survive.
        assert_eq!(s.withdraw(&P, at(4.9), 1000), 300);
        assert_eq!(s.withdraw(&P, at(5.1), 1), 0);
    }

    #[test]
    fn window_bound_holds_over_a_long_run() {
        // 100 first attempts per second, every request wants 3 retries, for 60 s:
        // in every aligned 10 s window retries ≤ 0.2 × firsts + 10 × 10.
        let mut s = BudgetState::default();
        let mut per_second = vec![(0u64, 0u64); 60];
        for ms in 0..60_000u64 {
            let now = ms * 1_000_000;
            if ms % 10 == 0 {
                s.record_firsts(&P, now, 1);
                per_second[(ms / 1000) as usize].0 += 1;
                let got = s.withdraw(&P, now, 3);
                per_second[(ms / 1000) as usize].1 += u64::from(got);
            }
        }
        for start in 0..=50 {
            let (f, r) = per_second[start..start + 10]
                .iter()
                .fold((0, 0), |(f, r), (a, b)| (f + a, r + b));
            assert!(
                r * 5 <= f + 500,
                "window at {start}s: {r} retries for {f} firsts"
            );
        }
    }
}
