//! Load shedding by the real plugin in the harness: the queue serves the most important waiter
//! first and displaces the least important for a more important arrival (answered at the next
//! tick), retries wait behind first attempts of their class, per-class rate limits answer 429
//! with `retry-after` (gRPC: trailers-only RESOURCE_EXHAUSTED) and hold across workers, a
//! spoofed priority from an untrusted peer gets the default class and is rewritten upstream,
//! and a dry run changes no response.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use ballast_mock_host::{Action, Host, StreamId};
use common::limiter::{open, respond, started, TRUSTED};
use std::time::Duration;

const PRIORITY: &str = r#""priority": {"classes": ["critical", "normal", "sheddable"],
    "default": "normal", "header": "x-priority"}"#;

fn host(workers: usize, set: &str, dry_run: bool) -> Host {
    started(
        workers,
        &format!(
            r#"{{{TRUSTED}, {PRIORITY}, "dry_run": {dry_run},
                "policy_sets": {{"api": {set}}}, "default_policy_set": "api"}}"#
        ),
    )
}

/// A fixed limit of 1 with a queue of 2, and shedding (admission level and throttle off, so
/// only the queue's order and displacement act).
fn queue_host() -> Host {
    host(
        1,
        r#"{"concurrency": {"algorithm": "fixed", "initial_limit": 1,
             "queue": {"size": 2, "max_wait": "10s"}},
            "shedding": {"admission": {"enabled": false}, "throttle": {"enabled": false}}}"#,
        false,
    )
}

fn request(class: &str, retry: bool) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        (":method", "GET".to_string()),
        (":path", "/a".to_string()),
        (":authority", "x".to_string()),
        ("x-priority", class.to_string()),
    ];
    if retry {
        headers.push(("x-envoy-attempt-count", "2".to_string()));
    }
    headers
}

fn send(host: &mut Host, class: &str, retry: bool) -> (StreamId, Action) {
    let headers = request(class, retry);
    let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    open(host, 0, &pairs)
}

fn class_counter(host: &Host, metric: &str, class: &str, reason: Option<&str>) -> u64 {
    let mut name = format!("ballast_{metric}.policy_set=.=api;.;class=.={class};.;");
    if let Some(reason) = reason {
        name.push_str(&format!("reason=.={reason};.;"));
    }
    host.counter(&name)
        .unwrap_or_else(|| panic!("{name} not defined: {:?}", host.metrics()))
}

fn rejected(host: &mut Host, id: StreamId) -> Option<(u32, String)> {
    let stream = host.stream(id).unwrap();
    let reply = stream.local_response()?;
    let reason = reply
        .headers
        .iter()
        .find(|(k, _)| k == "x-ballast-rejected")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    Some((reply.status_code, reason))
}

#[test]
fn the_queue_serves_the_most_important_first_and_displaces_the_least_important() {
    let mut host = queue_host();
    let (holder, action) = send(&mut host, "normal", false);
    assert_eq!(action, Action::Continue);
    let (low, _) = send(&mut host, "sheddable", false);
    let (retry, _) = send(&mut host, "critical", true);
    assert!(host.stream(low).unwrap().request_paused());
    // The queue is full (2): a critical first attempt displaces the sheddable waiter.
    let (first, action) = send(&mut host, "critical", false);
    assert_eq!(action, Action::Pause);
    assert_eq!(
        rejected(&mut host, low),
        None,
        "answered at the tick, not inside a callback"
    );
    host.advance(Duration::from_millis(10)).unwrap();
    assert_eq!(
        rejected(&mut host, low),
        Some((503, "displaced".to_string()))
    );
    assert_eq!(
        class_counter(&host, "class_shed", "sheddable", Some("displaced")),
        1
    );
    // A full queue does not take a waiter of equal or greater importance out.
    let (late, _) = send(&mut host, "sheddable", false);
    assert_eq!(
        rejected(&mut host, late),
        Some((503, "concurrency".to_string()))
    );
    assert_eq!(
        class_counter(&host, "class_shed", "sheddable", Some("concurrency")),
        1
    );
    // The slot goes to the critical first attempt, then to the critical retry.
    respond(&mut host, holder);
    assert!(!host.stream(first).unwrap().request_paused());
    assert!(host.stream(retry).unwrap().request_paused());
    respond(&mut host, first);
    assert!(!host.stream(retry).unwrap().request_paused());
    assert_eq!(class_counter(&host, "class_admitted", "critical", None), 2);
}

