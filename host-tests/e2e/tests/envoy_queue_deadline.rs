//! The concurrency limiter's wait queue and the caller's deadline, in real Envoy 1.40.
//!
//! A separate test binary from `envoy_concurrency` on purpose: cargo runs a binary's tests in
//! parallel, and this one's Envoy would share the CPU with that file's load measurements.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use ballast_demo_upstream::{spawn, Settings, UpstreamConfig};
use ballast_e2e::prometheus::sample;
use ballast_e2e::{get, Envoy, EnvoyConfig};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A request queued behind the limit leaves when its caller's deadline would pass (504,
/// `x-ballast-rejected: deadline`), long before `max_wait`; one without a deadline keeps waiting
/// and is served. (`x-envoy-expected-rq-timeout-ms` is covered in the harness: Envoy passes it
/// to filters only from peers it counts as internal.)
#[test]
fn queued_requests_leave_at_their_callers_deadline_in_envoy() {
    const HOLD_MS: u64 = 1_500;
    let upstream = spawn(UpstreamConfig {
        settings: Settings {
            capacity: 4,
            service_time_ms: HOLD_MS,
            ..Settings::default()
        },
        ..UpstreamConfig::default()
    })
    .unwrap();
    // The test client is a loopback peer: trusted, so its deadline hints are believed.
    let config = r#"{"trusted_peers": {"source_cidrs": ["127.0.0.0/8"]},
        "policy_sets": {"api": {"concurrency": {"algorithm": "fixed", "initial_limit": 1,
        "queue": {"size": 10, "max_wait": "10s"}}}}, "default_policy_set": "api"}"#;
    let envoy = Envoy::start(
        &EnvoyConfig::from_file("envoy-config/envoy.yaml")
            .unwrap()
            .upstream_port(upstream.addr().port())
            .plugin_json(config),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let addr = envoy.listener();
    let holder_done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let holder = scope.spawn(|| {
            let response = get(addr, "/api/items").unwrap();
            holder_done.store(true, Ordering::SeqCst);
            response
        });
        std::thread::sleep(Duration::from_millis(200)); // the holder takes the only slot
        let no_deadline = scope.spawn(|| get(addr, "/api/items").unwrap());
        let with = |name: &str, value: &[u8]| {
            let started = Instant::now();
            let response =
                ballast_e2e::request(addr, "GET", "/api/items", &[(name, value)], b"").unwrap();
            (
                response,
                started.elapsed(),
                holder_done.load(Ordering::SeqCst),
            )
        };
        let (response, took, holder_finished) = with("grpc-timeout", b"200m");
        assert_eq!(response.status, 504, "{}", response.text());
        assert_eq!(response.header("x-ballast-rejected"), Some("deadline"));
        assert!(
            !holder_finished,
            "answered at its deadline, while the slot was still held (took {took:?})"
        );
        println!("grpc-timeout 200m: answered 504 after {took:?} (max_wait 10 s)");
        // Envoy removes x-envoy-* headers sent by a client it does not count as internal before
        // any filter runs, so this one waits like a request without a deadline and is served.
        let (response, took, _) = with("x-envoy-expected-rq-timeout-ms", b"200");
        assert_eq!(response.status, 200, "{}", response.text());
        println!(
            "x-envoy-expected-rq-timeout-ms 200 from an external client: served after {took:?}"
        );
        assert_eq!(holder.join().unwrap().status, 200);
        assert_eq!(
            no_deadline.join().unwrap().status,
            200,
            "without a deadline the waiter is served once the slot frees"
        );
    });
    let text = envoy.prometheus().unwrap();
    let metric = |name: &str| sample(&text, name, &[("policy_set", "api")]);
    assert_eq!(metric("ballast_concurrency_deadline_drops"), Some(1.0));
    assert_eq!(metric("ballast_concurrency_queue_timeouts"), Some(0.0));
    drop(envoy);
    upstream.stop().unwrap();
}

/// A request that waited in the queue is forwarded with the budget left when it leaves, not
/// the one it arrived with: ballast edits the paused stream's headers (through
/// `set_effective_context`) before resuming it, and Envoy's router enforces them. The waiter's
/// deadline is 600 ms; it waits ~300 ms for the slot, so the router gets ~300 ms and times the
/// 400 ms upstream out (504 `upstream request timeout`), 100 ms before the upstream would
/// answer. Had the headers not reached the resumed stream, the route's 15 s timeout would apply
/// and the upstream's 200 would come back at ~700 ms, after the caller's deadline.
#[test]
fn a_waiter_is_forwarded_with_the_budget_left_after_its_wait() {
    const SERVICE_MS: u64 = 400;
    let upstream = spawn(UpstreamConfig {
        settings: Settings {
            capacity: 4,
            service_time_ms: SERVICE_MS,
            ..Settings::default()
        },
        ..UpstreamConfig::default()
    })
    .unwrap();
    let config = r#"{"trusted_peers": {"source_cidrs": ["127.0.0.0/8"]},
        "policy_sets": {"api": {"deadline": {}, "concurrency": {"algorithm": "fixed",
        "initial_limit": 1, "queue": {"size": 10, "max_wait": "10s"}}}}, "default_policy_set": "api"}"#;
    let envoy = Envoy::start(
        &EnvoyConfig::from_file("envoy-config/envoy.yaml")
            .unwrap()
            .upstream_port(upstream.addr().port())
            .plugin_json(config),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let addr = envoy.listener();
    std::thread::scope(|scope| {
        let holder = scope.spawn(|| get(addr, "/items").unwrap());
        std::thread::sleep(Duration::from_millis(100)); // the holder takes the only slot
        let started = Instant::now();
        let waiter =
            ballast_e2e::request(addr, "GET", "/items", &[("grpc-timeout", b"600m")], b"").unwrap();
        let took = started.elapsed();
        println!(
            "waiter (600 ms deadline, ~300 ms queued): {} {:?} after {took:?}",
            waiter.status,
            waiter.text().trim()
        );
        assert_eq!(holder.join().unwrap().status, 200);
        assert_eq!(waiter.status, 504, "{}", waiter.text());
        assert_eq!(
            waiter.text().trim(),
            "upstream request timeout",
            "the router's timeout at the budget left after the wait"
        );
        assert!(
            took < Duration::from_millis(600 + 150),
            "answered by its deadline: {took:?}"
        );
    });
    let text = envoy.prometheus().unwrap();
    let metric = |name: &str| sample(&text, name, &[("policy_set", "api")]);
    assert_eq!(metric("ballast_deadline_upstream_timeouts"), Some(1.0));
    assert_eq!(metric("ballast_deadline_seen_grpc_timeout"), Some(1.0));
    drop(envoy);
    upstream.stop().unwrap();
}
