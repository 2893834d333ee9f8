//! The deadline policy as a real gRPC client sees it, through real Envoy 1.40, against a real
//! gRPC server (grpcio on both sides, `host-tests/e2e/grpc/`), with the shipped
//! `envoy-config/grpc-deadline.yaml`.
//!
//! Why: ballast's promise to gRPC callers is a status code. A call whose deadline is spent ends
//! DEADLINE_EXCEEDED, which clients do not retry, and not UNAVAILABLE, which Envoy's router
//! answers for its own timeout and which clients do retry. A spent deadline never reaches the
//! server. The harness tests check the headers; only a gRPC library shows what a caller finally
//! gets, and when.
//!
//! A separate test binary: its timings should not share the CPU with the load tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use ballast_e2e::envoy::validate;
use ballast_e2e::grpc::{self, CallResult, GrpcServer, ServerCall};
use ballast_e2e::prometheus::sample;
use ballast_e2e::{Envoy, EnvoyConfig};
use std::time::{Duration, Instant};

const CONFIG: &str = "envoy-config/grpc-deadline.yaml";
/// The client's deadline (grpcio sends it as `grpc-timeout`).
const CLIENT_TIMEOUT_MS: u64 = 200;
/// The server is slower than every deadline here.
const SERVER_SLEEP_MS: u64 = 1_000;
/// Calls per case.
const CALLS: usize = 3;
/// Reports from the server still on their way when the client is done.
const SETTLE: Duration = Duration::from_millis(300);

const DEADLINE_PASSED: &str = "ballast: the deadline passed before the upstream answered";
const DEADLINE_SPENT: &str = "ballast: the caller's deadline is spent";
/// grpcio's message for a deadline it enforced itself (client or server side).
const SERVER_DEADLINE: &str = "Deadline Exceeded";

/// ballast's JSON: the loopback test client is a trusted peer; one policy set `api`.
fn plugin_json(top: &str, api: &str) -> String {
    format!(
        r#"{{"metric_prefix": "ballast", {top}"trusted_peers": {{"source_cidrs": ["127.0.0.0/8"]}},
"policy_sets": {{"api": {api}}}, "default_policy_set": "api"}}"#
    )
}

/// The shipped config with the route's own timeout (15 s) replaced. (`EnvoyConfig::from_file`
/// joins its argument to the repository root, so an absolute path names the scratch file written
/// here; it is read at once and removed, and the rest is rendered as for the shipped file.)
fn config_with_route_timeout(timeout: &str) -> EnvoyConfig {
    let text = std::fs::read_to_string(ballast_e2e::paths::repo_file(CONFIG)).unwrap();
    assert_eq!(
        text.matches("timeout: 15s").count(),
        1,
        "one route timeout in {CONFIG}"
    );
    let path = std::env::temp_dir().join(format!(
        "ballast-grpc-deadline-{}-route-timeout.yaml",
        std::process::id()
    ));
    std::fs::write(
        &path,
        text.replace("timeout: 15s", &format!("timeout: {timeout}")),
    )
    .unwrap();
    let config = EnvoyConfig::from_file(path.to_str().unwrap()).unwrap();
    std::fs::remove_file(&path).unwrap();
    config
}

/// What one case did: the client's results, the server's calls, Envoy's metrics.
struct Run {
    results: Vec<CallResult>,
    server: Vec<ServerCall>,
    prometheus: String,
}

impl Run {
    fn metric(&self, name: &str) -> Option<f64> {
        sample(&self.prometheus, name, &[("policy_set", "api")])
    }
}

