//! The model's world: the worker VMs on one shared store, the live streams with where each
//! stands as the host sees it, the clock, and the model that holds them, with the constructor
//! and the accessors (the record, the version, a worker's callback) that the operations and the
//! checks go through. It is apart from both so that what the model is can be read in one place,
//! before what is done to it (`operations`) and what is asserted about it (`checks`).

use crate::common::{Rng, Worker};
use crate::coverage::Coverage;
use crate::{MAX_WAIT, QUEUE_SIZE, SCOPE, START, TICK, WORKERS};
use ballast_policy::concurrency::limiter::{Limiter, StreamId};
use ballast_policy::concurrency::{AlgorithmParams, LimiterState};
use ballast_policy::config::Config;
use ballast_policy::duration::Nanos;
use ballast_policy::pipeline::Exchange;
use ballast_policy::store::{self, Cas, MemoryStore, SharedStore};

/// Where a stream stands, as the host sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Paused in its worker's queue; must leave it by `leave_by` (answered 504 if the caller's
    /// deadline set that time, else 503).
    Waiting {
        leave_by: Nanos,
        deadline_bound: bool,
    },
    /// Forwarded upstream, no response yet: holds a slot.
    Forwarded,
    /// Response headers seen, body still coming: holds a slot only when RTTs end at the end of
    /// the stream.
    Streaming,
}

pub(crate) struct Stream {
    pub(crate) id: StreamId,
    pub(crate) worker: usize,
    pub(crate) exchange: Exchange,
    pub(crate) phase: Phase,
    /// Admitted while an update lost every race (the limiter failed open).
    pub(crate) fail_open: bool,
}

pub(crate) struct Model {
    pub(crate) seed: u64,
    pub(crate) step: usize,
    pub(crate) rng: Rng,
    pub(crate) dry_run: bool,
    pub(crate) end_of_stream: bool,
    pub(crate) lifo: bool,
    /// The fixed limit: small (every admission and release one update) or large enough for
    /// workers to lease spare slots.
    pub(crate) limit: usize,
    pub(crate) config: Config,
    pub(crate) params: AlgorithmParams,
    pub(crate) key: String,
    pub(crate) store: MemoryStore,
    /// `None` while crashed.
    pub(crate) workers: Vec<Option<Worker>>,
    /// Live streams, in arrival order.
    pub(crate) streams: Vec<Stream>,
    pub(crate) now: Nanos,
    /// Stream ids are unique per process, across workers and reloads.
    pub(crate) next_id: StreamId,
    /// The worker whose update of the record was stored last (its gauges show the record).
    pub(crate) last_writer: Option<usize>,
    /// No lost race was forced since the record last matched the streams: then every admission
    /// and release is written in its own update, and in flight is exact after every operation.
    pub(crate) clean: bool,
    pub(crate) seen: Coverage,
}

impl Model {
    pub(crate) fn new(seed: u64, dry_run: bool, measure: &str, order: &str, limit: usize) -> Model {
        let json = format!(
            r#"{{"dry_run": {dry_run}, "trusted_peers": {{"source_cidrs": ["10.0.0.0/8"]}}, "policy_sets": {{"api": {{"concurrency": {{
                "algorithm": "fixed", "initial_limit": {limit}, "measure": "{measure}",
                "queue": {{"size": {QUEUE_SIZE}, "max_wait": "40ms", "order": "{order}"}}}}}}}},
                "default_policy_set": "api"}}"#
        );
        let config = Config::from_json(json.as_bytes()).unwrap();
        let concurrency = config.policy_sets[0].concurrency.clone().unwrap();
        assert_eq!(concurrency.queue.max_wait, MAX_WAIT);
        let mut model = Model {
            seed,
            step: 0,
            rng: Rng(seed | 1),
            dry_run,
            end_of_stream: measure == "end_of_stream",
            lifo: order == "lifo",
            limit,
            params: concurrency.algorithm,
            key: Limiter::key_for(&format!("ballast.{SCOPE}"), "api"),
            config,
            store: MemoryStore::new(),
            workers: Vec::new(),
            streams: Vec::new(),
            now: START,
            next_id: 1,
            last_writer: None,
            clean: true,
            seen: Coverage::default(),
        };
        for _ in 0..WORKERS {
            let worker = model.open_worker();
            model.workers.push(Some(worker));
        }
        assert!(
            model.store.keys().contains(&model.key),
            "seed {seed}: the record is stored under {}",
            model.key
        );
        model
    }

    /// A fresh VM: its pipeline, and its timer at a phase of its own.
    pub(crate) fn open_worker(&mut self) -> Worker {
        let phase = 1 + self.rng.below(TICK);
        Worker::open(&self.config, &self.store, SCOPE, self.now, self.now + phase)
    }

    pub(crate) fn worker(&self, index: usize) -> &Worker {
        self.workers[index].as_ref().unwrap()
    }

    fn version(&self) -> Option<Cas> {
        self.store.get(&self.key).unwrap().cas
    }

    /// The shared record, decoded. Read directly rather than through an observer pipeline: an
    /// observer's tick would sweep the record (and write it when it finds a stopped VM), so it
    /// would take part in what it observes; a read changes nothing.
    pub(crate) fn record(&self) -> LimiterState {
        let bytes = store::read(&self.store, &self.key).unwrap();
        LimiterState::decode(&self.params, &bytes).unwrap()
    }

    pub(crate) fn ctx(&self) -> String {
        format!("seed {} step {}", self.seed, self.step)
    }

    /// Runs a callback of `worker`'s pipeline, noting whether it wrote the record.
    pub(crate) fn on_worker<R>(
        &mut self,
        worker: usize,
        call: impl FnOnce(&Model, &Worker) -> R,
    ) -> R {
        let before = self.version();
        let out = call(self, self.worker(worker));
        if self.version() != before {
            self.last_writer = Some(worker);
        }
        out
    }

    pub(crate) fn take(&mut self, id: StreamId) -> Stream {
        let at = self.streams.iter().position(|s| s.id == id);
        let Some(at) = at else {
            panic!("{}: stream {id} is not live", self.ctx());
        };
        self.streams.remove(at)
    }
}
