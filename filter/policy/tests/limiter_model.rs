//! The concurrency limiter of the pure crate against a model of the truth, under random
//! operations: three worker VMs (three [`Pipeline`]s on one [`MemoryStore`], as in one proxy
//! process) driven by a seeded sequence of arrivals (some with deadlines, some already expired),
//! answers (at the response headers, or headers then the end of the body), resets of holding and
//! of waiting streams, time steps with the host's 10 ms ticks, lost compare-and-swap races, and
//! worker crashes followed by a reload.
//!
//! Why: the per-worker bookkeeping (each VM's held count and queue length in the shared record,
//! hand-offs to local waiters, admissions from the tick, repairs after lost races, reclaiming a
//! crashed VM's slots) has many paths whose interleavings unit tests only sample. The host-level
//! twin (`host-tests/mock-host/tests/ballast_concurrency_model.rs`) runs the same model through
//! the real .wasm; this one drives the crate directly, so it is fast, needs no build of the
//! plugin, and can look at what the host cannot: each request's own outcome and timing. It
//! checks, every time:
//! - a stream the limiter resumes is a waiting stream of the same worker, next in the queue's
//!   order (`fifo` or `lifo`) among those still before the time they had to leave by; a waiter
//!   it answers is answered at the first tick at or after that time, 504 if the caller's
//!   deadline set it, else 503; an arrival it answers at once is either past its deadline
//!   already (504) or finds its worker's queue full (503); in dry run nobody waits and nobody
//!   is answered;
//! - while no lost race has been forced since the last settling pause, the record's in-flight
//!   total equals the streams holding a slot after every operation (each admission and release
//!   is written in its own update; queue lengths only at the next tick, so they are not);
//!
//! and after every settling pause (30 ms of ticks without forced lost races):
//! - the shared record's in-flight and queued totals equal the streams really holding a slot and
//!   really waiting (the record is decoded from the store: an observer pipeline's tick would
//!   sweep it, taking part in what it observes), and the gauges of the worker that wrote the
//!   record last equal the record (each worker's gauges are what it saw at its last write);
//! - unless in dry run: no more than the limit hold slots, beyond the requests that were admitted
//!   because an update lost every race (fail open, counted in `concurrency_contended`, the one
//!   way past the limit this model can produce); and no request waits beside a free slot.
//!
//! At the end every stream is finished, and 2 s later everything is back to zero, in the record
//! and in every worker's gauges. Across all cases every path (waits, hand-offs, admissions by
//! the tick, time-outs, deadline drops, refusals, fail-open admissions, crashes) must have been
//! taken. Each case is reproducible from its seed, which every assertion message names.
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;

use ballast_policy::concurrency::limiter::{Limiter, StreamId};
use ballast_policy::concurrency::{AlgorithmParams, LimiterState};
use ballast_policy::config::Config;
use ballast_policy::duration::{Nanos, MILLISECOND, SECOND};
use ballast_policy::metrics::Metric;
use ballast_policy::pipeline::{Exchange, Pipeline, ResponseView, Verdict};
use ballast_policy::routing::RequestView;
use ballast_policy::store::{self, Cas, MemoryStore, SharedStore};
use common::{Metrics, Rng};

const WORKERS: usize = 3;
const LIMIT: usize = 3;
const QUEUE_SIZE: usize = 4;
const MAX_WAIT: Nanos = 40 * MILLISECOND;
const STEPS: usize = 1_500;
const CASES: u64 = 60;
/// The host's tick period for a policy set with a limiter.
const TICK: Nanos = 10 * MILLISECOND;
const SCOPE: &str = "model";
const START: Nanos = 1_700_000_000 * SECOND;

/// A GET with optional deadline headers.
struct Request(Vec<(&'static str, &'static str)>);