#[test]
fn a_class_rate_limit_answers_429_with_retry_after_and_holds_across_workers() {
    let mut host = host(
        2,
        r#"{"shedding": {"rate_limits": {"sheddable": {"per_second": 20, "burst": 1}}}}"#,
        false,
    );
    let mut admitted = 0;
    let mut limited = 0;
    // 200 requests a second, alternating workers, for 2 s: the shared limit lets 20/s through.
    for i in 0..400 {
        let headers = request("sheddable", false);
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (id, action) = open(&mut host, i % 2, &pairs);
        if action == Action::Continue {
            admitted += 1;
            respond(&mut host, id);
        } else {
            let reply = host.stream(id).unwrap().local_response().unwrap();
            assert_eq!(reply.status_code, 429);
            assert!(reply
                .headers
                .contains(&("retry-after".to_string(), "1".to_string())));
            limited += 1;
        }
        host.advance(Duration::from_millis(5)).unwrap();
    }
    assert!((40..=41).contains(&admitted), "{admitted} admitted");
    assert_eq!(limited, 400 - admitted);
    assert_eq!(
        class_counter(&host, "class_shed", "sheddable", Some("rate-limited")),
        limited
    );
    // Other classes have no limit.
    let (_, action) = send(&mut host, "critical", false);
    assert_eq!(action, Action::Continue);
}

#[test]
fn a_grpc_request_over_its_rate_gets_trailers_only_resource_exhausted() {
    let mut host = host(
        1,
        r#"{"shedding": {"rate_limits": {"critical": {"per_second": 1, "burst": 1}}}}"#,
        false,
    );
    let grpc = [
        (":method", "POST"),
        (":path", "/pkg.Svc/Call"),
        (":authority", "x"),
        ("content-type", "application/grpc"),
        ("x-priority", "critical"),
    ];
    let (_, first) = open(&mut host, 0, &grpc);
    assert_eq!(first, Action::Continue);
    let (id, _) = open(&mut host, 0, &grpc);
    let reply = host.stream(id).unwrap().local_response().unwrap();
    assert_eq!(reply.grpc_status, Some(8));
}

#[test]
fn a_spoofed_priority_from_an_untrusted_peer_gets_the_default_class_upstream() {
    let mut host = host(1, r#"{"shedding": {}}"#, false);
    let headers = request("critical", false);
    let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut stream = host.http_stream(0).unwrap();
    stream
        .set_property("source.address", "203.0.113.9:5000")
        .unwrap();
    assert_eq!(
        stream.request_headers(&pairs, true).unwrap(),
        Action::Continue
    );
    assert_eq!(
        stream.request_header("x-priority").as_deref(),
        Some("normal")
    );
    let mut trusted = host.http_stream(0).unwrap();
    assert_eq!(
        trusted.request_headers(&pairs, true).unwrap(),
        Action::Continue
    );
    assert_eq!(
        trusted.request_header("x-priority").as_deref(),
        Some("critical")
    );
    assert_eq!(
        host.counter("ballast_shedding_priority_untrusted.policy_set=.=api;.;"),
        Some(1)
    );
    assert_eq!(class_counter(&host, "class_admitted", "normal", None), 1);
    assert_eq!(class_counter(&host, "class_admitted", "critical", None), 1);
}

#[test]
fn a_dry_run_counts_refusals_and_changes_no_response() {
    let mut host = host(
        1,
        r#"{"shedding": {"rate_limits": {"sheddable": {"per_second": 1, "burst": 1}}}}"#,
        true,
    );
    for _ in 0..5 {
        let (id, action) = send(&mut host, "sheddable", false);
        assert_eq!(action, Action::Continue);
        assert!(host.stream(id).unwrap().local_response().is_none());
        assert_eq!(
            host.stream(id)
                .unwrap()
                .request_header("x-priority")
                .as_deref(),
            Some("sheddable")
        );
    }
    assert_eq!(
        class_counter(&host, "class_shed", "sheddable", Some("rate-limited")),
        4
    );
}

#[test]
fn a_class_its_upstream_refuses_is_throttled_at_the_door_and_others_are_not() {
    let mut host = host(
        1,
        r#"{"shedding": {"admission": {"enabled": false}, "throttle": {"min_rps": 0}}}"#,
        false,
    );
    let mut throttled = 0;
    for _ in 0..100 {
        let (id, action) = send(&mut host, "sheddable", false);
        if action == Action::Continue {
            let mut stream = host.stream(id).unwrap();
            stream
                .response_headers(&[(":status", "503")], true)
                .unwrap();
            stream.finish().unwrap();
        } else {
            assert_eq!(
                rejected(&mut host, id),
                Some((503, "throttled".to_string()))
            );
            throttled += 1;
        }
        host.advance(Duration::from_millis(10)).unwrap();
    }
    // Every answer a refusal: p = requests / (requests + 1), capped at 0.9.
    assert!((70..=90).contains(&throttled), "{throttled} throttled");
    assert_eq!(
        class_counter(&host, "class_shed", "sheddable", Some("throttled")),
        throttled
    );
    // Another class's window is its own.
    for _ in 0..20 {
        let (id, action) = send(&mut host, "critical", false);
        assert_eq!(action, Action::Continue);
        respond(&mut host, id);
    }
    assert_eq!(
        class_counter(&host, "class_shed", "critical", Some("throttled")),
        0
    );
}
