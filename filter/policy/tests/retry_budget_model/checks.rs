//! The ledger of the truth and the checks against it: first attempts and retries per second,
//! the bound at every grant, a short grant held against what the first attempts earned, the
//! shared budget's accounting after every operation (within what the VMs may hold), everything
//! held written back a second after traffic stops, the quiet spell that brings the budget
//! back to its floor, the documented bound over every window, and the counters. They are apart
//! so that the properties the module doc of `main.rs` lists can be read against the code that
//! asserts them, without the operations around them.

use crate::world::{Life, Model};
use crate::{PPM, START_SECOND};
use ballast_policy::duration::{Nanos, SECOND};
use ballast_policy::metrics::Metric;

/// Per second since the start: what really happened.
#[derive(Default)]
pub(crate) struct Ledger {
    /// First attempts, by the second they arrived.
    pub(crate) firsts: Vec<u64>,
    /// First attempts, by the time they arrived.
    pub(crate) arrivals: Vec<Nanos>,
    /// Retries Envoy made, by the second they were granted.
    pub(crate) used: Vec<u64>,
    /// Retries granted less refunds applied, by the second they were granted.
    pub(crate) charged: Vec<u64>,
    /// Final failures (5xx), by the time they were answered: the budget's floor shrinks with
    /// their share of the window's requests.
    pub(crate) failures: Vec<Nanos>,
}

/// The entry of second `second` (relative to the start).
pub(crate) fn slot(v: &mut Vec<u64>, second: u64) -> &mut u64 {
    let i = usize::try_from(second).unwrap();
    if v.len() <= i {
        v.resize(i + 1, 0);
    }
    &mut v[i]
}

/// Sum of `v` over the `len` seconds ending before second `end` (relative to the start; the
/// seconds before the start had nothing).
fn sum(v: &[u64], end: u64, len: u64) -> u64 {
    (end.saturating_sub(len)..end)
        .filter_map(|i| v.get(usize::try_from(i).unwrap()))
        .sum()
}

impl Model {
    /// README's guarantee at a grant: the trailing window's retries (booked less refunded)
    /// within `ratio ×` its first attempts (and those of the second before, not yet flushed
    /// when it began) `+ floor`.
    pub(crate) fn check_at_grant(&self) {
        let (s, ttl) = (self.second(), self.ttl());
        let retries = sum(&self.ledger.charged, s + 1, ttl);
        let firsts = sum(&self.ledger.firsts, s + 1, ttl + 1);
        let allowed = u64::from(self.params.ratio_ppm) * firsts + self.floor() * PPM;
        assert!(
            retries * PPM <= allowed,
            "{}: {retries} retries in the {ttl} s window at a grant, for {firsts} first \
             attempts (ratio {} ppm, floor {})",
            self.ctx(),
            self.params.ratio_ppm,
            self.floor()
        );
    }

    /// A GET got fewer retries than it wanted: the budget must really be spent, counting every
    /// first attempt of the window that has surely reached it (its worker flushed since, or it
    /// is this request, which its own reservation counts), unless an update lost every race or
    /// a VM died since just before the window began (a first attempt then reaches it a flush
    /// later, or never). The retries held against it are the shared budget's own count: other
    /// workers' spare retries are in it, and `check_accounting` holds that count against the
    /// ledger.
    pub(crate) fn check_earned(&mut self, granted: u32) {
        let (s, ttl) = (self.second(), self.ttl());
        let window_start = (START_SECOND + (s + 1).saturating_sub(ttl)) * SECOND;
        if self
            .last_disruption
            .is_some_and(|at| at + SECOND >= window_start)
        {
            return;
        }
        let flushed_by = self.now - SECOND;
        let arrivals = &self.ledger.arrivals;
        let flushed = arrivals
            .partition_point(|t| *t <= flushed_by)
            .saturating_sub(arrivals.partition_point(|t| *t < window_start));
        let firsts = u64::try_from(flushed).unwrap() + 1;
        let retries = self.budget().retries_in_window(&self.params, self.now);
        let earned_milli = u64::from(self.params.ratio_ppm) * firsts / 1_000;
        // The least floor the budget can have had: at most every failure answered in the
        // window reached it, and at least `firsts` first attempts did.
        let failures = self
            .ledger
            .failures
            .iter()
            .filter(|t| **t >= window_start)
            .count();
        let failures = u64::try_from(failures).unwrap();
        let floor_milli = self.floor() * 1_000 * firsts.saturating_sub(failures) / firsts;
        assert!(
            earned_milli + floor_milli < (retries + 1) * 1_000,
            "{}: GET granted {granted} of {} with {retries} retries counted in the window, though \
             {firsts} first attempts earned {earned_milli} thousandths (floor {})",
            self.ctx(),
            self.max_retries,
            self.floor()
        );
        self.seen.earned_checks += 1;
    }

