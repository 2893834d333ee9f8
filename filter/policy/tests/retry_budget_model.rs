//! The retry budget of the pure crate across workers against a ledger of the truth, under
//! random operations: four worker VMs (four [`Pipeline`]s on one [`MemoryStore`], as in one
//! proxy process) with one `retry_budget` + `retry` policy set, driven by a seeded sequence of
//! first attempts (GET, idempotent; POST, not), final responses that say how many attempts Envoy
//! made (`x-envoy-attempt-count`, from 1 to 1 + the retries granted), requests reset before any
//! response, lost compare-and-swap races, quiet spells, and time passing with each worker's
//! once-a-second tick (when it flushes the first attempts it counted locally).
//!
//! Why: the bound of README "Retry budgets" is what operators rely on ("retries add at most
//! `ratio` of the load, plus a floor"), but it is kept by four cooperating mechanisms spread over
//! workers: reservations made up front in shared data, refunds into the bucket a reservation
//! came from, first attempts counted locally and flushed late, and contention that must only
//! ever under-spend. Unit tests check each against one budget; only random interleavings of
//! several workers check them together. The test keeps its own ledger: first attempts by the
//! second they arrived, and per request the retries granted (read from `x-envoy-max-retries`),
//! the retries Envoy used, and whether the refund was applied (a refund whose update lost every
//! race counts `retry_budget_contended`). It checks:
//! - POST is never granted a retry (`x-envoy-max-retries: 0`), GET never more than
//!   `max_retries_per_request`; a GET gets fewer only when its update lost every race, or when
//!   right after it the shared budget has less than one whole retry left, and the ledger agrees
//!   that the window's first attempts (those surely flushed by now) earned no more;
//! - after every operation, the retries the shared budget counts in its window equal the ledger's
//!   grants less applied refunds of the same seconds (so a reset after admission refunds
//!   nothing, a refund goes to the second it was granted in, nothing is counted twice);
//! - at every grant, the retries of the trailing `ttl` window stay within `ratio ×` the first
//!   attempts that arrived in it (one second earlier included: first attempts reach the shared
//!   budget at their worker's next flush) `+ min_retries_per_second × ttl`;
//! - the documented bound: the retries Envoy used, in every `ttl` window of whole seconds, stay
//!   within `ratio ×` the first attempts of the `2 × ttl` window ending with it `+
//!   min_retries_per_second × ttl` (retries are placed at their grant, where the budget books
//!   them; a window not aligned to whole seconds is covered by an aligned one plus the one
//!   bucket of slack README allows, so the aligned ones are the ones with content);
//! - after `ttl` seconds without traffic (following the last flush) the budget is back to its
//!   floor, `min_retries_per_second × ttl`, in shared data and in every worker's gauge;
//! - the counters `retries_allowed`, `retries_denied_budget` and `retries_denied_not_idempotent`
//!   summed over workers match the ledger.
//!
//! Not covered by the two bounds: a flush that loses every race keeps its first attempts for
//! the next flush, a second later, so they count in the budget one second longer than their
//! arrival allows, and the grants they pay for can exceed both bounds by `ratio ×` those first
//! attempts. No check of these seeds fails through it.
//!
//! Each case is reproducible from its seed, which every assertion message names.
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;

use ballast_policy::config::Config;
use ballast_policy::duration::{Nanos, MILLISECOND, SECOND};
use ballast_policy::metrics::Metric;
use ballast_policy::pipeline::{Exchange, Pipeline, ResponseView, Verdict};
use ballast_policy::retry::{BudgetParams, BudgetState};
use ballast_policy::routing::RequestView;
use ballast_policy::store::{self, Cas, MemoryStore, SharedStore, StoreError, MAX_CAS_ATTEMPTS};
use common::{Metrics, Rng};
use std::cell::Cell;

const WORKERS: usize = 4;
const CASES: u64 = 40;
const STEPS: usize = 3_000;
const SCOPE: &str = "model";
const START_SECOND: u64 = 1_700_000_000;
/// The host's tick period for a policy set with a budget and no limiter.
const TICK: Nanos = SECOND;
const PPM: u64 = 1_000_000;

