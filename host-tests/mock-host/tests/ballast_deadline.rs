//! Deadline propagation by the real plugin in the harness: the budget forwarded shrinks by the
//! virtual time spent here (queue wait included), a spent deadline is answered without the
//! upstream (504, or trailers-only DEADLINE_EXCEEDED for gRPC), hints from untrusted peers are
//! removed, the router's gRPC timeout becomes DEADLINE_EXCEEDED, and a dry run changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use ballast_mock_host::{Action, Host, StreamId};
use common::limiter::{open, respond, started, GET, TRUSTED};
use std::time::{Duration, UNIX_EPOCH};

fn tagged(metric: &str) -> String {
    format!("ballast_{metric}.policy_set=.=api;.;")
}

fn counter(host: &Host, metric: &str) -> u64 {
    host.counter(&tagged(metric))
        .unwrap_or_else(|| panic!("{metric} not defined"))
}

/// A host whose one policy set has `deadline` (and, when given, a fixed limit of 1 with a queue).
fn deadline_host(workers: usize, deadline: &str, queue: bool, dry_run: bool) -> Host {
    let concurrency = if queue {
        r#", "concurrency": {"algorithm": "fixed", "initial_limit": 1,
             "queue": {"size": 10, "max_wait": "5s"}}"#
    } else {
        ""
    };
    started(
        workers,
        &format!(
            r#"{{"dry_run": {dry_run}, {TRUSTED}, "policy_sets": {{"api": {{"deadline": {deadline}{concurrency}}}}},
                "default_policy_set": "api"}}"#
        ),
    )
}

fn with<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut headers = GET.to_vec();
    headers.extend_from_slice(extra);
    headers
}

fn header(host: &mut Host, id: StreamId, name: &str) -> Option<String> {
    host.stream(id).unwrap().request_header(name)
}

