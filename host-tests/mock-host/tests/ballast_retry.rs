//! The retry budget of the real plugin, in the harness: several worker VMs share one budget
//! (one per process, as in Envoy), whatever the interleaving — never y× the budget for y
//! workers (the bug that got Istio's local rate limiter reverted), never 1/y of it either.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use ballast_mock_host::{Host, PluginModule};
use std::time::Duration;

fn plugin() -> PluginModule {
    common::ballast_plugin()
}

fn config(ratio: f64, min: u32, dry_run: bool) -> String {
    format!(
        r#"{{"dry_run": {dry_run},
            "policy_sets": {{"api": {{
              "retry_budget": {{"ratio": {ratio}, "min_retries_per_second": {min}, "ttl": "10s"}},
              "retry": {{"max_retries_per_request": 3, "idempotency_key_header": "idempotency-key"}}}}}},
            "default_policy_set": "api"}}"#
    )
}

fn host(workers: usize, config: &str) -> Host {
    let mut host = Host::builder(&plugin())
        .workers(workers)
        .plugin_config(config)
        .build()
        .unwrap();
    assert!(host.start().unwrap().all_ok());
    host
}

/// One request on `worker`: returns the `x-envoy-max-retries` the plugin set (None if unset),
/// then answers with `status` after `attempts` attempts.
fn request(
    host: &mut Host,
    worker: usize,
    method: &str,
    status: u16,
    attempts: u32,
) -> Option<u32> {
    let mut stream = host.http_stream(worker).unwrap();
    stream
        .request_headers(
            &[(":method", method), (":path", "/a"), (":authority", "x")],
            true,
        )
        .unwrap();
    let reserved = stream
        .request_header("x-envoy-max-retries")
        .map(|v| v.parse().unwrap());
    let status = status.to_string();
    let attempts = attempts.to_string();
    stream
        .response_headers(
            &[
                (":status", status.as_str()),
                ("x-envoy-attempt-count", attempts.as_str()),
            ],
            true,
        )
        .unwrap();
    stream.finish().unwrap();
    reserved
}

/// A POST carrying the idempotency key from `address`: the `x-envoy-max-retries` it got.
fn keyed_post(host: &mut Host, address: &str) -> Option<String> {
    let mut stream = host.http_stream(0).unwrap();
    stream.set_property("source.address", address).unwrap();
    stream
        .request_headers(
            &[
                (":method", "POST"),
                (":path", "/a"),
                (":authority", "x"),
                ("idempotency-key", "k1"),
            ],
            true,
        )
        .unwrap();
    let reserved = stream.request_header("x-envoy-max-retries");
    stream.finish().unwrap();
    reserved
}

/// Sends requests that use all their reserved retries (and then succeed: the floor is kept
/// for requests that do not fail) in the given worker order and returns the total of retries
/// granted.
fn drain_budget(host: &mut Host, order: &[usize]) -> u32 {
    let mut granted = 0;
    for &worker in order {
        // Envoy made every reserved retry (the attempt count exceeds any reservation).
        granted += request(host, worker, "GET", 200, u32::MAX).unwrap();
    }
    granted
}

#[test]
fn four_workers_share_exactly_one_budget_in_any_interleaving() {
    // ratio 0: the budget is exactly the floor, 10/s × 10 s = 100 retries per window.
    let interleavings: Vec<Vec<usize>> = vec![
        (0..200).map(|i| i % 4).collect(), // round robin
        (0..200).map(|i| if i < 100 { 0 } else { 3 }).collect(), // one worker, then another
        (0..200).map(|i| (i * 7 + i / 3) % 4).collect(), // scrambled
    ];
    for order in interleavings {
        let mut host = host(4, &config(0.0, 10, false));
        let mut granted = 0;
        for &worker in &order {
            let reserved = request(&mut host, worker, "GET", 200, u32::MAX).unwrap();
            granted += reserved;
        }
        assert_eq!(
            granted,
            100,
            "4 workers must share one budget of 100 (order {:?}…)",
            &order[..8]
        );
        let allowed = host
            .counter("ballast_retries_allowed.policy_set=.=api;.;")
            .unwrap();
        assert_eq!(allowed, 100);
    }
}

