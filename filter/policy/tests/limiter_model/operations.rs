//! The operations the seeded sequence draws from: arrivals (some with deadlines, some already
//! expired), answers, resets, time steps with each worker's 10 ms ticks, and crashes followed by
//! a reload, with the callbacks of a stream's life they go through and the request and response
//! views they hand the pipeline. The assertions on an operation's own immediate outcome (an
//! arrival's verdict, a tick's answers) stay with it; they are apart from the world so that each
//! reads as what the host does, and from `checks`, which hold the streams against the truth.

use crate::world::{Model, Phase, Stream};
use crate::{MAX_WAIT, QUEUE_SIZE, TICK, WORKERS};
use ballast_policy::concurrency::limiter::StreamId;
use ballast_policy::duration::{Nanos, MILLISECOND, SECOND};
use ballast_policy::metrics::Metric;
use ballast_policy::pipeline::{ResponseView, Verdict};
use ballast_policy::routing::RequestView;

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
    fn source_address(&mut self) -> Option<&str> {
        Some("10.1.2.3:40000") // inside trusted_peers: its deadline hints are believed
    }
}

/// Response headers: just the status.
struct Response(u16);

impl ResponseView for Response {
    fn header(&mut self, name: &str) -> Option<String> {
        (name == ":status").then(|| self.0.to_string())
    }
}

impl Model {
    /// The response headers of `stream` arrive (a local reply's too, which the host passes to
    /// the filter like any response).
    pub(crate) fn response_headers(
        &mut self,
        stream: &mut Stream,
        status: u16,
        end_of_stream: bool,
    ) {
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

    pub(crate) fn response_end(&mut self, stream: &mut Stream) {
        let now = self.now;
        let resumed = self.on_worker(stream.worker, |m, w| {
            w.pipeline
                .on_response_end(&m.store, &mut stream.exchange, now)
        });
        self.resume(stream.worker, resumed, false);
    }

    /// The stream is gone (every stream ends with exactly one of these).
    pub(crate) fn done(&mut self, mut stream: Stream) {
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

    pub(crate) fn arrive(&mut self) {
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
    pub(crate) fn answer(&mut self) {
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
    pub(crate) fn reset(&mut self) {
        if self.streams.is_empty() {
            return;
        }
        let at = self.rng.index(self.streams.len());
        let stream = self.streams.remove(at);
        self.done(stream);
    }

    /// Advances time by `by`, ticking each live worker every 10 ms on its own timer.
    pub(crate) fn advance(&mut self, by: Nanos) {
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
    pub(crate) fn crash(&mut self) {
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
}
