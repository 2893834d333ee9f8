//! The concurrency limiter of the real plugin, in the harness: one limit across workers,
//! requests over it wait (paused) and are resumed when a slot frees — on the same worker at
//! once, on another worker at the next tick — or rejected when the queue is full or their wait
//! runs out; gRPC requests are rejected with grpc-status 14. The slots of a crashed worker come
//! back, updates lost to contention are repaired, dry run only counts. (Deadlines in the queue:
//! `ballast_concurrency_deadline.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use ballast_mock_host::{Action, Host, StreamId};
use common::limiter::{counter, gauge, host, open, respond, started, GET};
use std::time::Duration;

#[test]
fn limit_is_shared_by_workers_and_excess_waits() {
    let mut host = host(2, r#"{"size": 10, "max_wait": "1s"}"#);
    let mut admitted = Vec::new();
    for i in 0..4 {
        let (id, action) = open(&mut host, i % 2, &GET);
        assert_eq!(action, Action::Continue, "request {i} fits the limit of 4");
        admitted.push(id);
    }
    let (waiting_same, action) = open(&mut host, 0, &GET);
    assert_eq!(action, Action::Pause, "the fifth waits, whichever worker");
    let (waiting_other, action) = open(&mut host, 1, &GET);
    assert_eq!(action, Action::Pause);
    assert_eq!(gauge(&host, "in_flight"), 4);
    // Each worker writes its queue length into the shared record at its next tick.
    host.advance(Duration::from_millis(10)).unwrap();
    assert_eq!(
        gauge(&host, "queued"),
        2,
        "the gauge sums both workers' queues"
    );

    // A release on worker 0 hands its slot straight to worker 0's waiter.
    respond(&mut host, admitted[0]);
    assert!(
        !host.stream(waiting_same).unwrap().request_paused(),
        "resumed at once"
    );
    assert!(host.stream(waiting_other).unwrap().request_paused());

    // A release on worker 0 with no local waiter frees the slot; worker 1 admits its waiter
    // at its next tick.
    respond(&mut host, admitted[2]);
    assert!(host.stream(waiting_other).unwrap().request_paused());
    host.advance(Duration::from_millis(15)).unwrap();
    assert!(
        !host.stream(waiting_other).unwrap().request_paused(),
        "resumed from on_tick"
    );
    assert_eq!(gauge(&host, "queued"), 0);
    assert_eq!(gauge(&host, "in_flight"), 4);
    for id in [admitted[1], admitted[3], waiting_same, waiting_other] {
        respond(&mut host, id);
    }
    assert_eq!(gauge(&host, "in_flight"), 0, "every slot came back");
    assert_eq!(counter(&host, "rejected"), 0);
}

#[test]
fn full_queue_rejects_with_status_and_headers() {
    let mut host = host(1, r#"{"size": 1, "max_wait": "1s"}"#);
    for _ in 0..4 {
        open(&mut host, 0, &GET);
    }
    let (_, action) = open(&mut host, 0, &GET);
    assert_eq!(action, Action::Pause, "queued");
    let (id, _) = open(&mut host, 0, &GET);
    let local = host.stream(id).unwrap().local_response().expect("rejected");
    assert_eq!(local.status_code, 503);
    assert!(
        local
            .headers
            .contains(&("x-ballast-rejected".into(), "concurrency".into())),
        "{:?}",
        local.headers
    );
    assert!(local.headers.contains(&("retry-after".into(), "1".into())));
    assert_eq!(counter(&host, "rejected"), 1);
}

#[test]
fn grpc_rejection_is_trailers_only_unavailable() {
    let mut host = host(1, r#"{"size": 0}"#);
    for _ in 0..4 {
        open(&mut host, 0, &GET);
    }
    let grpc = [
        (":method", "POST"),
        (":path", "/svc/M"),
        (":authority", "x"),
        ("content-type", "application/grpc"),
    ];
    let (id, _) = open(&mut host, 0, &grpc);
    let local = host.stream(id).unwrap().local_response().expect("rejected");
    assert_eq!(local.status_code, 200, "gRPC errors travel in grpc-status");
    assert_eq!(local.grpc_status, Some(14), "UNAVAILABLE");
}

#[test]
fn wait_runs_out_and_cancelled_waiters_leave() {
    let mut host = host(1, r#"{"size": 10, "max_wait": "30ms"}"#);
    let held: Vec<StreamId> = (0..4).map(|_| open(&mut host, 0, &GET).0).collect();
    let (timed_out, _) = open(&mut host, 0, &GET);
    let (cancelled, _) = open(&mut host, 0, &GET);
    host.stream(cancelled).unwrap().finish().unwrap();
    host.advance(Duration::from_millis(10)).unwrap();
    assert_eq!(
        gauge(&host, "queued"),
        1,
        "a cancelled waiter leaves the queue"
    );
    host.advance(Duration::from_millis(40)).unwrap();
    let local = host
        .stream(timed_out)
        .unwrap()
        .local_response()
        .expect("wait ran out");
    assert_eq!(local.status_code, 503);
    assert_eq!(counter(&host, "queue_timeouts"), 1);
    assert_eq!(gauge(&host, "queued"), 0);
    for id in held {
        respond(&mut host, id);
    }
    assert_eq!(gauge(&host, "in_flight"), 0);
}

#[test]
fn reset_streams_release_their_slot() {
    let mut host = host(1, r#"{"size": 0}"#);
    for _ in 0..4 {
        let (id, _) = open(&mut host, 0, &GET);
        host.stream(id).unwrap().finish().unwrap(); // reset before any response
    }
    assert_eq!(gauge(&host, "in_flight"), 0);
    let (_, action) = open(&mut host, 0, &GET);
    assert_eq!(action, Action::Continue);
}

#[test]
fn cancelled_waiters_give_their_retry_reservation_back() {
    // Budget: ratio 0, floor 1/s × 10 s = 10 retries; each GET reserves up to 3.
    let config = r#"{"policy_sets": {"api": {
        "concurrency": {"algorithm": "fixed", "initial_limit": 1, "queue": {"size": 10, "max_wait": "10s"}},
        "retry_budget": {"ratio": 0, "min_retries_per_second": 1, "ttl": "10s"},
        "retry": {"max_retries_per_request": 3}}},
        "default_policy_set": "api"}"#;
    let mut host = started(1, config);
    let reserved = |host: &mut Host, id: StreamId| -> u32 {
        host.stream(id)
            .unwrap()
            .request_header("x-envoy-max-retries")
            .unwrap()
            .parse()
            .unwrap()
    };
    let (held, action) = open(&mut host, 0, &GET);
    assert_eq!((action, reserved(&mut host, held)), (Action::Continue, 3));
    let (waiting, action) = open(&mut host, 0, &GET);
    assert_eq!((action, reserved(&mut host, waiting)), (Action::Pause, 3));
    host.stream(waiting).unwrap().finish().unwrap(); // the client gave up while queued
    let grants: Vec<u32> = (0..3)
        .map(|_| {
            let (id, _) = open(&mut host, 0, &GET);
            reserved(&mut host, id)
        })
        .collect();
    assert_eq!(
        grants,
        [3, 3, 1],
        "the cancelled waiter's 3 retries came back (else 3, 1, 0)"
    );
}

#[test]
fn slots_of_a_crashed_worker_come_back_and_its_replacement_shares_the_limit() {
    let mut host = host(2, r#"{"size": 10, "max_wait": "60s"}"#);
    let on_survivor = open(&mut host, 0, &GET).0;
    let on_doomed: Vec<StreamId> = (0..3).map(|_| open(&mut host, 1, &GET).0).collect();
    assert_eq!(gauge(&host, "in_flight"), 4);
    let (doomed_waiter, action) = open(&mut host, 1, &GET);
    assert_eq!(action, Action::Pause);

    // Live workers, idle for a long time with slots held, keep them.
    host.advance(Duration::from_secs(30)).unwrap();
    assert_eq!(counter(&host, "reclaimed"), 0);
    let (waiter, action) = open(&mut host, 0, &GET);
    assert_eq!(action, Action::Pause, "the limit of 4 is still taken");
    host.advance(Duration::from_millis(10)).unwrap();
    assert_eq!(gauge(&host, "queued"), 2);

    host.crash_worker(1).unwrap();
    host.advance(Duration::from_secs(3)).unwrap();
    assert!(
        host.stream(waiter).unwrap().request_paused(),
        "a worker quiet for 3 s is not yet presumed dead"
    );
    host.advance(Duration::from_secs(4)).unwrap();
    assert_eq!(
        counter(&host, "reclaimed"),
        3,
        "the crashed worker's 3 slots"
    );
    assert!(
        !host.stream(waiter).unwrap().request_paused(),
        "the waiter got a reclaimed slot"
    );
    assert_eq!(gauge(&host, "in_flight"), 2);
    assert_eq!(
        gauge(&host, "queued"),
        0,
        "the crashed worker's waiter left the gauge with it"
    );

    // Envoy's FAIL_RELOAD: a fresh VM on worker 1 shares the same limit.
    assert!(host.reload_worker(1).unwrap().configured);
    for old in on_doomed.iter().chain([&doomed_waiter]) {
        assert!(host.stream(*old).is_err(), "streams died with their VM");
    }
    let fresh: Vec<(StreamId, Action)> = (0..3).map(|_| open(&mut host, 1, &GET)).collect();
    assert_eq!(
        fresh.iter().map(|(_, a)| *a).collect::<Vec<_>>(),
        [Action::Continue, Action::Continue, Action::Pause],
        "2 of the 4 slots were free"
    );
    respond(&mut host, on_survivor);
    host.advance(Duration::from_millis(15)).unwrap();
    assert!(
        !host.stream(fresh[2].0).unwrap().request_paused(),
        "the fresh VM's waiter took the slot freed on worker 0"
    );
    assert_eq!((gauge(&host, "in_flight"), gauge(&host, "queued")), (4, 0));
}

#[test]
fn a_lone_worker_replaced_after_a_crash_gets_its_slots_back() {
    let mut host = host(1, r#"{"size": 0}"#);
    for _ in 0..4 {
        open(&mut host, 0, &GET);
    }
    host.crash_worker(0).unwrap();
    assert!(host.reload_worker(0).unwrap().configured);
    // The fresh VM has served nothing yet (no entry of its own) and still sweeps.
    host.advance(Duration::from_secs(10)).unwrap();
    assert_eq!(counter(&host, "reclaimed"), 4);
    assert_eq!(gauge(&host, "in_flight"), 0);
    assert_eq!(open(&mut host, 0, &GET).1, Action::Continue);
}

#[test]
fn an_arrival_removes_a_stopped_worker_it_finds_in_the_way() {
    let mut host = host(2, r#"{"size": 0}"#);
    let first = open(&mut host, 1, &GET).0;
    for _ in 0..3 {
        open(&mut host, 1, &GET);
    }
    host.advance(Duration::from_millis(500)).unwrap();
    respond(&mut host, first); // worker 1's last write: at 0.5 s
    open(&mut host, 1, &GET);
    host.crash_worker(1).unwrap();
    // Worker 0 has served nothing; it sweeps once a second (at 5 s the entry is only 4.5 s
    // old). At 5.6 s the arrival itself finds the entry over 5 s old and removes it.
    host.advance(Duration::from_millis(5_100)).unwrap();
    assert_eq!(
        counter(&host, "reclaimed"),
        0,
        "no sweep has removed it yet"
    );
    assert_eq!(open(&mut host, 0, &GET).1, Action::Continue);
    assert_eq!(counter(&host, "reclaimed"), 4);
}

#[test]
fn updates_lost_to_contention_fail_open_and_are_repaired_at_the_next_tick() {
    let mut host = host(1, r#"{"size": 10, "max_wait": "1s"}"#);
    // The plugin tries 8 times per update; 8 lost races make the update give up.
    host.fail_next_cas(8);
    let (contended, action) = open(&mut host, 0, &GET);
    assert_eq!(action, Action::Continue, "fail open");
    assert_eq!(counter(&host, "contended"), 1);
    host.advance(Duration::from_millis(10)).unwrap();
    assert_eq!(gauge(&host, "in_flight"), 1, "the next tick wrote the slot");
    let held: Vec<StreamId> = (0..3).map(|_| open(&mut host, 0, &GET).0).collect();
    assert_eq!(open(&mut host, 0, &GET).1, Action::Pause, "the slot counts");

    host.fail_next_cas(8);
    respond(&mut host, contended); // a release that could not be written
    assert_eq!(counter(&host, "contended"), 2);
    host.advance(Duration::from_millis(10)).unwrap();
    assert_eq!(
        gauge(&host, "in_flight"),
        4,
        "the repaired release freed a slot that the waiter took"
    );
    for id in held {
        respond(&mut host, id);
    }
    host.advance(Duration::from_millis(10)).unwrap();
    assert_eq!(
        gauge(&host, "in_flight"),
        1,
        "only the former waiter is left"
    );
}

#[test]
fn dry_run_counts_but_never_holds_a_request_back() {
    let config = r#"{"dry_run": true, "policy_sets": {"api": {"concurrency": {"algorithm": "fixed",
        "initial_limit": 2}}}, "default_policy_set": "api"}"#;
    let mut host = started(1, config);
    let streams: Vec<(StreamId, Action)> = (0..3).map(|_| open(&mut host, 0, &GET)).collect();
    assert!(streams.iter().all(|(_, a)| *a == Action::Continue));
    assert_eq!(
        counter(&host, "rejected"),
        1,
        "the third would have been rejected"
    );
    assert_eq!(gauge(&host, "in_flight"), 3, "and is counted as in flight");
    for (id, _) in streams {
        respond(&mut host, id);
    }
    assert_eq!(gauge(&host, "in_flight"), 0);
}