/// A first attempt without headers of interest (no retry mark, no idempotency key).
struct Request(&'static str);

impl RequestView for Request {
    fn authority(&mut self) -> Option<&str> {
        Some("api.example")
    }
    fn path(&mut self) -> Option<&str> {
        Some("/orders")
    }
    fn method(&mut self) -> Option<&str> {
        Some(self.0)
    }
    fn header(&mut self, _name: &str) -> Option<&str> {
        None
    }
    fn route_name(&mut self) -> Option<&str> {
        None
    }
}

/// A final response: its status and `x-envoy-attempt-count`.
struct Response {
    status: u16,
    attempts: u32,
}

impl ResponseView for Response {
    fn header(&mut self, name: &str) -> Option<String> {
        match name {
            ":status" => Some(self.status.to_string()),
            "x-envoy-attempt-count" => Some(self.attempts.to_string()),
            _ => None,
        }
    }
}

/// The process's shared data: a [`MemoryStore`] that also notices when an update lost every
/// race (as many refused writes in a row as an update makes), which no metric reports for a
/// budget flush.
#[derive(Default)]
struct Store {
    inner: MemoryStore,
    refused_in_a_row: Cell<u32>,
    contended_updates: Cell<u64>,
}

impl SharedStore for Store {
    fn get(&self, key: &str) -> Result<store::Versioned, StoreError> {
        self.inner.get(key)
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<Cas>) -> Result<(), StoreError> {
        let result = self.inner.set(key, value, cas);
        if result.is_ok() {
            self.refused_in_a_row.set(0);
        } else {
            let refused = self.refused_in_a_row.get() + 1;
            self.refused_in_a_row.set(refused);
            if refused.is_multiple_of(MAX_CAS_ATTEMPTS) {
                self.contended_updates.set(self.contended_updates.get() + 1);
            }
        }
        result
    }
}

struct Worker {
    pipeline: Pipeline<Metrics>,
    metrics: Metrics,
    next_tick: Nanos,
}

/// A request between its first attempt and its end.
struct InFlight {
    worker: usize,
    exchange: Exchange,
    get: bool,
    /// Retries granted (`x-envoy-max-retries`).
    granted: u32,
    /// The second it was granted in (the bucket of its reservation).
    second: u64,
}

/// Per second since the start: what really happened.
#[derive(Default)]
struct Ledger {
    /// First attempts, by the second they arrived.
    firsts: Vec<u64>,
    /// First attempts, by the time they arrived.
    arrivals: Vec<Nanos>,
    /// Retries Envoy made, by the second they were granted.
    used: Vec<u64>,
    /// Retries granted less refunds applied, by the second they were granted.
    charged: Vec<u64>,
}

/// The entry of second `second` (relative to the start).
fn slot(v: &mut Vec<u64>, second: u64) -> &mut u64 {
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

/// How often each path of the model was taken, so a change that stops reaching one (and with it
/// the checks on it) fails instead of passing quietly.
#[derive(Debug, Default, Clone, Copy)]
struct Coverage {
    full_grants: u64,
    partial_grants: u64,
    denied_grants: u64,
    contended_reserves: u64,
    contended_refunds: u64,
    stale_refunds: u64,
    earned_checks: u64,
    resets: u64,
    quiet_spells: u64,
    windows: u64,
    /// Windows whose used retries reached more than half of what the bound allows.
    tight_windows: u64,
}

impl Coverage {
    fn assert_complete(&self) {
        let paths = [
            ("a full grant", self.full_grants),
            ("a partial grant", self.partial_grants),
            ("a GET granted nothing", self.denied_grants),
            (
                "a reservation that lost every race",
                self.contended_reserves,
            ),
            ("a refund that lost every race", self.contended_refunds),
            ("a refund after its bucket aged out", self.stale_refunds),
            (
                "a short grant checked against the first attempts",
                self.earned_checks,
            ),
            ("a reset", self.resets),
            ("a quiet spell", self.quiet_spells),
            ("a window checked", self.windows),
            ("a window near the bound", self.tight_windows),
        ];
        for (path, taken) in paths {
            assert!(taken > 0, "no case reached: {path} ({self:?})");
        }
    }

    fn add(&mut self, o: Coverage) {
        self.full_grants += o.full_grants;
        self.partial_grants += o.partial_grants;
        self.denied_grants += o.denied_grants;
        self.contended_reserves += o.contended_reserves;
        self.contended_refunds += o.contended_refunds;
        self.stale_refunds += o.stale_refunds;
        self.earned_checks += o.earned_checks;
        self.resets += o.resets;
        self.quiet_spells += o.quiet_spells;
        self.windows += o.windows;
        self.tight_windows += o.tight_windows;
    }
}

struct Model {
    seed: u64,
    step: usize,
    rng: Rng,
    config: Config,
    params: BudgetParams,
    max_retries: u32,
    key: String,
    store: Store,
    /// When an update of the budget last lost every race (then first attempts may reach the
    /// shared budget a flush later than usual).
    last_contended: Option<Nanos>,
    contended_seen: u64,
    workers: Vec<Worker>,
    in_flight: Vec<InFlight>,
    now: Nanos,
    next_id: u32,
    ledger: Ledger,
    /// Expected totals of counters over all workers: allowed, denied by the budget, denied as
    /// not idempotent.
    allowed: u64,
    denied_budget: u64,
    denied_not_idempotent: u64,
    seen: Coverage,
}

impl Model {
    fn new(seed: u64) -> Model {
        let mut rng = Rng(seed | 1);
        let (ratio, ratio_ppm) = *rng.pick(&[("0.1", 100_000), ("0.2", 200_000), ("0.5", 500_000)]);
        let min = *rng.pick(&[0u32, 1, 2]);
        let ttl = *rng.pick(&[1u32, 2, 3, 5, 10]);
        let max_retries = *rng.pick(&[1u32, 2, 3]);
        let json = format!(
            r#"{{"policy_sets": {{"api": {{
                "retry_budget": {{"ratio": {ratio}, "min_retries_per_second": {min}, "ttl": "{ttl}s"}},
                "retry": {{"max_retries_per_request": {max_retries}}}}}}},
                "default_policy_set": "api"}}"#
        );
        let config = Config::from_json(json.as_bytes()).unwrap();
        let params = config.policy_sets[0].retry_budget.unwrap();
        assert_eq!(
            params,
            BudgetParams {
                ratio_ppm,
                min_retries_per_second: min,
                ttl_seconds: ttl,
            },
            "seed {seed}: {json}"
        );
        let mut model = Model {
            seed,
            step: 0,
            rng,
            config,
            params,
            max_retries,
            key: format!("ballast.{SCOPE}.retry_budget.api"),
            store: Store::default(),
            last_contended: None,
            contended_seen: 0,
            workers: Vec::new(),
            in_flight: Vec::new(),
            now: START_SECOND * SECOND,
            next_id: 1,
            ledger: Ledger::default(),
            allowed: 0,
            denied_budget: 0,
            denied_not_idempotent: 0,
            seen: Coverage::default(),
        };
        for _ in 0..WORKERS {
            let worker = model.open_worker();
            model.workers.push(worker);
        }
        assert!(
            model.store.inner.keys().contains(&model.key),
            "seed {seed}: the budget is stored under {}",
            model.key
        );
        model
    }

    fn open_worker(&mut self) -> Worker {
        let metrics = Metrics::default();
        let handle = metrics.clone();
        let pipeline = Pipeline::open(self.config.clone(), &self.store, SCOPE, self.now, |_| {
            handle.clone()
        });
        let phase = 1 + self.rng.below(TICK);
        Worker {
            pipeline,
            metrics,
            next_tick: self.now + phase,
        }
    }

    fn ctx(&self) -> String {
        format!("seed {} step {}", self.seed, self.step)
    }

    fn ttl(&self) -> u64 {
        u64::from(self.params.ttl_seconds)
    }

    /// The floor of the budget: `min_retries_per_second × ttl` retries.
    fn floor(&self) -> u64 {
        u64::from(self.params.min_retries_per_second) * self.ttl()
    }

    /// The current second, relative to the start.
    fn second(&self) -> u64 {
        self.now / SECOND - START_SECOND
    }

    /// The shared budget, decoded (read-only: the test takes no part in what it observes).
    fn budget(&self) -> BudgetState {
        BudgetState::decode(&store::read(&self.store, &self.key).unwrap()).unwrap()
    }

    fn contended(&self, worker: usize) -> u64 {
        self.workers[worker]
            .metrics
            .0
            .get(Metric::RetryBudgetContended)
    }

    fn arrive(&mut self) {
        let worker = self.rng.index(WORKERS);
        let get = self.rng.below(10) < 7;
        let id = self.next_id;
        self.next_id += 1;
        let contended_before = self.contended(worker);
        let now = self.now;
        let begun = self.workers[worker].pipeline.begin(
            &self.store,
            &mut Request(if get { "GET" } else { "POST" }),
            id,
            now,
        );
        let ctx = self.ctx();
        let (exchange, effects) = begun.unwrap_or_else(|| panic!("{ctx}: routed to no set"));
        assert_eq!(effects.verdict, Verdict::Continue, "{ctx}");
        let header = effects
            .set_headers
            .iter()
            .find(|(name, _)| *name == "x-envoy-max-retries");
        let Some((_, value)) = header else {
            panic!("{ctx}: no x-envoy-max-retries in {:?}", effects.set_headers);
        };
        let granted: u32 = value.parse().unwrap();
        let contended = self.contended(worker) > contended_before;
        let second = self.second();
        *slot(&mut self.ledger.firsts, second) += 1;
        self.ledger.arrivals.push(now);
        if get {
            assert!(
                granted <= self.max_retries,
                "{ctx}: GET granted {granted}, more than {}",
                self.max_retries
            );
            if contended {
                assert_eq!(
                    granted, 0,
                    "{ctx}: granted by an update that was not stored"
                );
                self.seen.contended_reserves += 1;
            } else if granted < self.max_retries {
                let left = self.budget().available_milli(&self.params, now);
                assert!(
                    left < 1_000,
                    "{ctx}: GET granted {granted} of {} with {left} thousandths of a retry left",
                    self.max_retries
                );
            }
            match granted {
                0 if !contended => self.seen.denied_grants += 1,
                0 => {}
                g if g == self.max_retries => self.seen.full_grants += 1,
                _ => self.seen.partial_grants += 1,
            }
            *slot(&mut self.ledger.charged, second) += u64::from(granted);
            if granted > 0 {
                self.check_at_grant();
            }
            if !contended && granted < self.max_retries {
                self.check_earned(granted);
            }
        } else {
            assert_eq!(granted, 0, "{ctx}: POST granted {granted} retries");
        }
        self.in_flight.push(InFlight {
            worker,
            exchange,
            get,
            granted,
            second,
        });
    }

    /// README's guarantee at a grant: the trailing window's retries (booked less refunded)
    /// within `ratio ×` its first attempts (and those of the second before, not yet flushed
    /// when it began) `+ floor`.
    fn check_at_grant(&self) {
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
    /// is this request, which its own reservation counts), unless an update lost every race
    /// since just before the window began (a first attempt then reaches it a flush later).
    fn check_earned(&mut self, granted: u32) {
        let (s, ttl) = (self.second(), self.ttl());
        let window_start = (START_SECOND + (s + 1).saturating_sub(ttl)) * SECOND;
        if self
            .last_contended
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
        let retries = sum(&self.ledger.charged, s + 1, ttl);
        let earned_milli = u64::from(self.params.ratio_ppm) * firsts / 1_000;
        assert!(
            earned_milli + self.floor() * 1_000 < (retries + 1) * 1_000,
            "{}: GET granted {granted} of {} with {retries} retries counted in the window, though \
             {firsts} first attempts earned {earned_milli} thousandths (floor {})",
            self.ctx(),
            self.max_retries,
            self.floor()
        );
        self.seen.earned_checks += 1;
    }

    /// Notes when an update lost every race.
    fn note_contention(&mut self) {
        let updates = self.store.contended_updates.get();
        if updates != self.contended_seen {
            self.contended_seen = updates;
            self.last_contended = Some(self.now);
        }
    }

    /// A final response: Envoy made `used` of the granted retries.
    fn respond(&mut self) {
        if self.in_flight.is_empty() {
            return;
        }
        // Half the time the oldest, so requests do not linger for ever.
        let at = if self.rng.below(2) == 0 {
            0
        } else {
            self.rng.index(self.in_flight.len())
        };
        let mut request = self.in_flight.remove(at);
        let granted = request.granted;
        let used = match self.rng.below(2) {
            _ if granted == 0 => 0,
            0 => granted,
            _ => u32::try_from(self.rng.below(u64::from(granted) + 1)).unwrap(),
        };
        let status = if used == granted && self.rng.below(5) != 0 {
            503
        } else {
            200
        };
        let end_of_stream = self.rng.below(2) == 0;
        let (worker, now) = (request.worker, self.now);
        let contended_before = self.contended(worker);
        let pipeline = &self.workers[worker].pipeline;
        pipeline.on_response_headers(
            &self.store,
            &mut request.exchange,
            &mut Response {
                status,
                attempts: used + 1,
            },
            end_of_stream,
            now,
        );
        if !end_of_stream {
            pipeline.on_response_end(&self.store, &mut request.exchange, now);
        }
        pipeline.on_done(&self.store, &mut request.exchange, now);
        let refund_lost = self.contended(worker) > contended_before;
        *slot(&mut self.ledger.used, request.second) += u64::from(used);
        if refund_lost {
            self.seen.contended_refunds += 1;
        } else {
            let charged = slot(&mut self.ledger.charged, request.second);
            *charged -= u64::from(granted - used);
        }
        if granted > used && request.second + self.ttl() <= self.second() {
            self.seen.stale_refunds += 1;
        }
        self.allowed += u64::from(used);
        if status >= 500 {
            if !request.get {
                self.denied_not_idempotent += 1;
            } else if used == granted && granted < self.max_retries {
                self.denied_budget += 1;
            }
        }
    }

    /// A request reset before any response: Envoy may have made some of its retries, ballast
    /// cannot know how many and refunds nothing.
    fn reset(&mut self) {
        if self.in_flight.is_empty() {
            return;
        }
        let at = self.rng.index(self.in_flight.len());
        let mut request = self.in_flight.remove(at);
        let used = self.rng.below(u64::from(request.granted) + 1);
        self.workers[request.worker]
            .pipeline
            .on_done(&self.store, &mut request.exchange, self.now);
        *slot(&mut self.ledger.used, request.second) += used;
        self.seen.resets += 1;
    }

    /// Advances time by `by`, ticking each worker once a second on its own timer.
    fn advance(&mut self, by: Nanos) {
        let target = self.now + by;
        loop {
            let (at, worker) = (0..WORKERS)
                .map(|i| (self.workers[i].next_tick, i))
                .min()
                .unwrap();
            if at > target {
                break;
            }
            self.now = at;
            self.workers[worker].next_tick += TICK;
            let outcome = self.workers[worker].pipeline.tick(&self.store, at);
            self.note_contention();
            assert!(
                outcome.reject.is_empty() && outcome.resume.is_empty(),
                "{}: a tick without a limiter acted on streams: {outcome:?}",
                self.ctx()
            );
        }
        self.now = target;
    }

    /// The shared budget counts, in its window, exactly the ledger's grants less applied
    /// refunds of those seconds.
    fn check_accounting(&self) {
        let expected = sum(&self.ledger.charged, self.second() + 1, self.ttl());
        let counted = self.budget().retries_in_window(&self.params, self.now);
        assert_eq!(
            counted,
            expected,
            "{}: retries the shared budget counts in its window against the ledger",
            self.ctx()
        );
    }

    /// No traffic: after every worker's next flush and `ttl` more seconds, the budget is back
    /// to its floor; one more second and every worker's gauge says so.
    fn quiet(&mut self) {
        self.store.inner.lose_next_races(0);
        self.advance(SECOND);
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
        for (i, worker) in self.workers.iter().enumerate() {
            assert_eq!(
                worker.metrics.0.get(Metric::RetryBudgetAvailable),
                self.floor(),
                "{ctx}: worker {i}'s budget gauge after a quiet spell"
            );
        }
        self.seen.quiet_spells += 1;
    }

    /// The documented bound over every whole-second `ttl` window.
    fn check_windows(&mut self) {
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

    fn check_counters(&self) {
        let total = |metric| -> u64 { self.workers.iter().map(|w| w.metrics.0.get(metric)).sum() };
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

    fn run(mut self) -> Coverage {
        for step in 0..STEPS {
            self.step = step;
            match self.rng.below(20) {
                0..=5 => self.arrive(),
                6..=11 => self.respond(),
                12 => self.reset(),
                13..=15 => {
                    let by = self.rng.below(300) * MILLISECOND;
                    self.advance(by);
                }
                16 => {
                    let n = u32::try_from(self.rng.below(10)).unwrap();
                    self.store.inner.lose_next_races(n);
                }
                17 if self.rng.below(10) == 0 => self.quiet(),
                18 if self.rng.below(4) == 0 => {
                    // A burst: many first attempts in the same instant.
                    for _ in 0..2 + self.rng.below(12) {
                        self.arrive();
                    }
                }
                _ => {}
            }
            self.note_contention();
            self.check_accounting();
        }
        self.step = STEPS;
        while !self.in_flight.is_empty() {
            self.respond();
        }
        self.check_accounting();
        self.check_counters();
        self.check_windows();
        self.quiet();
        self.seen
    }
}

#[test]
fn retry_budget_model_holds_its_bounds_across_workers_under_random_operations() {
    let mut seen = Coverage::default();
    for case in 1..=CASES {
        let seed = case.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        seen.add(Model::new(seed).run());
    }
    seen.assert_complete();
}