fn now_ms(host: &Host) -> u64 {
    u64::try_from(host.now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

#[test]
fn the_budget_forwarded_is_the_deadline_less_the_offset() {
    let mut host = deadline_host(1, r#"{"offset": "2ms"}"#, false, false);
    let start = now_ms(&host);
    let (id, action) = open(&mut host, 0, &with(&[("grpc-timeout", "250m")]));
    assert_eq!(action, Action::Continue);
    assert_eq!(
        header(&mut host, id, "x-envoy-upstream-rq-timeout-ms").as_deref(),
        Some("248"),
        "the local router enforces the budget"
    );
    assert_eq!(
        header(&mut host, id, "x-envoy-expected-rq-timeout-ms").as_deref(),
        Some("248")
    );
    assert_eq!(
        header(&mut host, id, "grpc-timeout").as_deref(),
        Some("248000u"),
        "a request that carried grpc-timeout gets the budget left in it"
    );
    assert_eq!(
        header(&mut host, id, "x-ballast-deadline"),
        Some((start + 248).to_string()),
        "the absolute deadline, for hops behind an application that copies headers"
    );
    respond(&mut host, id);
    assert_eq!(counter(&host, "deadline_seen_grpc_timeout"), 1);
    let budgets = host
        .histogram(&tagged("deadline_forwarded_budget_ms"))
        .unwrap();
    assert_eq!(budgets.samples, vec![248]);
}

#[test]
fn time_spent_in_the_queue_comes_off_the_budget() {
    let mut host = deadline_host(1, "{}", true, false);
    let (holder, _) = open(&mut host, 0, &GET);
    let start = now_ms(&host);
    let (waiter, action) = open(&mut host, 0, &with(&[("grpc-timeout", "100m")]));
    assert_eq!(action, Action::Pause, "the only slot is held");
    assert_eq!(
        header(&mut host, waiter, "x-envoy-upstream-rq-timeout-ms"),
        None,
        "nothing is written while it waits"
    );
    host.advance(Duration::from_millis(30)).unwrap();
    respond(&mut host, holder);
    assert!(
        !host.stream(waiter).unwrap().request_paused(),
        "the freed slot went to the waiter"
    );
    // 100 ms - 30 ms waited - 1 ms offset (the default).
    assert_eq!(
        header(&mut host, waiter, "x-envoy-upstream-rq-timeout-ms").as_deref(),
        Some("69")
    );
    assert_eq!(
        header(&mut host, waiter, "x-ballast-deadline"),
        Some((start + 99).to_string()),
        "the absolute deadline does not move with the wait"
    );
    respond(&mut host, waiter);
}

#[test]
fn a_waiter_resumed_by_a_tick_gets_the_budget_left_at_that_tick() {
    // Two workers share the limit of 1: a slot freed on worker 1 reaches worker 0's waiter on
    // its next tick, not through the release.
    let mut host = deadline_host(2, "{}", true, false);
    let (holder, _) = open(&mut host, 1, &GET);
    let (waiter, action) = open(
        &mut host,
        0,
        &with(&[("x-envoy-expected-rq-timeout-ms", "500")]),
    );
    assert_eq!(action, Action::Pause);
    host.advance(Duration::from_millis(200)).unwrap();
    respond(&mut host, holder);
    host.advance(Duration::from_millis(20)).unwrap(); // worker 0's next ticks
    assert!(!host.stream(waiter).unwrap().request_paused());
    let budget: u64 = header(&mut host, waiter, "x-envoy-upstream-rq-timeout-ms")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (277..=299).contains(&budget),
        "500 ms - 200..222 ms waited - 1 ms: {budget}"
    );
    assert_eq!(
        header(&mut host, waiter, "grpc-timeout"),
        None,
        "not gRPC and it carried none"
    );
    respond(&mut host, waiter);
}

#[test]
fn a_spent_deadline_is_answered_without_the_upstream() {
    let mut host = deadline_host(1, r#"{"min_useful": "10ms"}"#, false, false);
    let (id, action) = open(&mut host, 0, &with(&[("grpc-timeout", "8m")]));
    assert_eq!(action, Action::Closed, "answered locally: never forwarded");
    let reply = host.stream(id).unwrap().local_response().unwrap();
    assert_eq!(reply.status_code, 504);
    assert!(reply
        .headers
        .contains(&("x-ballast-rejected".to_string(), "deadline".to_string())));
    assert!(String::from_utf8_lossy(&reply.body).contains("deadline"));
    let past = (now_ms(&host) - 50).to_string();
    let (id, _) = open(
        &mut host,
        0,
        &with(&[("x-ballast-deadline", past.as_str())]),
    );
    assert_eq!(
        host.stream(id)
            .unwrap()
            .local_response()
            .unwrap()
            .status_code,
        504
    );
    assert_eq!(counter(&host, "deadline_expired_on_arrival"), 2);
    assert_eq!(counter(&host, "deadline_seen_absolute"), 1);
}

#[test]
fn grpc_gets_a_trailers_only_deadline_exceeded() {
    let mut host = deadline_host(1, "{}", false, false);
    let (id, _) = open(
        &mut host,
        0,
        &with(&[("content-type", "application/grpc"), ("grpc-timeout", "0m")]),
    );
    let reply = host.stream(id).unwrap().local_response().unwrap();
    assert_eq!(reply.grpc_status, Some(4), "DEADLINE_EXCEEDED");
    assert!(reply
        .headers
        .contains(&("x-ballast-rejected".to_string(), "deadline".to_string())));
}

#[test]
fn a_waiter_whose_deadline_passes_leaves_the_queue_with_deadline_exceeded() {
    let mut host = deadline_host(1, "{}", true, false);
    let (holder, _) = open(&mut host, 0, &GET);
    let (waiter, _) = open(
        &mut host,
        0,
        &with(&[
            ("content-type", "application/grpc+proto"),
            ("grpc-timeout", "40m"),
        ]),
    );
    host.advance(Duration::from_millis(60)).unwrap();
    let reply = host.stream(waiter).unwrap().local_response().unwrap();
    assert_eq!(reply.grpc_status, Some(4));
    assert_eq!(counter(&host, "deadline_expired_queued"), 1);
    respond(&mut host, holder);
}

#[test]
fn hints_from_an_untrusted_peer_are_removed_not_forwarded() {
    let mut host = deadline_host(1, "{}", false, false);
    let mut stream = host.http_stream(0).unwrap();
    stream
        .set_property("source.address", "192.0.2.7:5555")
        .unwrap();
    let action = stream
        .request_headers(
            &with(&[("grpc-timeout", "5m"), ("x-ballast-deadline", "1")]),
            true,
        )
        .unwrap();
    assert_eq!(action, Action::Continue, "not believed, so not expired");
    assert_eq!(stream.request_header("grpc-timeout"), None);
    assert_eq!(stream.request_header("x-ballast-deadline"), None);
    assert_eq!(counter(&host, "deadline_untrusted_ignored"), 1);
    assert_eq!(counter(&host, "deadline_expired_on_arrival"), 0);
}

#[test]
fn the_routers_timeout_of_a_grpc_request_reaches_the_client_as_deadline_exceeded() {
    let mut host = deadline_host(1, "{}", false, false);
    let (id, _) = open(
        &mut host,
        0,
        &with(&[
            ("content-type", "application/grpc"),
            ("grpc-timeout", "100m"),
        ]),
    );
    host.advance(Duration::from_millis(100)).unwrap();
    // What Envoy's router sends when x-envoy-upstream-rq-timeout-ms runs out (its 504 mapped
    // to UNAVAILABLE in a trailers-only response).
    let mut stream = host.stream(id).unwrap();
    stream
        .response_headers(
            &[
                (":status", "200"),
                ("content-type", "application/grpc"),
                ("grpc-status", "14"),
                ("grpc-message", "upstream request timeout"),
            ],
            true,
        )
        .unwrap();
    assert_eq!(stream.response_header("grpc-status").as_deref(), Some("4"));
    stream.finish().unwrap();
    // An UNAVAILABLE well before the deadline is the upstream's own answer: kept.
    let (id, _) = open(
        &mut host,
        0,
        &with(&[
            ("content-type", "application/grpc"),
            ("grpc-timeout", "10S"),
        ]),
    );
    let mut stream = host.stream(id).unwrap();
    stream
        .response_headers(&[(":status", "200"), ("grpc-status", "14")], true)
        .unwrap();
    assert_eq!(stream.response_header("grpc-status").as_deref(), Some("14"));
    stream.finish().unwrap();
    assert_eq!(counter(&host, "deadline_upstream_timeouts"), 1);
}

#[test]
fn a_dry_run_counts_and_changes_nothing() {
    let mut host = deadline_host(1, r#"{"default": "5s"}"#, false, true);
    let (spent, action) = open(&mut host, 0, &with(&[("grpc-timeout", "0m")]));
    assert_eq!(action, Action::Continue, "a dry run answers nothing");
    assert!(host.stream(spent).unwrap().local_response().is_none());
    assert_eq!(
        header(&mut host, spent, "grpc-timeout").as_deref(),
        Some("0m"),
        "as sent"
    );
    let (plain, _) = open(&mut host, 0, &GET);
    assert_eq!(
        header(&mut host, plain, "x-envoy-upstream-rq-timeout-ms"),
        None
    );
    assert_eq!(counter(&host, "deadline_expired_on_arrival"), 1);
    assert_eq!(counter(&host, "deadline_defaulted"), 1);
}

#[test]
fn time_before_ballast_in_this_proxy_counts_from_request_time() {
    // Envoy's `request.time` is when the proxy received the request; filters before ballast
    // (here: 30 ms of virtual time before the headers reach the plugin) spend the caller's time.
    let mut host = deadline_host(1, "{}", false, false);
    let stream = host.http_stream(0).unwrap();
    let id = stream.id();
    host.advance(Duration::from_millis(30)).unwrap();
    let mut stream = host.stream(id).unwrap();
    stream
        .request_headers(&with(&[("grpc-timeout", "100m")]), true)
        .unwrap();
    assert_eq!(
        stream
            .request_header("x-envoy-upstream-rq-timeout-ms")
            .as_deref(),
        Some("69"),
        "100 ms - 30 ms before ballast - 1 ms offset"
    );
}