#[test]
fn budget_earns_by_ratio_and_refunds_unused_retries() {
    let mut host = host(4, &config(0.2, 0, false));
    // 100 successful first attempts: each reserves what is available and refunds it all.
    let mut reserved_sum = 0;
    for i in 0..100 {
        reserved_sum += request(&mut host, i % 4, "GET", 200, 1).unwrap();
    }
    assert!(reserved_sum > 0, "refunds make budget available again");
    // Now everything fails: 0.2 × 100 earlier firsts = 20 retries, plus 0.2 per new first
    // (no floor here, so failures take nothing away).
    let mut granted = 0;
    for i in 0..100 {
        granted += request(&mut host, i % 4, "GET", 503, u32::MAX).unwrap();
    }
    // 100 + 100 first attempts → 40 retries in the window.
    assert_eq!(granted, 40, "ratio 0.2 of 200 first attempts");
    assert_eq!(
        host.counter("ballast_retries_allowed.policy_set=.=api;.;"),
        Some(40)
    );
    assert!(
        host.counter("ballast_retries_denied_budget.policy_set=.=api;.;")
            .unwrap()
            > 0
    );
}

#[test]
fn window_ages_out_after_ttl() {
    let mut host = host(2, &config(0.0, 10, false));
    assert_eq!(drain_budget(&mut host, &[0, 1].repeat(60)), 100);
    assert_eq!(request(&mut host, 0, "GET", 503, 1), Some(0), "spent");
    host.advance(Duration::from_secs(11)).unwrap();
    assert_eq!(
        request(&mut host, 1, "GET", 503, 4),
        Some(3),
        "a new window grants again"
    );
}

#[test]
fn non_idempotent_requests_get_no_retries_unless_keyed() {
    let mut host = host(1, &config(0.2, 10, false));
    assert_eq!(request(&mut host, 0, "POST", 503, 1), Some(0));
    assert_eq!(
        keyed_post(&mut host, "127.0.0.1:5000").as_deref(),
        Some("3")
    );
    assert_eq!(
        host.counter("ballast_retries_denied_not_idempotent.policy_set=.=api;.;"),
        Some(1)
    );
}

#[test]
fn dry_run_sets_nothing_and_still_counts() {
    let mut host = host(2, &config(0.0, 1, true));
    let mut unset = 0;
    for i in 0..40 {
        if request(&mut host, i % 2, "GET", 503, 4).is_none() {
            unset += 1;
        }
    }
    assert_eq!(unset, 40, "dry run never sets x-envoy-max-retries");
    assert_eq!(
        request(&mut host, 0, "POST", 503, 1),
        None,
        "not even for POST"
    );
    assert!(
        host.counter("ballast_retries_denied_budget.policy_set=.=api;.;")
            .unwrap()
            > 0
    );
    assert_eq!(
        host.counter("ballast_retries_denied_not_idempotent.policy_set=.=api;.;"),
        Some(1)
    );
}

#[test]
fn budget_gauge_follows_ticks() {
    let mut host = host(2, &config(0.5, 1, false));
    for i in 0..20 {
        request(&mut host, i % 2, "HEAD", 200, 1);
    }
    host.advance(Duration::from_millis(1500)).unwrap();
    // 0.5 × 20 firsts + 1 × 10 floor = 20 retries available.
    assert_eq!(
        host.gauge("ballast_retry_budget_available.policy_set=.=api;.;"),
        Some(20)
    );
}