impl RequestView for Request {
    fn authority(&mut self) -> Option<&str> {
        Some("api.example")
    }
    fn path(&mut self) -> Option<&str> {
        Some("/items")
    }
    fn method(&mut self) -> Option<&str> {
        Some("GET")
    }
    fn header(&mut self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
    fn route_name(&mut self) -> Option<&str> {
        None
    }
}

/// Response headers: just the status.
struct Response(u16);

impl ResponseView for Response {
    fn header(&mut self, name: &str) -> Option<String> {
        (name == ":status").then(|| self.0.to_string())
    }
}

/// Where a stream stands, as the host sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
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

struct Stream {
    id: StreamId,
    worker: usize,
    exchange: Exchange,
    phase: Phase,
    /// Admitted while an update lost every race (the limiter failed open).
    fail_open: bool,
}

struct Worker {
    pipeline: Pipeline<Metrics>,
    metrics: Metrics,
    next_tick: Nanos,
}

struct Model {
    seed: u64,
    step: usize,
    rng: Rng,
    dry_run: bool,
    end_of_stream: bool,
    lifo: bool,
    config: Config,
    params: AlgorithmParams,
    key: String,
    store: MemoryStore,
    /// `None` while crashed.
    workers: Vec<Option<Worker>>,
    /// Live streams, in arrival order.
    streams: Vec<Stream>,
    now: Nanos,
    /// Stream ids are unique per process, across workers and reloads.
    next_id: StreamId,
    /// The worker whose update of the record was stored last (its gauges show the record).
    last_writer: Option<usize>,
    /// No lost race was forced since the record last matched the streams: then every admission
    /// and release is written in its own update, and in flight is exact after every operation.
    clean: bool,
    seen: Coverage,
}

/// How often each path of the model was taken, so a change that stops reaching one (and with it
/// the checks on it) fails instead of passing quietly.
#[derive(Debug, Default, Clone, Copy)]
struct Coverage {
    waited: u64,
    handed_over: u64,
    resumed_by_tick: u64,
    timed_out: u64,
    deadline_dropped: u64,
    refused_full: u64,
    refused_past_deadline: u64,
    failed_open: u64,
    crashes: u64,
    settled: u64,
    settled_full_with_waiters: u64,
    exact: u64,
}

impl Coverage {
    /// Every path was taken in some case.
    fn assert_complete(&self) {
        let paths = [
            ("waited", self.waited),
            ("handed over", self.handed_over),
            ("resumed by a tick", self.resumed_by_tick),
            ("timed out", self.timed_out),
            ("deadline dropped", self.deadline_dropped),
            ("refused, queue full", self.refused_full),
            ("refused, past its deadline", self.refused_past_deadline),
            ("failed open", self.failed_open),
            ("crashes", self.crashes),
            ("settled", self.settled),
            ("settled, full with waiters", self.settled_full_with_waiters),
            ("exact after an operation", self.exact),
        ];
        for (path, taken) in paths {
            assert!(taken > 0, "no case reached: {path} ({self:?})");
        }
    }

