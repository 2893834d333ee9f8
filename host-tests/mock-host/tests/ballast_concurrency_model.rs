//! The concurrency limiter against a model of the truth, under random operations: the real
//! plugin on 3 workers, driven by a seeded sequence of arrivals (some with deadlines, some
//! already expired), answers, resets, lost compare-and-swap races, time steps, and worker
//! crashes with reloads.
//!
//! Why: the per-worker bookkeeping (each VM's held count and queue length, hand-offs to
//! waiters, repairs after lost races, reclaiming a crashed VM's slots) has many paths whose
//! interleavings unit tests only sample. After every settling pause the gauges must equal what
//! the streams really are (holding a slot, or paused in a queue); without contention no more
//! than the limit may hold slots, and no request may wait while a slot is free; at the end
//! everything is back to zero. Each case is reproducible from its seed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use ballast_mock_host::{Host, StreamId};
use common::limiter::{counter, gauge, started, GET, TRUSTED};
use common::Rng;
use std::time::Duration;

const WORKERS: usize = 3;
const LIMIT: u64 = 3;
const STEPS: usize = 1_500;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Truth {
    Holding,
    Waiting,
    Done,
}

fn truth(host: &mut Host, id: StreamId) -> Truth {
    let Ok(stream) = host.stream(id) else {
        return Truth::Done; // its VM crashed
    };
    if stream.finished() || stream.ended() || stream.local_response().is_some() {
        Truth::Done
    } else if stream.request_paused() {
        Truth::Waiting
    } else {
        Truth::Holding
    }
}

fn streams_in(host: &mut Host, streams: &[StreamId], state: Truth) -> Vec<StreamId> {
    streams
        .iter()
        .copied()
        .filter(|id| truth(host, *id) == state)
        .collect()
}

fn run(seed: u64, dry_run: bool, measure: &str, order: &str) {
    let mut rng = Rng(seed | 1);
    let config = format!(
        r#"{{"dry_run": {dry_run}, {TRUSTED}, "policy_sets": {{"api": {{"concurrency": {{
            "algorithm": "fixed", "initial_limit": {LIMIT}, "measure": "{measure}",
            "queue": {{"size": 4, "max_wait": "40ms", "order": "{order}"}}}}}}}},
            "default_policy_set": "api"}}"#
    );
    let mut host = started(WORKERS, &config);
    let mut streams: Vec<StreamId> = Vec::new();
    for step in 0..STEPS {
        match rng.below(10) {
            0..=3 => {
                let worker = rng.below(WORKERS as u64) as usize;
                let mut headers = GET.to_vec();
                match rng.below(4) {
                    0 => headers.push(("grpc-timeout", *rng.pick(&["5m", "20m", "0m", "100m"]))),
                    1 => headers.push(("x-envoy-expected-rq-timeout-ms", *rng.pick(&["3", "25"]))),
                    _ => {}
                }
                let mut stream = host.http_stream(worker).unwrap();
                stream.request_headers(&headers, true).unwrap();
                streams.push(stream.id());
            }
            4..=5 => {
                let holding = streams_in(&mut host, &streams, Truth::Holding);
                if !holding.is_empty() {
                    let mut stream = host.stream(*rng.pick(&holding)).unwrap();
                    if rng.below(2) == 0 {
                        stream
                            .response_headers(&[(":status", "200")], true)
                            .unwrap();
                    } else {
                        stream
                            .response_headers(&[(":status", "200")], false)
                            .unwrap();
                        stream.response_body(b"x", true).unwrap();
                    }
                    stream.finish().unwrap();
                }
            }
            6 => {
                let mut live = streams_in(&mut host, &streams, Truth::Holding);
                live.extend(streams_in(&mut host, &streams, Truth::Waiting));
                if !live.is_empty() {
                    host.stream(*rng.pick(&live)).unwrap().finish().unwrap(); // reset
                }
            }
            7 if rng.below(40) == 0 => {
                let worker = rng.below(WORKERS as u64) as usize;
                host.crash_worker(worker).unwrap();
                host.advance(Duration::from_millis(rng.below(3_000)))
                    .unwrap();
                assert!(host.reload_worker(worker).unwrap().configured);
                host.advance(Duration::from_secs(6)).unwrap(); // past the holder timeout
            }
            7 => host.advance(Duration::from_millis(rng.below(25))).unwrap(),
            8 if rng.below(4) == 0 => host.fail_next_cas(rng.below(10) as u32),
            8 => {}
            _ => {
                host.fail_next_cas(0);
                host.advance(Duration::from_millis(30)).unwrap();
                let holding = streams_in(&mut host, &streams, Truth::Holding).len() as u64;
                let waiting = streams_in(&mut host, &streams, Truth::Waiting).len() as u64;
                assert_eq!(
                    (gauge(&host, "in_flight"), gauge(&host, "queued")),
                    (holding, waiting),
                    "seed {seed} step {step}: gauges (in flight, queued) against the streams"
                );
                if !dry_run && counter(&host, "contended") == 0 {
                    assert!(
                        holding <= LIMIT,
                        "seed {seed} step {step}: {holding} over the limit"
                    );
                    assert!(
                        holding == LIMIT || waiting == 0,
                        "seed {seed} step {step}: {waiting} wait beside a free slot"
                    );
                }
            }
        }
    }
    host.fail_next_cas(0);
    let mut live = streams_in(&mut host, &streams, Truth::Holding);
    live.extend(streams_in(&mut host, &streams, Truth::Waiting));
    for id in live {
        host.stream(id).unwrap().finish().unwrap();
    }
    host.advance(Duration::from_secs(2)).unwrap();
    assert_eq!(
        (gauge(&host, "in_flight"), gauge(&host, "queued")),
        (0, 0),
        "seed {seed}: everything came back"
    );
}

#[test]
fn bookkeeping_matches_the_streams_under_random_operations() {
    for case in 1..=60u64 {
        let dry_run = case % 7 == 0;
        let measure = if case % 2 == 0 {
            "headers"
        } else {
            "end_of_stream"
        };
        let order = if case % 3 == 0 { "lifo" } else { "fifo" };
        run(
            case.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            dry_run,
            measure,
            order,
        );
    }
}
