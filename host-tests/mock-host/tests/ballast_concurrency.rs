//! The concurrency limiter of the real plugin, in the harness: one limit across workers,
//! requests over it wait (paused) and are resumed when a slot frees — on the same worker at
//! once, on another worker at the next tick — or rejected when the queue is full or their wait
//! runs out; gRPC requests are rejected with grpc-status 14.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use ballast_mock_host::{Action, Host, PluginModule, StreamId};
use std::time::Duration;

fn plugin() -> PluginModule {
    common::ballast_plugin()
}

fn host(workers: usize, queue: &str) -> Host {
    let config = format!(
        r#"{{"policy_sets": {{"api": {{"concurrency": {{"algorithm": "fixed", "initial_limit": 4, "queue": {queue}}}}}}},
            "default_policy_set": "api"}}"#
    );
    let mut host = Host::builder(&plugin())
        .workers(workers)
        .plugin_config(config)
        .build()
        .unwrap();
    assert!(host.start().unwrap().all_ok(), "{:?}", host.logs());
    host
}

const GET: [(&str, &str); 3] = [(":method", "GET"), (":path", "/a"), (":authority", "x")];

fn open(host: &mut Host, worker: usize, headers: &[(&str, &str)]) -> (StreamId, Action) {
    let mut stream = host.http_stream(worker).unwrap();
    let action = stream.request_headers(headers, true).unwrap();
    (stream.id(), action)
}

fn respond(host: &mut Host, id: StreamId) {
    let mut stream = host.stream(id).unwrap();
    stream
        .response_headers(&[(":status", "200")], true)
        .unwrap();
    stream.finish().unwrap();
}

fn gauge(host: &Host, name: &str) -> u64 {
    host.gauge(&format!("ballast_concurrency_{name}.policy_set=.=api;.;"))
        .unwrap()
}