    fn add(&mut self, o: Coverage) {
        self.waited += o.waited;
        self.handed_over += o.handed_over;
        self.resumed_by_tick += o.resumed_by_tick;
        self.timed_out += o.timed_out;
        self.deadline_dropped += o.deadline_dropped;
        self.refused_full += o.refused_full;
        self.refused_past_deadline += o.refused_past_deadline;
        self.failed_open += o.failed_open;
        self.crashes += o.crashes;
        self.settled += o.settled;
        self.settled_full_with_waiters += o.settled_full_with_waiters;
        self.exact += o.exact;
    }
}

impl Model {
    fn new(seed: u64, dry_run: bool, measure: &str, order: &str) -> Model {
        let json = format!(
            r#"{{"dry_run": {dry_run}, "policy_sets": {{"api": {{"concurrency": {{
                "algorithm": "fixed", "initial_limit": {LIMIT}, "measure": "{measure}",
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

    fn worker(&self, index: usize) -> &Worker {
        self.workers[index].as_ref().unwrap()
    }

    fn version(&self) -> Option<Cas> {
        self.store.get(&self.key).unwrap().cas
    }

    /// The shared record, decoded. Read directly rather than through an observer pipeline: an
    /// observer's tick would sweep the record (and write it when it finds a stopped VM), so it
    /// would take part in what it observes; a read changes nothing.
    fn record(&self) -> LimiterState {
        let bytes = store::read(&self.store, &self.key).unwrap();
        LimiterState::decode(&self.params, &bytes).unwrap()
    }

    fn ctx(&self) -> String {
        format!("seed {} step {}", self.seed, self.step)
    }

    /// Runs a callback of `worker`'s pipeline, noting whether it wrote the record.
    fn on_worker<R>(&mut self, worker: usize, call: impl FnOnce(&Model, &Worker) -> R) -> R {
        let before = self.version();
        let out = call(self, self.worker(worker));
        if self.version() != before {
            self.last_writer = Some(worker);
        }
        out
    }

    fn take(&mut self, id: StreamId) -> Stream {
        let at = self.streams.iter().position(|s| s.id == id);
        let Some(at) = at else {
            panic!("{}: stream {id} is not live", self.ctx());
        };
        self.streams.remove(at)
    }

    /// The limiter named `resumed` as holding a slot now: it must be a stream of the same
    /// worker that is still waiting, and not yet past the time it had to leave by.
    fn resume(&mut self, worker: usize, resumed: Option<StreamId>, by_tick: bool) {
        let Some(id) = resumed else {
            return;
        };
        if by_tick {
            self.seen.resumed_by_tick += 1;
        } else {
            self.seen.handed_over += 1;
        }
        let (ctx, now) = (self.ctx(), self.now);
        assert!(
            self.streams.iter().any(|s| s.id == id),
            "{ctx}: resumed stream {id} is not live"
        );
        // The queue's order among this worker's waiters that can still be served (ids grow
        // with arrival).
        let live = self.streams.iter().filter(|s| {
            s.worker == worker
                && matches!(s.phase, Phase::Waiting { leave_by, .. } if leave_by > now)
        });
        let next = if self.lifo {
            live.map(|s| s.id).max()
        } else {
            live.map(|s| s.id).min()
        };
        assert_eq!(
            Some(id),
            next,
            "{ctx}: resumed stream {id} out of {} order",
            if self.lifo { "lifo" } else { "fifo" }
        );
        let stream = self.streams.iter_mut().find(|s| s.id == id).unwrap();
        assert_eq!(stream.worker, worker, "{ctx}: resumed on another worker");
        let Phase::Waiting { leave_by, .. } = stream.phase else {
            panic!(
                "{ctx}: resumed stream {id} was not waiting but {:?}",
                stream.phase
            );
        };
        assert!(
            now < leave_by,
            "{ctx}: stream {id} got a slot {} ns after it had to leave",
            now - leave_by
        );
        stream.phase = Phase::Forwarded;
    }

    /// The response headers of `stream` arrive (a local reply's too, which the host passes to
    /// the filter like any response).
    fn response_headers(&mut self, stream: &mut Stream, status: u16, end_of_stream: bool) {
        let now = self.now;
        let effects = self.on_worker(stream.worker, |m, w| {
            w.pipeline.on_response_headers(
                &m.store,
                &mut stream.exchange,
                &mut Response(status),
                end_of_stream,
                now,
            )
        });
        self.resume(stream.worker, effects.resume, false);
    }

    fn response_end(&mut self, stream: &mut Stream) {
        let now = self.now;
        let resumed = self.on_worker(stream.worker, |m, w| {
            w.pipeline
                .on_response_end(&m.store, &mut stream.exchange, now)
        });
        self.resume(stream.worker, resumed, false);
    }

    /// The stream is gone (every stream ends with exactly one of these).
    fn done(&mut self, mut stream: Stream) {
        let now = self.now;
        let resumed = self.on_worker(stream.worker, |m, w| {
            w.pipeline.on_done(&m.store, &mut stream.exchange, now)
        });
        self.resume(stream.worker, resumed, false);
    }

    /// A local reply: the host sends it, passes its headers (end of stream) to the filter,
    /// then ends the stream.
    fn answered_locally(&mut self, mut stream: Stream, status: u16) {
        self.response_headers(&mut stream, status, true);
        self.done(stream);
    }

    fn arrive(&mut self) {
        let worker = self.rng.index(WORKERS);
        let mut headers = Vec::new();
        let mut remaining = None;
        match self.rng.below(4) {
            0 => {
                let (value, ms) =
                    *self
                        .rng
                        .pick(&[("5m", 5), ("20m", 20), ("0m", 0), ("100m", 100)]);
                headers.push(("grpc-timeout", value));
                remaining = Some(ms * MILLISECOND);
            }
            1 => {
                let (value, ms) = *self.rng.pick(&[("3", 3), ("25", 25)]);
                headers.push(("x-envoy-expected-rq-timeout-ms", value));
                remaining = Some(ms * MILLISECOND);
            }
            _ => {}
        }
        let id = self.next_id;
        self.next_id += 1;
        let waiting_here = self
            .streams
            .iter()
            .filter(|s| s.worker == worker && matches!(s.phase, Phase::Waiting { .. }))
            .count();
        let contended_before = self
            .worker(worker)
            .metrics
            .0
            .get(Metric::ConcurrencyContended);
        let now = self.now;
        let begun = self.on_worker(worker, |m, w| {
            w.pipeline.begin(&m.store, &mut Request(headers), id, now)
        });
        let ctx = self.ctx();
        let (exchange, effects) = begun.unwrap_or_else(|| panic!("{ctx}: routed to no set"));
        let contended = self
            .worker(worker)
            .metrics
            .0
            .get(Metric::ConcurrencyContended)
            > contended_before;
        let mut stream = Stream {
            id,
            worker,
            exchange,
            phase: Phase::Forwarded,
            fail_open: false,
        };
        match effects.verdict {
            Verdict::Continue => {
                stream.fail_open = contended;
                self.seen.failed_open += u64::from(contended);
                self.streams.push(stream);
            }
            Verdict::Pause => {
                assert!(!self.dry_run, "{ctx}: a request waits in dry run");
                assert!(
                    waiting_here < QUEUE_SIZE,
                    "{ctx}: queued beside {waiting_here} waiters"
                );
                // Fixed limits learn no no-load RTT, so the deadline is not shortened.
                let (leave_by, deadline_bound) = match remaining {
                    Some(remaining) if remaining < MAX_WAIT => (now + remaining, true),
                    _ => (now + MAX_WAIT, false),
                };
                assert!(
                    remaining != Some(0),
                    "{ctx}: a request past its deadline waits"
                );
                self.seen.waited += 1;
                stream.phase = Phase::Waiting {
                    leave_by,
                    deadline_bound,
                };
                self.streams.push(stream);
            }
            Verdict::Reply(reply) => {
                assert!(!self.dry_run, "{ctx}: answered in dry run: {reply:?}");
                if remaining == Some(0) {
                    assert_eq!(reply.status, 504, "{ctx}: past its deadline: {reply:?}");
                    self.seen.refused_past_deadline += 1;
                } else {
                    assert_eq!(reply.status, 503, "{ctx}: {reply:?}");
                    assert_eq!(
                        waiting_here, QUEUE_SIZE,
                        "{ctx}: refused with room in the queue"
                    );
                    self.seen.refused_full += 1;
                }
                self.answered_locally(stream, reply.status);
            }
        }
    }

    /// Answers a stream that was forwarded: headers with the end of stream, or headers now and
    /// the end of the body later.
    fn answer(&mut self) {
        let answerable: Vec<StreamId> = self
            .streams
            .iter()
            .filter(|s| matches!(s.phase, Phase::Forwarded | Phase::Streaming))
            .map(|s| s.id)
            .collect();
        if answerable.is_empty() {
            return;
        }
        let id = *self.rng.pick(&answerable);
        let mut stream = self.take(id);
        match stream.phase {
            Phase::Forwarded if self.rng.below(2) == 0 => {
                self.response_headers(&mut stream, 200, true);
                self.done(stream);
            }
            Phase::Forwarded => {
                self.response_headers(&mut stream, 200, false);
                stream.phase = Phase::Streaming;
                self.streams.push(stream);
            }
            _ => {
                self.response_end(&mut stream);
                self.done(stream);
            }
        }
    }

    /// Resets a live stream, holding a slot or waiting.
    fn reset(&mut self) {
        if self.streams.is_empty() {
            return;
        }
        let at = self.rng.index(self.streams.len());
        let stream = self.streams.remove(at);
        self.done(stream);
    }

    /// Advances time by `by`, ticking each live worker every 10 ms on its own timer.
    fn advance(&mut self, by: Nanos) {
        let target = self.now + by;
        loop {
            let due = (0..WORKERS)
                .filter_map(|i| self.workers[i].as_ref().map(|w| (w.next_tick, i)))
                .min();
            let Some((at, worker)) = due.filter(|(at, _)| *at <= target) else {
                break;
            };
            self.now = at;
            self.workers[worker].as_mut().unwrap().next_tick += TICK;
            self.tick(worker);
        }
        self.now = target;
    }

    fn tick(&mut self, worker: usize) {
        let now = self.now;
        let outcome = self.on_worker(worker, |m, w| w.pipeline.tick(&m.store, now));
        for (id, reply) in outcome.reject {
            let ctx = self.ctx();
            let stream = self.take(id);
            assert_eq!(stream.worker, worker, "{ctx}: answered by another worker");
            let Phase::Waiting {
                leave_by,
                deadline_bound,
            } = stream.phase
            else {
                panic!(
                    "{ctx}: answered stream {id} was not waiting but {:?}",
                    stream.phase
                );
            };
            assert!(
                leave_by <= now && now < leave_by + TICK,
                "{ctx}: stream {id} answered at {now}, not at the first tick after its time to \
                 leave ({leave_by})"
            );
            let expected = if deadline_bound {
                self.seen.deadline_dropped += 1;
                504
            } else {
                self.seen.timed_out += 1;
                503
            };
            assert_eq!(reply.status, expected, "{ctx}: stream {id}: {reply:?}");
            self.answered_locally(stream, reply.status);
        }
        for id in outcome.resume {
            self.resume(worker, Some(id), true);
        }
    }

    /// A worker VM crashes (its streams are gone with it) and is reloaded later; then 6 s pass,
    /// past the 5 s after which the other VMs take its slots back.
    fn crash(&mut self) {
        let worker = self.rng.index(WORKERS);
        self.seen.crashes += 1;
        self.workers[worker] = None;
        self.streams.retain(|s| s.worker != worker);
        if self.last_writer == Some(worker) {
            self.last_writer = None;
        }
        let down = self.rng.below(3_000) * MILLISECOND;
        self.advance(down);
        let fresh = self.open_worker();
        self.workers[worker] = Some(fresh);
        self.advance(6 * SECOND);
    }

    fn holds_slot(&self, stream: &Stream) -> bool {
        match stream.phase {
            Phase::Forwarded => true,
            Phase::Streaming => self.end_of_stream,
            Phase::Waiting { .. } => false,
        }
    }

    /// (holding a slot, of which admitted failing open, waiting).
    fn truth(&self) -> (usize, usize, usize) {
        let holding: Vec<&Stream> = self.streams.iter().filter(|s| self.holds_slot(s)).collect();
        let fail_open = holding.iter().filter(|s| s.fail_open).count();
        let waiting = self
            .streams
            .iter()
            .filter(|s| matches!(s.phase, Phase::Waiting { .. }))
            .count();
        (holding.len(), fail_open, waiting)
    }

    /// The record's totals against the streams, and the last writer's gauges against the
    /// record.
    fn check_bookkeeping(&self, what: &str) {
        let ctx = self.ctx();
        let record = self.record();
        let (holding, _, waiting) = self.truth();
        let totals = (
            usize::try_from(record.in_flight()).unwrap(),
            usize::try_from(record.queued()).unwrap(),
        );
        assert_eq!(
            totals,
            (holding, waiting),
            "{ctx}: {what}: the record's (in flight, queued) against the streams"
        );
        if let Some(writer) = self.last_writer {
            let metrics = &self.worker(writer).metrics.0;
            assert_eq!(
                (
                    usize::try_from(metrics.get(Metric::ConcurrencyInFlight)).unwrap(),
                    usize::try_from(metrics.get(Metric::ConcurrencyQueued)).unwrap()
                ),
                totals,
                "{ctx}: {what}: gauges (in flight, queued) of worker {writer}, which wrote last"
            );
        }
    }

    fn settle_and_check(&mut self) {
        self.store.lose_next_races(0);
        self.advance(30 * MILLISECOND);
        self.check_bookkeeping("after 30 ms");
        self.clean = true;
        self.seen.settled += 1;
        if self.dry_run {
            return;
        }
        let ctx = self.ctx();
        let (holding, fail_open, waiting) = self.truth();
        assert!(
            holding <= LIMIT + fail_open,
            "{ctx}: {holding} hold slots, over the limit of {LIMIT} (+{fail_open} failed open)"
        );
        assert!(
            holding >= LIMIT || waiting == 0,
            "{ctx}: {waiting} wait beside a free slot ({holding} of {LIMIT} held)"
        );
        self.seen.settled_full_with_waiters += u64::from(waiting > 0);
    }

    fn run(mut self) -> Coverage {
        for step in 0..STEPS {
            self.step = step;
            match self.rng.below(10) {
                0..=3 => self.arrive(),
                4..=5 => self.answer(),
                6 => self.reset(),
                7 if self.rng.below(40) == 0 => self.crash(),
                7 => {
                    let by = self.rng.below(26) * MILLISECOND;
                    self.advance(by);
                }
                8 if self.rng.below(4) == 0 => {
                    let n = u32::try_from(self.rng.below(10)).unwrap();
                    self.store.lose_next_races(n);
                    self.clean &= n == 0;
                }
                8 => {}
                _ => self.settle_and_check(),
            }
            if self.clean {
                // Queue lengths are written at the next tick (a reset waiter writes nothing),
                // so only in flight is exact at once.
                let (holding, _, _) = self.truth();
                assert_eq!(
                    usize::try_from(self.record().in_flight()).unwrap(),
                    holding,
                    "{}: in flight in the record against the streams, without lost races",
                    self.ctx()
                );
                self.seen.exact += 1;
            }
        }
        self.step = STEPS;
        self.store.lose_next_races(0);
        // Finish everything: waiters are reset, the others answered (streams resumed meanwhile
        // are answered in a later round).
        while !self.streams.is_empty() {
            let mut stream = self.streams.remove(0);
            match stream.phase {
                Phase::Waiting { .. } => self.done(stream),
                Phase::Forwarded => {
                    self.response_headers(&mut stream, 200, true);
                    self.done(stream);
                }
                Phase::Streaming => {
                    self.response_end(&mut stream);
                    self.done(stream);
                }
            }
        }
        self.advance(2 * SECOND);
        self.check_bookkeeping("at the end");
        let record = self.record();
        assert_eq!(
            (record.in_flight(), record.queued()),
            (0, 0),
            "seed {}: everything came back",
            self.seed
        );
        for (i, worker) in self.workers.iter().enumerate() {
            let metrics = &worker.as_ref().unwrap().metrics.0;
            assert_eq!(
                (
                    metrics.get(Metric::ConcurrencyInFlight),
                    metrics.get(Metric::ConcurrencyQueued)
                ),
                (0, 0),
                "seed {}: gauges of worker {i} at the end",
                self.seed
            );
        }
        self.seen
    }
}

#[test]
fn limiter_bookkeeping_matches_the_model_under_random_operations() {
    let mut seen = Coverage::default();
    for case in 1..=CASES {
        let dry_run = case % 7 == 0;
        let measure = if case % 2 == 0 {
            "headers"
        } else {
            "end_of_stream"
        };
        let order = if case % 3 == 0 { "lifo" } else { "fifo" };
        let seed = case.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        seen.add(Model::new(seed, dry_run, measure, order).run());
    }
    seen.assert_complete();
}