    /// The shared budget counts, in its window, at least the ledger's grants less refunds of
    /// those seconds (a token given back twice would make it fewer), and at most that plus
    /// what the VMs may hold: each running VM its spare retries (at most `SPARE_REQUESTS`
    /// requests' worth) and the refunds given back to it since it last wrote, and what VMs
    /// that died left behind in seconds still in the window.
    pub(crate) fn check_accounting(&self) {
        let charged = sum(&self.ledger.charged, self.second() + 1, self.ttl());
        let counted = self.budget().retries_in_window(&self.params, self.now);
        let held = self.held_bound();
        assert!(
            charged <= counted && counted <= charged + held,
            "{}: the shared budget counts {counted} retries in its window, the ledger {charged} \
             granted less refunded, and the VMs may hold {held}",
            self.ctx()
        );
    }

    /// After every VM's next flush (a second without traffic or lost races), every VM has
    /// written back everything it held and owed: the shared budget counts exactly the ledger's
    /// grants less refunds, but for what dead VMs left behind in seconds still in the window.
    pub(crate) fn check_returned(&mut self) {
        let charged = sum(&self.ledger.charged, self.second() + 1, self.ttl());
        let counted = self.budget().retries_in_window(&self.params, self.now);
        let running: u64 = self
            .vms
            .iter()
            .filter(|vm| matches!(vm.life, Life::Live | Life::Retired))
            .map(|vm| vm.owed)
            .sum();
        assert_eq!(
            running,
            0,
            "{}: a VM still owes after its flush",
            self.ctx()
        );
        let left = self.held_bound() - self.spare_cap() * self.running_vms();
        assert!(
            charged <= counted && counted <= charged + left,
            "{}: a second after traffic stopped the shared budget counts {counted} retries in \
             its window, the ledger {charged} granted less refunded, and dead VMs may have left \
             {left}",
            self.ctx()
        );
        if left == 0 {
            self.seen.exact_returns += 1;
        }
    }

    /// No traffic: after every worker's next flush, everything held is back (`check_returned`);
    /// after `ttl` more seconds the budget is back to its floor; one more second and every
    /// worker's gauge says so.
    pub(crate) fn quiet(&mut self) {
        self.store.inner.lose_next_races(0);
        self.advance(SECOND);
        self.check_returned();
        self.advance(self.ttl() * SECOND);
        let ctx = self.ctx();
        let budget = self.budget();
        assert_eq!(
            (
                budget.retries_in_window(&self.params, self.now),
                budget.available_milli(&self.params, self.now)
            ),
            (0, i64::try_from(self.floor() * 1_000).unwrap()),
            "{ctx}: (retries counted, thousandths available) after {} s without traffic",
            self.ttl() + 1
        );
        self.advance(SECOND);
        for (i, &vm) in self.live.iter().enumerate() {
            assert_eq!(
                self.vms[vm]
                    .worker
                    .metrics
                    .0
                    .get(Metric::RetryBudgetAvailable),
                self.floor(),
                "{ctx}: worker {i}'s budget gauge after a quiet spell"
            );
        }
        self.seen.quiet_spells += 1;
    }

    /// The documented bound over every whole-second `ttl` window.
    pub(crate) fn check_windows(&mut self) {
        let ttl = self.ttl();
        let last = u64::try_from(self.ledger.used.len()).unwrap();
        // Windows are named by the second they end before; the first ones start before the
        // start of the run, when nothing happened.
        for end in 1..last + ttl {
            let used = sum(&self.ledger.used, end, ttl);
            let firsts = sum(&self.ledger.firsts, end, 2 * ttl);
            let allowed = u64::from(self.params.ratio_ppm) * firsts + self.floor() * PPM;
            assert!(
                used * PPM <= allowed,
                "seed {}: {used} retries used in the {ttl} s window ending before second {end}, \
                 for {firsts} first attempts in the {} s before its end (ratio {} ppm, floor {})",
                self.seed,
                2 * ttl,
                self.params.ratio_ppm,
                self.floor()
            );
            self.seen.windows += 1;
            self.seen.tight_windows += u64::from(used * PPM * 2 > allowed);
        }
    }

    pub(crate) fn check_counters(&self) {
        let total = |metric| -> u64 {
            self.vms
                .iter()
                .map(|vm| vm.worker.metrics.0.get(metric))
                .sum()
        };
        assert_eq!(
            (
                total(Metric::RetriesAllowed),
                total(Metric::RetriesDeniedBudget),
                total(Metric::RetriesDeniedNotIdempotent)
            ),
            (self.allowed, self.denied_budget, self.denied_not_idempotent),
            "seed {}: counters (allowed, denied by the budget, denied as not idempotent)",
            self.seed
        );
    }
}