fn counter(host: &Host, name: &str) -> u64 {
    host.counter(&format!("ballast_concurrency_{name}.policy_set=.=api;.;"))
        .unwrap()
}

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
    assert_eq!(gauge(&host, "queued"), 2);

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
    assert_eq!(
        gauge(&host, "queued"),
        1,
        "a cancelled waiter leaves the queue"
    );
    host.advance(Duration::from_millis(50)).unwrap();
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
    let mut host = Host::builder(&plugin())
        .workers(1)
        .plugin_config(config)
        .build()
        .unwrap();
    assert!(host.start().unwrap().all_ok());
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
fn a_waiter_leaves_when_its_callers_deadline_would_pass() {
    let mut host = host(1, r#"{"size": 10, "max_wait": "1s"}"#);
    let held: Vec<StreamId> = (0..4).map(|_| open(&mut host, 0, &GET).0).collect();
    let with_deadline = |header: (&'static str, &'static str)| {
        let mut headers = GET.to_vec();
        headers.push(header);
        headers
    };
    let (grpc_30ms, action) = open(&mut host, 0, &with_deadline(("grpc-timeout", "30m")));
    assert_eq!(action, Action::Pause, "30 ms left: worth waiting");
    let (envoy_60ms, _) = open(
        &mut host,
        0,
        &with_deadline(("x-envoy-expected-rq-timeout-ms", "60")),
    );
    let (malformed, _) = open(&mut host, 0, &with_deadline(("grpc-timeout", "soon")));
    let (expired, _) = open(&mut host, 0, &with_deadline(("grpc-timeout", "0m")));
    let answered_at_once = host.stream(expired).unwrap().local_response().unwrap();
    assert_eq!(answered_at_once.status_code, 504, "no time left: no wait");
    assert_eq!(gauge(&host, "queued"), 3);

    host.advance(Duration::from_millis(20)).unwrap();
    assert!(host.stream(grpc_30ms).unwrap().local_response().is_none());
    host.advance(Duration::from_millis(20)).unwrap();
    let local = host.stream(grpc_30ms).unwrap().local_response().unwrap();
    assert_eq!(local.status_code, 504, "the deadline, not max_wait (1 s)");
    assert!(local
        .headers
        .contains(&("x-ballast-rejected".into(), "deadline".into())));
    assert!(
        !local.headers.iter().any(|(name, _)| name == "retry-after"),
        "a caller past its deadline is not told to retry: {:?}",
        local.headers
    );
    assert!(host.stream(envoy_60ms).unwrap().local_response().is_none());
    host.advance(Duration::from_millis(30)).unwrap();
    assert_eq!(
        host.stream(envoy_60ms)
            .unwrap()
            .local_response()
            .map(|r| r.status_code),
        Some(504)
    );
    assert!(
        host.stream(malformed).unwrap().request_paused(),
        "a malformed grpc-timeout is no deadline: it still waits"
    );
    assert_eq!(counter(&host, "deadline_drops"), 3);
    assert_eq!(counter(&host, "queue_timeouts"), 0);
    assert_eq!(counter(&host, "rejected"), 3);

    respond(&mut host, held[0]);
    assert!(
        !host.stream(malformed).unwrap().request_paused(),
        "the remaining waiter gets the freed slot"
    );
    for id in held.into_iter().skip(1).chain([malformed]) {
        respond(&mut host, id);
    }
    assert_eq!(gauge(&host, "in_flight"), 0, "deadline drops held no slot");
}

#[test]
fn grpc_past_its_deadline_gets_deadline_exceeded() {
    let mut host = host(1, r#"{"size": 10, "max_wait": "1s"}"#);
    for _ in 0..4 {
        open(&mut host, 0, &GET);
    }
    let grpc = [
        (":method", "POST"),
        (":path", "/svc/M"),
        (":authority", "x"),
        ("content-type", "application/grpc"),
        ("grpc-timeout", "15m"),
    ];
    let (id, action) = open(&mut host, 0, &grpc);
    assert_eq!(action, Action::Pause);
    host.advance(Duration::from_millis(30)).unwrap();
    let local = host.stream(id).unwrap().local_response().expect("dropped");
    assert_eq!(local.grpc_status, Some(4), "DEADLINE_EXCEEDED");
}

#[test]
fn deadlines_can_be_ignored_by_configuration() {
    let mut host = host(
        1,
        r#"{"size": 10, "max_wait": "100ms", "respect_deadlines": false}"#,
    );
    for _ in 0..4 {
        open(&mut host, 0, &GET);
    }
    let mut headers = GET.to_vec();
    headers.push(("grpc-timeout", "10m"));
    let (id, action) = open(&mut host, 0, &headers);
    assert_eq!(action, Action::Pause);
    host.advance(Duration::from_millis(50)).unwrap();
    assert!(
        host.stream(id).unwrap().request_paused(),
        "waits past 10 ms"
    );
    host.advance(Duration::from_millis(70)).unwrap();
    let local = host
        .stream(id)
        .unwrap()
        .local_response()
        .expect("timed out");
    assert_eq!(local.status_code, 503, "the ordinary max_wait timeout");
    assert_eq!(counter(&host, "deadline_drops"), 0);
    assert_eq!(counter(&host, "queue_timeouts"), 1);
}

#[test]
fn a_deadline_shorter_than_the_no_load_rtt_is_answered_at_once() {
    let config = r#"{"policy_sets": {"api": {"concurrency": {
        "algorithm": "gradient2", "initial_limit": 4, "min_limit": 4, "max_limit": 4,
        "window": "100ms", "min_samples": 5, "queue": {"size": 10, "max_wait": "1s"}}}},
        "default_policy_set": "api"}"#;
    let mut host = Host::builder(&plugin())
        .workers(1)
        .plugin_config(config)
        .build()
        .unwrap();
    assert!(host.start().unwrap().all_ok());
    // Unloaded requests of 50 ms each teach the limiter a no-load RTT of about 50 ms.
    for _ in 0..12 {
        let (id, _) = open(&mut host, 0, &GET);
        host.advance(Duration::from_millis(50)).unwrap();
        respond(&mut host, id);
    }
    let learned_us = gauge(&host, "min_rtt_us");
    assert!(
        (40_000..=60_000).contains(&learned_us),
        "learned {learned_us} µs"
    );
    let held: Vec<StreamId> = (0..4).map(|_| open(&mut host, 0, &GET).0).collect();
    let mut headers = GET.to_vec();
    headers.push(("grpc-timeout", "40m"));
    let (too_short, _) = open(&mut host, 0, &headers);
    assert_eq!(
        host.stream(too_short)
            .unwrap()
            .local_response()
            .map(|r| r.status_code),
        Some(504),
        "40 ms left cannot cover a 50 ms service time: answered without waiting"
    );
    headers.pop();
    headers.push(("grpc-timeout", "200m"));
    let (can_wait, action) = open(&mut host, 0, &headers);
    assert_eq!(action, Action::Pause);
    host.advance(Duration::from_millis(130)).unwrap();
    assert!(host.stream(can_wait).unwrap().local_response().is_none());
    host.advance(Duration::from_millis(40)).unwrap();
    assert_eq!(
        host.stream(can_wait)
            .unwrap()
            .local_response()
            .map(|r| r.status_code),
        Some(504),
        "leaves by 200 ms − the no-load RTT, not at max_wait"
    );
    for id in held {
        respond(&mut host, id);
    }
    assert_eq!(counter(&host, "deadline_drops"), 2);
}

#[test]
fn slots_of_a_crashed_worker_come_back_and_its_replacement_shares_the_limit() {
    let mut host = host(2, r#"{"size": 10, "max_wait": "20s"}"#);
    let on_survivor = open(&mut host, 0, &GET).0;
    for _ in 0..3 {
        open(&mut host, 1, &GET); // never answered: worker 1 crashes holding them
    }
    assert_eq!(gauge(&host, "in_flight"), 4);

    // Live workers, idle for a long time with slots held, keep them.
    host.advance(Duration::from_secs(30)).unwrap();
    assert_eq!(counter(&host, "reclaimed"), 0);
    let (waiter, action) = open(&mut host, 0, &GET);
    assert_eq!(action, Action::Pause, "the limit of 4 is still taken");

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

    // Envoy's FAIL_RELOAD: a fresh VM on worker 1 shares the same limit.
    assert!(host.reload_worker(1).unwrap().configured);
    let fresh: Vec<Action> = (0..3).map(|_| open(&mut host, 1, &GET).1).collect();
    assert_eq!(
        fresh,
        [Action::Continue, Action::Continue, Action::Pause],
        "2 of the 4 slots were free"
    );
    respond(&mut host, on_survivor);
    host.advance(Duration::from_millis(15)).unwrap();
    assert_eq!(
        gauge(&host, "in_flight"),
        4,
        "the fresh VM's waiter took the freed slot"
    );
}
