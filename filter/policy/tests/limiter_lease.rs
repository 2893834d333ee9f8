//! Leases of the concurrency limiter, scenario by scenario: worker VMs (pipelines on one
//! in-memory store, as in one proxy process) that reserve spare slots while the limit is far
//! away, and what must happen to those slots when another worker needs them, when the lessee
//! goes idle, crashes, or its configuration is replaced.
//!
//! Why beside the random model (`limiter_model`): the model checks at every step that a lease
//! never lets in flight pass the limit, but the moments that matter for a lease (the record
//! filling within one tick while a worker holds spare slots; a worker dying with spare slots)
//! are rare there. Here each is set up on purpose, with the time it may take, and the cost of a
//! lease (shared-data calls per request) is measured on a counting store.
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

#[path = "common/mod.rs"]
mod common;

use ballast_policy::concurrency::lease::{LEASE_IDLE, SPARE_MAX};
use ballast_policy::concurrency::limiter::{Limiter, StreamId};
use ballast_policy::concurrency::LimiterState;
use ballast_policy::config::Config;
use ballast_policy::duration::{Nanos, MILLISECOND, SECOND};
use ballast_policy::metrics::Metric;
use ballast_policy::pipeline::{Exchange, Verdict};
use ballast_policy::store::{self, Cas, MemoryStore, SharedStore, StoreError, Versioned};
use common::{Get, Ok200, Worker};
use std::cell::Cell;

const SCOPE: &str = "lease";
const TICK: Nanos = 10 * MILLISECOND;
const START: Nanos = 1_700_000_000 * SECOND;

/// A [`MemoryStore`] that counts the calls made to it.
#[derive(Default)]
struct Counting {
    inner: MemoryStore,
    gets: Cell<u64>,
    sets: Cell<u64>,
}

impl SharedStore for Counting {
    fn get(&self, key: &str) -> Result<Versioned, StoreError> {
        self.gets.set(self.gets.get() + 1);
        self.inner.get(key)
    }
    fn set(&self, key: &str, value: &[u8], cas: Option<Cas>) -> Result<(), StoreError> {
        self.sets.set(self.sets.get() + 1);
        self.inner.set(key, value, cas)
    }
}

/// One proxy process: its workers (`None` once crashed), the store they share, the clock.
struct Process {
    config: Config,
    store: Counting,
    workers: Vec<Option<Worker>>,
    now: Nanos,
    next_id: StreamId,
}

impl Process {
    /// `workers` VMs with a fixed limit of `limit`, ticking 3 ms apart from each other.
    fn new(workers: usize, limit: u32) -> Process {
        let json = format!(
            r#"{{"policy_sets": {{"api": {{"concurrency": {{"algorithm": "fixed",
                "initial_limit": {limit}, "queue": {{"size": 50, "max_wait": "1s"}}}}}}}},
                "default_policy_set": "api"}}"#
        );
        let config = Config::from_json(json.as_bytes()).unwrap();
        let store = Counting::default();
        let workers = (0..workers)
            .map(|i| {
                let first_tick = START + 1 + 3 * MILLISECOND * u64::try_from(i).unwrap();
                Some(Worker::open(&config, &store, SCOPE, START, first_tick))
            })
            .collect();
        Process {
            config,
            store,
            workers,
            now: START,
            next_id: 1,
        }
    }

    fn worker(&self, i: usize) -> &Worker {
        self.workers[i].as_ref().unwrap()
    }

    fn record(&self) -> LimiterState {
        let key = Limiter::key_for(&format!("ballast.{SCOPE}"), "api");
        let params = self.config.policy_sets[0]
            .concurrency
            .clone()
            .unwrap()
            .algorithm;
        LimiterState::decode(&params, &store::read(&self.store.inner, &key).unwrap()).unwrap()
    }

    /// A request arrives on worker `i`: its stream, exchange and whether it was admitted at
    /// once (else it waits).
    fn arrive(&mut self, i: usize) -> (StreamId, Exchange, bool) {
        let id = self.next_id;
        self.next_id += 1;
        let (exchange, effects) = self
            .worker(i)
            .pipeline
            .begin(&self.store, &mut Get, id, self.now)
            .unwrap();
        let admitted = match effects.verdict {
            Verdict::Continue => true,
            Verdict::Pause => false,
            Verdict::Reply(reply) => panic!("refused: {reply:?}"),
        };
        (id, exchange, admitted)
    }

    /// An admitted request of worker `i` is answered and ends; returns a waiter it resumed.
    fn finish(&mut self, i: usize, mut exchange: Exchange) -> Option<StreamId> {
        let pipeline = &self.worker(i).pipeline;
        let effects =
            pipeline.on_response_headers(&self.store, &mut exchange, &mut Ok200, true, self.now);
        let done = pipeline.on_done(&self.store, &mut exchange, self.now);
        assert!(done.is_none(), "a slot is handed over once");
        effects.resume.map(|r| r.stream)
    }

    /// Advances the clock by `by`, ticking every live worker on its own 10 ms timer; returns
    /// the streams the ticks resumed, with when.
    fn advance(&mut self, by: Nanos) -> Vec<(StreamId, Nanos)> {
        let target = self.now + by;
        let mut resumed = Vec::new();
        loop {
            let due = self
                .workers
                .iter()
                .enumerate()
                .filter_map(|(i, w)| w.as_ref().map(|w| (w.next_tick, i)))
                .min();
            let Some((at, i)) = due.filter(|(at, _)| *at <= target) else {
                break;
            };
            self.now = at;
            self.workers[i].as_mut().unwrap().next_tick += TICK;
            let outcome = self.worker(i).pipeline.tick(&self.store, at);
            assert!(outcome.reject.is_empty(), "{:?}", outcome.reject);
            resumed.extend(outcome.resume.into_iter().map(|r| (r.stream, at)));
        }
        self.now = target;
        resumed
    }

    /// (reserved, in flight) in the record.
    fn totals(&self) -> (u32, u32) {
        let record = self.record();
        (record.reserved(), record.in_flight())
    }
}