/// Starts a server and Envoy (`config` pointed at it), makes [`CALLS`] calls with
/// [`CLIENT_TIMEOUT_MS`], and prints what the client and the server saw.
fn run(label: &str, config: EnvoyConfig) -> Run {
    let mut server = GrpcServer::start(SERVER_SLEEP_MS).unwrap_or_else(|e| panic!("{e}"));
    let envoy =
        Envoy::start(&config.upstream_port(server.port())).unwrap_or_else(|e| panic!("{e}"));
    let results = grpc::call(envoy.listener(), CALLS, CLIENT_TIMEOUT_MS, &[])
        .unwrap_or_else(|e| panic!("{e}\n{}", envoy.log_tail(30)));
    let server_calls = server.calls(SETTLE).unwrap();
    let prometheus = envoy.prometheus().unwrap();
    println!(
        "--- {label}: client timeout {CLIENT_TIMEOUT_MS} ms, server sleeps {SERVER_SLEEP_MS} ms"
    );
    for r in &results {
        println!(
            "  client: {}({}) {:?} after {:.1} ms",
            r.code, r.code_number, r.details, r.elapsed_ms
        );
    }
    let first = server_calls.first().map_or(0.0, |c| c.arrival_ms);
    for c in &server_calls {
        println!(
            "  server: call {} at +{:.0} ms, deadline left at arrival {:?} ms, \
             x-envoy-expected-rq-timeout-ms {:?}, ended {:?} after {:?} ms",
            c.call,
            c.arrival_ms - first,
            c.time_remaining_ms,
            c.metadata("x-envoy-expected-rq-timeout-ms"),
            c.outcome,
            c.ended_after_ms
        );
    }
    if server_calls.is_empty() {
        println!("  server: never called");
    }
    let run = Run {
        results,
        server: server_calls,
        prometheus,
    };
    for name in [
        "ballast_deadline_seen_grpc_timeout",
        "ballast_deadline_upstream_timeouts",
        "ballast_deadline_expired_on_arrival",
    ] {
        println!("  {name}{{policy_set=\"api\"}} = {:?}", run.metric(name));
    }
    run
}

#[test]
fn shipped_grpc_config_passes_envoy_validate() {
    let (status, output) = validate(&EnvoyConfig::from_file(CONFIG).unwrap()).unwrap();
    assert!(
        status.success(),
        "envoy --mode validate refused {CONFIG}:\n{output}"
    );
}

/// The shipped file as a user runs it (its own plugin JSON, defaults: offset 1 ms): ballast
/// reads the grpcio client's deadline, and the call ends DEADLINE_EXCEEDED at about 200 ms,
/// by the router's timer or the client's own, whichever comes first.
#[test]
fn shipped_grpc_config_passes_the_callers_deadline_on() {
    grpc::python().unwrap_or_else(|e| panic!("{e}"));
    let shipped = run("shipped config", EnvoyConfig::from_file(CONFIG).unwrap());
    for r in &shipped.results {
        assert_eq!(
            (r.code.as_str(), r.code_number),
            ("DEADLINE_EXCEEDED", 4),
            "{r:?}"
        );
        assert!((190.0..260.0).contains(&r.elapsed_ms), "{r:?}");
    }
    assert_eq!(shipped.server.len(), CALLS);
    let calls = CALLS as f64;
    assert_eq!(
        shipped.metric("ballast_deadline_seen_grpc_timeout"),
        Some(calls)
    );
    assert_eq!(
        shipped.metric("ballast_deadline_expired_on_arrival"),
        Some(0.0)
    );
}

