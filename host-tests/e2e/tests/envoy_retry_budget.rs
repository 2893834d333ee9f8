//! Retry budgets in real Envoy 1.40: the route retries 5xx three times; ballast reserves each
//! request's retries from a shared budget (`x-envoy-max-retries`) and refunds the unused ones
//! from `x-envoy-attempt-count`. The upstream's own request count is the ground truth.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use ballast_demo_upstream::RunningUpstream;
use ballast_e2e::load::{self, Spec};
use ballast_e2e::prometheus::sample;
use ballast_e2e::{request, Envoy, EnvoyConfig};

const RATIO: f64 = 0.2;
const MIN_PER_SECOND: f64 = 10.0;
const TTL_SECONDS: f64 = 10.0;

fn upstream(failure_ratio: f64) -> RunningUpstream {
    ballast_e2e::upstreams::failing(failure_ratio).unwrap()
}

fn envoy(upstream: &RunningUpstream, workers: usize, plugin_json: Option<&str>) -> Envoy {
    let mut config = EnvoyConfig::from_file("envoy-config/envoy.yaml")
        .unwrap()
        .upstream_port(upstream.addr().port())
        .concurrency(workers);
    if let Some(json) = plugin_json {
        config = config.plugin_json(json);
    }
    Envoy::start(&config).unwrap_or_else(|e| panic!("{e}"))
}

fn get(i: usize) -> Spec {
    ("GET", format!("/api/items/{}", i % 7), Vec::new())
}

fn metric(envoy: &Envoy, name: &str) -> f64 {
    let text = envoy.prometheus().unwrap();
    sample(&text, name, &[("policy_set", "api")]).unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// The bound the issue states: N·(1 + ratio) + min·duration, where the floor is granted per
/// window of `ttl` (so a run shorter than the window may use min·ttl), plus 5 % slack.
fn bound(n: usize, seconds: f64) -> f64 {
    (n as f64 * (1.0 + RATIO) + MIN_PER_SECOND * seconds.max(TTL_SECONDS)) * 1.05
}

/// A POST to `/api/payments` carrying idempotency key `k-<i>`.
fn keyed_post(envoy: &Envoy, i: usize) -> ballast_e2e::Response {
    request(
        envoy.listener(),
        "POST",
        "/api/payments",
        &[("idempotency-key", format!("k-{i}").as_bytes())],
        b"{}",
    )
    .unwrap()
}

fn budget_holds_under_total_failure(workers: usize) {
    let n = 2000;
    let upstream = upstream(1.0);
    let envoy = envoy(&upstream, workers, None);
    let run = load::run(envoy.listener(), n, 16, get);
    assert_eq!(
        run.client_errors(),
        0,
        "{:?}",
        run.results.iter().find(|r| r.is_err())
    );
    assert_eq!(
        run.count_status(503),
        n,
        "every request fails: the upstream always does"
    );
    let seen = upstream.stats().total as f64;
    let limit = bound(n, run.elapsed.as_secs_f64());
    assert!(
        seen <= limit,
        "upstream saw {seen} requests for {n}: over the budget bound {limit:.0} ({workers} workers)"
    );
    // The budget was used, not bypassed: retries happened, then were refused.
    let allowed = metric(&envoy, "ballast_retries_allowed");
    let denied = metric(&envoy, "ballast_retries_denied_budget");
    assert_eq!(
        allowed,
        seen - n as f64,
        "retries_allowed counts exactly the extra upstream requests"
    );
    assert!(
        allowed >= RATIO * n as f64 * 0.9,
        "retries allowed: {allowed}"
    );
    assert!(
        denied > n as f64 * 0.5,
        "retries denied by budget: {denied}"
    );
    eprintln!(
        "{workers} worker(s): {n} requests → upstream saw {seen} ({:.3}×), bound {limit:.0}, {allowed} retries allowed, {denied} denied, {:.1}s",
        seen / n as f64,
        run.elapsed.as_secs_f64()
    );
}

#[test]
fn budget_bounds_amplification_and_without_it_envoy_retries_four_times() {
    budget_holds_under_total_failure(1);

    // Same Envoy route (num_retries: 3), ballast without a retry budget: ~4× the load.
    let n = 500;
    let upstream = upstream(1.0);
    let no_budget = r#"{"policy_sets": {"api": {}, "web": {}},
        "routes": [{"match": {"route_name": {"exact": "api"}}, "policy_set": "api"}],
        "default_policy_set": "web"}"#;
    let envoy = envoy(&upstream, 1, Some(no_budget));
    let run = load::run(envoy.listener(), n, 16, get);
    assert_eq!(run.count_status(503), n);
    let seen = upstream.stats().total as f64;
    assert!(
        seen >= 3.9 * n as f64,
        "without a budget Envoy retries 3×: saw {seen} for {n}"
    );
    eprintln!(
        "no budget: {n} requests → upstream saw {seen} ({:.3}×)",
        seen / n as f64
    );
}

