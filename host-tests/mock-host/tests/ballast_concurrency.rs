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
