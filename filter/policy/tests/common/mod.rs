//! What the model tests share: a seedable random source, a metrics handle the test can read,
//! and a worker VM (its pipeline on the process's shared store).
#![allow(dead_code)] // each test binary uses its own part
#![allow(clippy::unwrap_used, clippy::indexing_slicing)] // test code

use ballast_policy::config::{Config, PriorityId};
use ballast_policy::duration::Nanos;
use ballast_policy::metrics::{ClassMetric, Metric, Recorded, Telemetry};
use ballast_policy::pipeline::{Pipeline, ResponseView};
use ballast_policy::routing::RequestView;
use ballast_policy::store::SharedStore;
use std::rc::Rc;

/// One worker VM: its pipeline, the metrics it reports, and when its next tick is due.
pub struct Worker {
    pub pipeline: Pipeline<Metrics>,
    pub metrics: Metrics,
    pub next_tick: Nanos,
}

impl Worker {
    /// A fresh VM of the process whose shared data is `store`, first ticking at `first_tick`.
    pub fn open(
        config: &Config,
        store: &dyn SharedStore,
        scope: &str,
        now: Nanos,
        first_tick: Nanos,
    ) -> Worker {
        let metrics = Metrics::default();
        let handle = metrics.clone();
        let pipeline = Pipeline::open(config.clone(), store, scope, now, |_| handle.clone());
        Worker {
            pipeline,
            metrics,
            next_tick: first_tick,
        }
    }
}

/// xorshift64: small, seedable, good enough to pick operations.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    pub fn index(&mut self, len: usize) -> usize {
        usize::try_from(self.below(u64::try_from(len).unwrap())).unwrap()
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }
}

/// One worker's metrics, shared between its pipeline (which reports) and the test (which
/// reads): the pipeline owns its telemetry, so it gets a handle on a [`Recorded`] kept here.
#[derive(Clone, Default)]
pub struct Metrics(pub Rc<Recorded>);

impl Telemetry for Metrics {
    fn add_class(&self, metric: ClassMetric, class: PriorityId, n: u64) {
        self.0.add_class(metric, class, n);
    }
    fn add(&self, metric: Metric, n: u64) {
        self.0.add(metric, n);
    }
    fn set(&self, metric: Metric, value: u64) {
        self.0.set(metric, value);
    }
    fn record(&self, metric: Metric, value: u64) {
        self.0.record(metric, value);
    }
    fn warn(&self, message: &str) {
        self.0.warn(message);
    }
}

/// A plain GET of `/items` on `api.example`: no header, no route name.
pub struct Get;

impl RequestView for Get {
    fn authority(&mut self) -> Option<&str> {
        Some("api.example")
    }
    fn path(&mut self) -> Option<&str> {
        Some("/items")
    }
    fn method(&mut self) -> Option<&str> {
        Some("GET")
    }
    fn header(&mut self, _: &str) -> Option<&str> {
        None
    }
    fn route_name(&mut self) -> Option<&str> {
        None
    }
}

/// A response with status 200 and no other header.
pub struct Ok200;

impl ResponseView for Ok200 {
    fn header(&mut self, name: &str) -> Option<String> {
        (name == ":status").then(|| "200".to_string())
    }
}