#[test]
fn a_busy_worker_far_below_the_limit_touches_shared_data_only_now_and_then() {
    let mut p = Process::new(1, 64);
    let run = |p: &mut Process, n: u64| {
        for _ in 0..n {
            let (_, exchange, admitted) = p.arrive(0);
            assert!(admitted);
            assert_eq!(p.finish(0, exchange), None);
            p.advance(MILLISECOND);
        }
    };
    run(&mut p, 10);
    let (reserved, in_flight) = p.totals();
    assert_eq!(in_flight, 0);
    assert!(
        (1..=SPARE_MAX).contains(&reserved),
        "a lease of {reserved} spare slots"
    );
    let (gets, sets) = (p.store.gets.get(), p.store.sets.get());
    run(&mut p, 1_000);
    let gets = p.store.gets.get() - gets;
    let sets = p.store.sets.get() - sets;
    // A look at each tick (100 in a second), a heartbeat a second: no write per request.
    assert!(gets <= 110, "{gets} reads for 1,000 requests");
    assert!(sets <= 5, "{sets} writes for 1,000 requests");
}

#[test]
fn a_waiter_on_another_worker_gets_the_spare_slots_of_a_lease_within_two_ticks() {
    let mut p = Process::new(2, 24);
    // Worker 0 admits two requests and keeps one: a lease of spare slots below half the limit.
    let (_, first, _) = p.arrive(0);
    let (_, kept, _) = p.arrive(0);
    p.finish(0, first);
    let (reserved, in_flight) = p.totals();
    assert!(reserved > in_flight, "worker 0 leases spare slots");
    let spare = reserved - 1;
    // Within the same instant (no tick in between), worker 1 fills the rest of the limit.
    let mut held = Vec::new();
    loop {
        let (id, exchange, admitted) = p.arrive(1);
        if !admitted {
            held.push((id, exchange));
            break;
        }
        held.push((id, exchange));
        assert!(held.len() <= 24, "worker 1 admitted past the limit");
    }
    let waiter = held.last().unwrap().0;
    assert_eq!(
        p.totals().0,
        24,
        "worker 1 took every slot but worker 0's {spare} spare ones"
    );
    assert_eq!(
        held.len(),
        usize::try_from(24 - reserved + 1).unwrap(),
        "admitted on worker 1, then the waiter"
    );
    // Worker 0 gives its spare slots back at its next tick; worker 1 takes one at its own.
    let arrived = p.now;
    let resumed = p.advance(2 * TICK);
    assert_eq!(resumed.len(), 1, "{resumed:?}");
    assert_eq!(resumed[0].0, waiter);
    assert!(resumed[0].1 - arrived <= 2 * TICK);
    let (reserved, in_flight) = p.totals();
    assert_eq!(
        (reserved, in_flight),
        (25 - spare, 25 - spare),
        "no lease while the limit is more than half used"
    );
    p.finish(0, kept);
}

#[test]
fn an_idle_worker_gives_its_spare_slots_back() {
    let mut p = Process::new(1, 64);
    for _ in 0..3 {
        let (_, exchange, _) = p.arrive(0);
        p.finish(0, exchange);
        p.advance(MILLISECOND);
    }
    assert!(p.totals().0 > 0, "a lease");
    p.advance(LEASE_IDLE + TICK);
    assert_eq!(
        p.totals(),
        (0, 0),
        "nothing reserved after {LEASE_IDLE} ns idle"
    );
    let (_, exchange, admitted) = p.arrive(0);
    assert!(
        admitted,
        "a request after the idle spell is admitted through the record"
    );
    p.finish(0, exchange);
}

#[test]
fn the_slots_of_a_crashed_lessee_come_back_and_a_replaced_configuration_leaves_at_once() {
    let mut p = Process::new(2, 64);
    let mut kept = Vec::new();
    for _ in 0..3 {
        let (_, exchange, _) = p.arrive(0);
        kept.push(exchange);
        p.advance(MILLISECOND);
    }
    // (The record's in-flight count lags: the lease admits without writing it.)
    let (reserved, in_flight) = p.totals();
    assert!(
        reserved > 3 && in_flight <= 3,
        "{reserved} reserved, {in_flight} in flight for 3 requests"
    );
    p.workers[0] = None; // crashed: its requests and its lease are gone with it
    drop(kept);
    p.advance(6 * SECOND);
    assert_eq!(p.totals(), (0, 0), "the crashed VM's entry was removed");
    assert_eq!(
        p.worker(1).metrics.0.get(Metric::ConcurrencyReclaimed),
        u64::from(reserved),
        "its requests' slots and its spare ones"
    );

    // Worker 1 leases spare slots, then its configuration is replaced: its entry leaves at
    // once, spare slots with it.
    for _ in 0..3 {
        let (_, exchange, _) = p.arrive(1);
        p.finish(1, exchange);
        p.advance(MILLISECOND);
    }
    assert!(p.totals().0 > 0, "a lease");
    p.worker(1).pipeline.close(&p.store, p.now);
    assert_eq!(p.totals(), (0, 0));
    let warnings = p.worker(1).metrics.0.warnings();
    assert!(
        !warnings.iter().any(|w| w.contains("closed with")),
        "spare slots are no news: {warnings:?}"
    );
}
