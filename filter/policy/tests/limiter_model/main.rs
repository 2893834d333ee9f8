//! The concurrency limiter of the pure crate against a model of the truth, under random
//! operations: four worker VMs (four [`Pipeline`]s on one [`MemoryStore`], as in one proxy
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
//! - while no lost race has been forced since the last settling pause, after every operation:
//!   every stream holding a slot has it reserved in the record; unless in dry run, the
//!   reservations stay within the limit (beyond requests admitted because an update lost every
//!   race: fail open, counted in `concurrency_contended`, the one way past the limit this model
//!   can produce), so in flight does too at every moment, spare slots of leases included; and
//!   while no worker holds spare slots, the record's in-flight total equals the streams holding
//!   a slot (each admission and release is then written in its own update; queue lengths only
//!   at the next tick, so they are not);
//!
//! and after every settling pause (30 ms of ticks without forced lost races):
//! - the shared record's queued total equals the streams really waiting, and its in-flight
//!   total the streams really holding a slot unless a worker holds spare slots (whose local
//!   admissions and releases are written with its next update); the record is decoded from the
//!   store (an observer pipeline's tick would sweep it, taking part in what it observes); the
//!   gauges of the worker that wrote the record last equal the record (each worker's gauges are
//!   what it saw at its last write);
//! - unless in dry run: no more than the limit hold slots, beyond fail-open admissions; and no
//!   request waits beside a free slot, not even one another worker leased and does not use
//!   (those come back within two ticks of anyone waiting).
//!
//! Every case runs twice: with a limit of 3, where no worker leases (spare slots are only taken
//! below half the limit, and then half the room), and with a limit of 24, where workers lease
//! spare slots while load is low and must give them back as it rises.
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

#[path = "../common/mod.rs"]
mod common;

mod checks;
mod coverage;
mod operations;
mod world;

use ballast_policy::duration::{Nanos, MILLISECOND, SECOND};
use ballast_policy::metrics::Metric;
use coverage::Coverage;
use world::{Model, Phase};

const WORKERS: usize = 4;
/// The small limit (every admission and release one update of the record).
const LIMIT: usize = 3;
/// A limit large enough for the workers to lease spare slots below half of it, and small
/// enough for the model's arrivals to fill it.
const LEASED_LIMIT: usize = 24;
const QUEUE_SIZE: usize = 4;
const MAX_WAIT: Nanos = 40 * MILLISECOND;
const STEPS: usize = 1_500;
/// Steps of one ebb or one flow of load with the large limit.
const FLOW_STEPS: usize = 150;
const CASES: u64 = 60;
/// The host's tick period for a policy set with a limiter.
const TICK: Nanos = 10 * MILLISECOND;
const SCOPE: &str = "model";
const START: Nanos = 1_700_000_000 * SECOND;

impl Model {
    fn run(mut self) -> Coverage {
        for step in 0..STEPS {
            self.step = step;
            // With the large limit, load ebbs and flows (arrivals outnumber answers in one
            // stretch of steps, and come in bursts; answers outnumber arrivals in the next), so
            // that workers lease spare slots while it is low and must give them back as it
            // rises, some after others already wait.
            let (arrivals, burst) = match (self.limit, step / FLOW_STEPS % 2) {
                (LIMIT, _) => (4, 1),
                (_, 0) => (2, 1),
                _ => (6, 8),
            };
            match self.rng.below(10) {
                op if op < arrivals => {
                    for _ in 0..=self.rng.below(burst) {
                        self.arrive();
                    }
                }
                op if op < 6 => self.answer(),
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
                self.check_reservations();
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
        for limit in [LIMIT, LEASED_LIMIT] {
            seen.add(Model::new(seed, dry_run, measure, order, limit).run());
        }
    }
    seen.assert_complete();
}
