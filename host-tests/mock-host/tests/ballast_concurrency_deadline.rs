//! The concurrency limiter's wait queue and the caller's deadline, with the real plugin in the
//! harness: `grpc-timeout` and `x-envoy-expected-rq-timeout-ms` bound a waiter's stay, less the
//! learned no-load RTT; a request that cannot make it is answered at once (504 /
//! DEADLINE_EXCEEDED) and a freed slot never goes to a waiter already past its time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use ballast_mock_host::{Action, Host, StreamId};
use common::limiter::{counter, gauge, host, open, respond, started, GET, TRUSTED};
use std::time::Duration;

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
    host.advance(Duration::from_millis(10)).unwrap();
    assert_eq!(gauge(&host, "queued"), 3);

    host.advance(Duration::from_millis(10)).unwrap();
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

/// A gradient2 limiter of 4 that learned a no-load RTT of about 50 ms (`measure` as given).
fn host_that_learned_50ms(measure: &str) -> Host {
    let config = format!(
        r#"{{{TRUSTED}, "policy_sets": {{"api": {{"concurrency": {{
        "algorithm": "gradient2", "initial_limit": 4, "min_limit": 4, "max_limit": 4,
        "measure": "{measure}", "window": "100ms", "min_samples": 5,
        "queue": {{"size": 10, "max_wait": "1s"}}}}}}}}, "default_policy_set": "api"}}"#
    );
    let mut host = started(1, &config);
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
    host
}

#[test]
fn to_the_end_of_the_stream_the_no_load_rtt_is_not_subtracted() {
    let mut host = host_that_learned_50ms("end_of_stream");
    for _ in 0..4 {
        open(&mut host, 0, &GET);
    }
    let mut headers = GET.to_vec();
    headers.push(("grpc-timeout", "40m"));
    let (waits, action) = open(&mut host, 0, &headers);
    assert_eq!(
        action,
        Action::Pause,
        "a whole-stream RTT says nothing of when headers come: it waits"
    );
    host.advance(Duration::from_millis(50)).unwrap();
    assert_eq!(
        host.stream(waits)
            .unwrap()
            .local_response()
            .map(|r| r.status_code),
        Some(504),
        "and leaves at its deadline"
    );
}

#[test]
fn a_deadline_shorter_than_the_no_load_rtt_is_answered_at_once() {
    let mut host = host_that_learned_50ms("headers");
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
fn a_freed_slot_skips_a_waiter_already_past_its_deadline() {
    let mut host = host(1, r#"{"size": 10, "max_wait": "1s"}"#);
    let held: Vec<StreamId> = (0..4).map(|_| open(&mut host, 0, &GET).0).collect();
    let mut short = GET.to_vec();
    short.push(("grpc-timeout", "3m"));
    let (too_late, _) = open(&mut host, 0, &short);
    let (patient, _) = open(&mut host, 0, &GET);
    host.advance(Duration::from_millis(6)).unwrap(); // before the first tick
    respond(&mut host, held[0]);
    assert!(
        !host.stream(patient).unwrap().request_paused(),
        "the slot went to the waiter that can still be answered"
    );
    assert!(host.stream(too_late).unwrap().request_paused());
    host.advance(Duration::from_millis(5)).unwrap();
    assert_eq!(
        host.stream(too_late)
            .unwrap()
            .local_response()
            .map(|r| r.status_code),
        Some(504)
    );
    assert_eq!(gauge(&host, "in_flight"), 4);
}

#[test]
fn a_freed_slot_with_only_late_waiters_is_simply_freed() {
    let mut host = host(1, r#"{"size": 10, "max_wait": "1s"}"#);
    let held: Vec<StreamId> = (0..4).map(|_| open(&mut host, 0, &GET).0).collect();
    let mut short = GET.to_vec();
    short.push(("grpc-timeout", "3m"));
    let late: Vec<StreamId> = (0..2).map(|_| open(&mut host, 0, &short).0).collect();
    host.advance(Duration::from_millis(6)).unwrap(); // past their time, before the tick
    respond(&mut host, held[0]);
    assert_eq!(
        gauge(&host, "in_flight"),
        3,
        "the slot is free, nobody took it"
    );
    host.advance(Duration::from_millis(5)).unwrap();
    for id in late {
        assert_eq!(
            host.stream(id)
                .unwrap()
                .local_response()
                .map(|r| r.status_code),
            Some(504)
        );
    }
    assert_eq!(open(&mut host, 0, &GET).1, Action::Continue);
}