#[test]
fn budget_is_shared_by_two_workers() {
    budget_holds_under_total_failure(2);
}

#[test]
fn occasional_failures_are_still_retried() {
    let n = 1000;
    let upstream = upstream(0.1);
    let envoy = envoy(&upstream, 2, None);
    let run = load::run(envoy.listener(), n, 16, get);
    let ok = run.count_status(200);
    assert!(
        ok as f64 >= 0.99 * n as f64,
        "success {ok}/{n}: retries should have rescued failures"
    );
    let allowed = metric(&envoy, "ballast_retries_allowed");
    assert!(
        allowed >= 50.0,
        "about 10 % of requests needed a retry; allowed {allowed}"
    );
    assert_eq!(upstream.stats().total as f64, n as f64 + allowed);
}

#[test]
fn post_is_retried_only_with_an_idempotency_key() {
    // Idempotency alone (`retry` without a budget): against an upstream failing everything a
    // budget's floor would shrink away, and this is about which requests may be retried at all.
    let upstream = upstream(1.0);
    let rules_only = r#"{"policy_sets": {"api": {"retry": {"max_retries_per_request": 3,
        "idempotency_key_header": "idempotency-key", "explain_header": "x-ballast-retry"}}},
        "default_policy_set": "api"}"#;
    let envoy = envoy(&upstream, 1, Some(rules_only));
    for i in 0..20 {
        let plain = request(envoy.listener(), "POST", "/api/orders", &[], b"{}").unwrap();
        assert_eq!(plain.status, 503);
        assert_eq!(
            plain.header("x-ballast-retry"),
            Some("retry-denied=not-idempotent; retries=0"),
            "request {i}"
        );
        let keyed = keyed_post(&envoy, i);
        assert_eq!(keyed.status, 503);
        assert_eq!(
            keyed.header("x-envoy-attempt-count"),
            Some("4"),
            "keyed POST retried 3 times"
        );
    }
    let stats = upstream.stats();
    assert_eq!(
        stats.by_path["/api/orders"], 20,
        "POST without key: never retried"
    );
    assert_eq!(
        stats.by_path["/api/payments"], 80,
        "POST with key: 1 + 3 retries each"
    );
    assert_eq!(
        metric(&envoy, "ballast_retries_denied_not_idempotent"),
        20.0
    );
}

/// An idempotency key is a hint: from a peer outside `trusted_peers` it buys no retries (the
/// loopback client is made untrusted here by trusting only another network).
#[test]
fn an_idempotency_key_from_an_untrusted_peer_is_not_believed() {
    let upstream = upstream(1.0);
    let untrusting = r#"{"trusted_peers": {"source_cidrs": ["10.0.0.0/8"]},
        "policy_sets": {"api": {"retry": {"max_retries_per_request": 3,
        "idempotency_key_header": "idempotency-key", "explain_header": "x-ballast-retry"}}},
        "default_policy_set": "api"}"#;
    let envoy = envoy(&upstream, 1, Some(untrusting));
    for i in 0..10 {
        let keyed = keyed_post(&envoy, i);
        assert_eq!(keyed.status, 503);
        assert_eq!(
            keyed.header("x-ballast-retry"),
            Some("retry-denied=not-idempotent; retries=0"),
            "request {i}"
        );
    }
    assert_eq!(
        upstream.stats().by_path["/api/payments"],
        10,
        "never retried"
    );
    assert_eq!(
        metric(&envoy, "ballast_retry_idempotency_keys_untrusted"),
        10.0
    );
}