/// The router's timeout, set by ballast from the caller's deadline less `offset`, reaches the
/// gRPC client as DEADLINE_EXCEEDED with ballast's message, before the client's own timer (or,
/// now and then, as the server's own DEADLINE_EXCEEDED: it got the same budget). The same Envoy without the deadline policy leaves the call to the client's timer; with the
/// policy in dry run and a route timeout doing the router's part, the client gets Envoy's own
/// UNAVAILABLE, which ballast would have rewritten (and counts).
#[test]
fn router_timeout_reaches_the_grpc_client_as_deadline_exceeded() {
    grpc::python().unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();

    // 1. ballast, offset 50 ms: the router gives up ~150 ms into a 200 ms deadline.
    let with_ballast = run(
        "ballast deadline (offset 50ms)",
        EnvoyConfig::from_file(CONFIG)
            .unwrap()
            .plugin_json(&plugin_json("", r#"{"deadline": {"offset": "50ms"}}"#)),
    );
    // Either ballast's rewrite of the router's timeout or, when the server's gRPC library acts
    // on the grpc-timeout ballast forwarded a moment before the router's timer fires, the
    // server's own DEADLINE_EXCEEDED. Never UNAVAILABLE: the client would retry a spent call.
    for r in &with_ballast.results {
        assert_eq!(
            (r.code.as_str(), r.code_number),
            ("DEADLINE_EXCEEDED", 4),
            "{r:?}: an UNAVAILABLE 'upstream request timeout' is the router's timeout left as \
             it was, because ballast found the budget it forwarded not yet spent (Envoy's timers \
             fire a few ms early; the deadline stage allows for that with TIMER_SLACK)"
        );
        assert!(
            [DEADLINE_PASSED, SERVER_DEADLINE].contains(&r.details.as_str()),
            "{r:?}"
        );
        assert!(
            (140.0..190.0).contains(&r.elapsed_ms),
            "the router's timeout at ~150 ms, before the client's 200 ms: {r:?}"
        );
    }
    let rewritten = with_ballast
        .results
        .iter()
        .filter(|r| r.details == DEADLINE_PASSED)
        .count();
    println!("  {rewritten} of {CALLS} router timeouts rewritten by ballast, the others the server's own");
    assert_eq!(with_ballast.server.len(), CALLS, "every call was forwarded");
    for c in &with_ballast.server {
        // ballast rewrote grpc-timeout: the server's library sees the budget, not 200 ms.
        let left = c.time_remaining_ms.unwrap();
        assert!((100.0..155.0).contains(&left), "{c:?}");
        assert_eq!(c.outcome.as_deref(), Some("cancelled"), "{c:?}");
    }
    let calls = CALLS as f64;
    assert_eq!(
        with_ballast.metric("ballast_deadline_seen_grpc_timeout"),
        Some(calls)
    );
    assert_eq!(
        with_ballast.metric("ballast_deadline_upstream_timeouts"),
        Some(rewritten as f64)
    );
    assert_eq!(
        with_ballast.metric("ballast_deadline_expired_on_arrival"),
        Some(0.0)
    );

    // 2. The same Envoy and plugin, no deadline policy: Envoy does not enforce grpc-timeout on
    // its own, so the client's timer ends the call.
    let without_policy = run(
        "ballast without a deadline policy",
        EnvoyConfig::from_file(CONFIG)
            .unwrap()
            .plugin_json(&plugin_json("", "{}")),
    );
    for r in &without_policy.results {
        assert_eq!(
            (r.code.as_str(), r.code_number),
            ("DEADLINE_EXCEEDED", 4),
            "{r:?}"
        );
        assert_eq!(r.details, SERVER_DEADLINE, "{r:?}");
        assert!(
            r.elapsed_ms >= 195.0,
            "the client's own 200 ms timer: {r:?}"
        );
    }
    assert_eq!(without_policy.server.len(), CALLS);
    for c in &without_policy.server {
        assert!(
            c.time_remaining_ms.unwrap() > 180.0,
            "grpc-timeout as sent: {c:?}"
        );
    }
    assert_eq!(
        without_policy.metric("ballast_deadline_upstream_timeouts"),
        None
    );

    // 3. ballast's deadline policy in dry run (it counts, changes nothing), and the router times
    // out by its route's own timeout, 170 ms (after the budget ballast would have forwarded,
    // before the client's 200 ms): what Envoy alone tells the client.
    let dry_run = run(
        "dry run, route timeout 170ms",
        config_with_route_timeout("0.17s").plugin_json(&plugin_json(
            r#""dry_run": true, "#,
            r#"{"deadline": {"offset": "50ms"}}"#,
        )),
    );
    for r in &dry_run.results {
        assert_eq!(
            (r.code.as_str(), r.code_number, r.details.as_str()),
            ("UNAVAILABLE", 14, "upstream request timeout"),
            "{r:?}"
        );
        assert!((160.0..195.0).contains(&r.elapsed_ms), "{r:?}");
    }
    assert_eq!(dry_run.server.len(), CALLS);
    for c in &dry_run.server {
        assert!(
            c.time_remaining_ms.unwrap() > 180.0,
            "not rewritten in dry run: {c:?}"
        );
    }
    // Counted as what ballast would have rewritten.
    assert_eq!(
        dry_run.metric("ballast_deadline_upstream_timeouts"),
        Some(calls)
    );
    println!("router timeout cases took {:?}", started.elapsed());
}

/// A deadline with less than `min_useful` left is answered by ballast at once, and the server
/// never sees the call.
#[test]
fn spent_deadline_is_answered_at_once_without_calling_the_server() {
    grpc::python().unwrap_or_else(|e| panic!("{e}"));
    let spent = run(
        "ballast deadline (min_useful 300ms)",
        EnvoyConfig::from_file(CONFIG)
            .unwrap()
            .plugin_json(&plugin_json("", r#"{"deadline": {"min_useful": "300ms"}}"#)),
    );
    for r in &spent.results {
        assert_eq!(
            (r.code.as_str(), r.code_number, r.details.as_str()),
            ("DEADLINE_EXCEEDED", 4, DEADLINE_SPENT),
            "{r:?}"
        );
        assert!(r.elapsed_ms < 50.0, "answered at once: {r:?}");
    }
    assert!(
        spent.server.is_empty(),
        "the server was called: {:?}",
        spent.server
    );
    let calls = CALLS as f64;
    assert_eq!(
        spent.metric("ballast_deadline_expired_on_arrival"),
        Some(calls)
    );
    assert_eq!(
        spent.metric("ballast_deadline_upstream_timeouts"),
        Some(0.0)
    );
}