#[test]
fn retry_marks_from_trusted_peers_are_counted() {
    let mut host = host(1, &config(0.2, 10, false));
    type Row<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let rows: [Row; 5] = [
        ("127.0.0.1:5000", &[("x-envoy-attempt-count", "3")], "retry"),
        (
            "127.0.0.1:5000",
            &[("grpc-previous-rpc-attempts", "1")],
            "retry",
        ),
        ("127.0.0.1:5000", &[("x-envoy-attempt-count", "1")], "first"),
        (
            "127.0.0.1:5000",
            &[("x-envoy-attempt-count", "banana")],
            "malformed",
        ),
        (
            "203.0.113.7:5000",
            &[("x-envoy-attempt-count", "3")],
            "untrusted",
        ),
    ];
    for (address, marks, _) in rows {
        let mut stream = host.http_stream(0).unwrap();
        stream.set_property("source.address", address).unwrap();
        let mut headers = vec![(":method", "GET"), (":path", "/a"), (":authority", "x")];
        headers.extend_from_slice(marks);
        stream.request_headers(&headers, true).unwrap();
        stream.finish().unwrap();
    }
    assert_eq!(
        host.counter("ballast_retried_requests_received.policy_set=.=api;.;"),
        Some(2)
    );
    assert_eq!(
        host.counter("ballast_retry_marks_malformed.policy_set=.=api;.;"),
        Some(1)
    );
}

/// A dry run changes no response either: the explanation of a refused retry is counted, not
/// written (and written when not in dry run, so the check can fail).
#[test]
fn dry_run_adds_no_explanation_to_the_response() {
    for dry_run in [false, true] {
        let config = format!(
            r#"{{"dry_run": {dry_run},
                "policy_sets": {{"api": {{"retry": {{"explain_header": "x-ballast-retry"}}}}}},
                "default_policy_set": "api"}}"#
        );
        let mut host = host(1, &config);
        let mut stream = host.http_stream(0).unwrap();
        stream
            .request_headers(
                &[(":method", "POST"), (":path", "/a"), (":authority", "x")],
                true,
            )
            .unwrap();
        stream
            .response_headers(&[(":status", "503"), ("x-envoy-attempt-count", "1")], true)
            .unwrap();
        let explained = stream.response_header("x-ballast-retry");
        stream.finish().unwrap();
        let expected = (!dry_run).then(|| "retry-denied=not-idempotent; retries=0".to_string());
        assert_eq!(explained, expected, "dry_run {dry_run}");
        assert_eq!(
            host.counter("ballast_retries_denied_not_idempotent.policy_set=.=api;.;"),
            Some(1),
            "dry_run {dry_run}: counted either way"
        );
    }
}

#[test]
fn the_floor_does_not_carry_a_storm() {
    // ratio 0, floor 10/s × 10 s = 100: requests whose retries succeed keep the floor; once
    // requests finally fail, their share of the window's requests takes it away (Linkerd and
    // Finagle keep it whole: the 70 left would all go to the storm).
    let mut host = host(2, &config(0.0, 10, false));
    assert_eq!(
        drain_budget(&mut host, &[0, 1].repeat(5)),
        30,
        "the floor serves retries"
    );
    let mut storm = 0;
    for i in 0..40 {
        storm += request(&mut host, i % 2, "GET", 503, u32::MAX).unwrap();
    }
    // The k-th failure sees a floor of 100 × 11 / (11 + k): it runs dry after about nine.
    assert!(
        (1..=30).contains(&storm),
        "the storm got {storm} of the 70 retries left"
    );
    assert_eq!(
        request(&mut host, 0, "GET", 503, u32::MAX),
        Some(0),
        "failures took the floor away"
    );
}

/// An idempotency key makes a POST retryable, so it is a hint like any other: believed only
/// from a trusted peer, unless the policy set says keys come from clients.
#[test]
fn an_idempotency_key_from_an_untrusted_peer_buys_no_retries() {
    let mut inner = host(1, &config(0.2, 10, false));
    assert_eq!(
        keyed_post(&mut inner, "203.0.113.7:5000").as_deref(),
        Some("0")
    );
    assert_eq!(
        keyed_post(&mut inner, "127.0.0.1:5000").as_deref(),
        Some("3")
    );
    assert_eq!(
        inner.counter("ballast_retry_idempotency_keys_untrusted.policy_set=.=api;.;"),
        Some(1)
    );
    let believing = config(0.2, 10, false).replace(
        r#""idempotency_key_header": "idempotency-key""#,
        r#""idempotency_key_header": "idempotency-key", "idempotency_key_from_untrusted": true"#,
    );
    let mut edge = host(1, &believing);
    assert_eq!(
        keyed_post(&mut edge, "203.0.113.7:5000").as_deref(),
        Some("3")
    );
}
