//! The limiter's gauges as Envoy keeps them: one value per name for the whole process, the
//! last write of any worker VM winning.
//!
//! Why: a worker skips writing the limit and queue-length gauges after an update of its own
//! when the update before was its own too and they did not change (the record names its last
//! writer). That is only right if no other worker's write can sit in between; here two workers
//! share one set of gauges, as in Envoy, and after every operation the gauges must show the
//! record.
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

#[path = "common/mod.rs"]
mod common;

use ballast_policy::concurrency::limiter::Limiter;
use ballast_policy::concurrency::LimiterState;
use ballast_policy::config::{Config, PriorityId};
use ballast_policy::duration::{Nanos, MILLISECOND, SECOND};
use ballast_policy::metrics::{ClassMetric, Metric, Telemetry};
use ballast_policy::pipeline::{Exchange, Pipeline, Verdict};
use ballast_policy::store::{self, MemoryStore, SharedStore};
use common::{Get, Metrics, Ok200, Rng};
use std::cell::Cell;
use std::rc::Rc;

/// Process-wide gauges shared by every worker, counting the gauge writes.
#[derive(Clone, Default)]
struct Process {
    metrics: Metrics,
    sets: Rc<Cell<u64>>,
}

impl Telemetry for Process {
    fn add_class(&self, metric: ClassMetric, class: PriorityId, n: u64) {
        self.metrics.add_class(metric, class, n);
    }
    fn add(&self, metric: Metric, n: u64) {
        self.metrics.add(metric, n);
    }
    fn set(&self, metric: Metric, value: u64) {
        self.sets.set(self.sets.get() + 1);
        self.metrics.set(metric, value);
    }
    fn record(&self, metric: Metric, value: u64) {
        self.metrics.record(metric, value);
    }
    fn warn(&self, message: &str) {
        self.metrics.warn(message);
    }
}

#[test]
fn gauges_shared_by_two_workers_show_the_record_after_every_operation() {
    // Below 4 no worker leases spare slots: every admission and release is an update.
    const LIMIT: u64 = 3;
    let json = format!(
        r#"{{"policy_sets": {{"api": {{"concurrency": {{"algorithm": "fixed",
            "initial_limit": {LIMIT}, "queue": {{"size": 10, "max_wait": "1s"}}}}}}}},
            "default_policy_set": "api"}}"#
    );
    let config = Config::from_json(json.as_bytes()).unwrap();
    let params = config.policy_sets[0].concurrency.clone().unwrap().algorithm;
    let key = Limiter::key_for("ballast.gauges", "api");
    let store = MemoryStore::new();
    let process = Process::default();
    let mut now: Nanos = 1_700_000_000 * SECOND;
    let workers: Vec<Pipeline<Process>> = (0..2)
        .map(|_| Pipeline::open(config.clone(), &store, "gauges", now, |_| process.clone()))
        .collect();
    let mut rng = Rng(0x5eed);
    let mut live: Vec<(usize, Exchange)> = Vec::new();
    let mut next_id = 1;
    let mut updates = 0u64;
    for step in 0..3_000 {
        let before = store.get(&key).unwrap().cas;
        match rng.below(8) {
            0..=2 => {
                let w = rng.index(2);
                let (exchange, effects) = workers[w].begin(&store, &mut Get, next_id, now).unwrap();
                next_id += 1;
                let mut exchange = exchange;
                match effects.verdict {
                    Verdict::Continue | Verdict::Pause => live.push((w, exchange)),
                    // The queue is full: the stream ends with the local reply.
                    Verdict::Reply(_) => {
                        workers[w].on_done(&store, &mut exchange, now);
                    }
                }
            }
            3..=5 if !live.is_empty() => {
                let (w, mut exchange) = live.remove(rng.index(live.len()));
                workers[w].on_response_headers(&store, &mut exchange, &mut Ok200, true, now);
                workers[w].on_done(&store, &mut exchange, now);
            }
            _ => {
                now += MILLISECOND * (1 + rng.below(15));
                for worker in &workers {
                    let outcome = worker.tick(&store, now);
                    assert!(outcome.reject.is_empty(), "step {step}");
                }
            }
        }
        updates += u64::from(store.get(&key).unwrap().cas != before);
        let record = LimiterState::decode(&params, &store::read(&store, &key).unwrap()).unwrap();
        let gauge = |metric| process.metrics.0.get(metric);
        assert_eq!(
            (
                gauge(Metric::ConcurrencyInFlight),
                gauge(Metric::ConcurrencyQueued),
                gauge(Metric::ConcurrencyLimit)
            ),
            (
                u64::from(record.in_flight()),
                u64::from(record.queued()),
                LIMIT
            ),
            "step {step}: gauges (in flight, queued, limit) against the record"
        );
    }
    assert!(
        process.sets.get() < 3 * updates,
        "{} gauge writes for {updates} updates: unchanged ones after a worker's own are skipped",
        process.sets.get()
    );
}
