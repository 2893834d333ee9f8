//! Retries across a chain of three Envoy 1.40 hops (client → E1 → E2 → E3 → leaf), each the
//! shipped `envoy-config/chain-hop-<n>.yaml` (route `retry_on: 5xx, num_retries: 3`, ballast's
//! retry budget at its defaults with `max_retries_per_request: 3`, and deadline propagation),
//! with ballast and without it. The leaf's own request count is the truth.
//!
//! Why: budgets per hop compound (without final marks, ballast in every hop sent the leaf
//! 3.1–3.4× the client's requests). With the marks, the hop nearest the failure retries within
//! its budget and the hops above do not retry what it gave up on: the leaf must see at most
//! 1.3× the client's requests while every request fails, and at 10 % independent failures the
//! chain must still rescue ≥ 99 % of requests. Each run paces 30 requests a second for 10 s
//! (the rate of the measurement, where a floor of 10 retries a second is a third more
//! load), with one worker per Envoy and with two. One chain at a time (a lock).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use ballast_demo_upstream::RunningUpstream;
use ballast_e2e::hops::{envoy_chain, shipped_hop};
use ballast_e2e::paced;
use ballast_e2e::prometheus::sample;
use ballast_e2e::{Envoy, EnvoyConfig};
use std::sync::Mutex;
use std::time::Duration;

const HOPS: usize = 3;
const RATE: f64 = 30.0;
const DURATION: Duration = Duration::from_secs(10);
const PATH: &str = "/api/items/1";

static ONE_CHAIN_AT_A_TIME: Mutex<()> = Mutex::new(());

fn leaf(failure_ratio: f64) -> RunningUpstream {
    ballast_e2e::upstreams::failing(failure_ratio).unwrap()
}

/// E1..E3 as shipped, `envoys[0]` = E1, each pointed at the next and E3 at the leaf.
fn chain(leaf: &RunningUpstream, ballast: bool, workers: usize) -> Vec<Envoy> {
    envoy_chain(HOPS, leaf.addr().port(), |hop| {
        let config = shipped_hop(hop)?.concurrency(workers);
        Ok(if ballast {
            config
        } else {
            config.without_plugin()
        })
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

struct Measured {
    sent: usize,
    ok: usize,
    leaf_requests: u64,
    /// The first failed response the client saw, with its headers.
    failure: Option<ballast_e2e::Response>,
    stats: Vec<String>,
}

impl Measured {
    fn amplification(&self) -> f64 {
        self.leaf_requests as f64 / self.sent as f64
    }

    fn counter(&self, hop: usize, name: &str) -> f64 {
        sample(&self.stats[hop], name, &[("policy_set", "api")]).unwrap_or(0.0)
    }
}

fn measure(failure_ratio: f64, ballast: bool, workers: usize) -> Measured {
    let leaf = leaf(failure_ratio);
    let envoys = chain(&leaf, ballast, workers);
    let run = paced::run(envoys[0].listener(), PATH, RATE, DURATION, 16);
    let sent = run.outcomes.len();
    let ok = run
        .outcomes
        .iter()
        .filter(|o| o.status() == Some(200))
        .count();
    let failure = run
        .outcomes
        .iter()
        .find_map(|o| o.result.as_ref().ok().filter(|r| r.status != 200).cloned());
    let stats = envoys.iter().map(|e| e.prometheus().unwrap()).collect();
    Measured {
        sent,
        ok,
        leaf_requests: leaf.stats().total,
        failure,
        stats,
    }
}

fn print(label: &str, m: &Measured) {
    println!(
        "{label}: {} requests, {} ok ({:.1} %), leaf saw {} ({:.2}x the client's)",
        m.sent,
        m.ok,
        100.0 * m.ok as f64 / m.sent as f64,
        m.leaf_requests,
        m.amplification()
    );
}

fn leaf_failing_everything(workers: usize) {
    let _one = ONE_CHAIN_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let without = measure(1.0, false, workers);
    let with = measure(1.0, true, workers);
    print(&format!("no ballast, {workers} worker(s)"), &without);
    print(&format!("ballast defaults, {workers} worker(s)"), &with);
    for hop in 0..HOPS {
        println!(
            "  E{}: retries allowed {}, final marks emitted {}, honoured {}, retries saved {}",
            hop + 1,
            with.counter(hop, "ballast_retries_allowed"),
            with.counter(hop, "ballast_retry_final_marks_emitted"),
            with.counter(hop, "ballast_retry_final_marks_honoured"),
            with.counter(hop, "ballast_retries_saved"),
        );
    }
    assert_eq!(with.ok, 0, "the leaf fails everything");
    assert!(
        without.amplification() > 10.0,
        "without ballast each hop retries 3 times: {:.2}x",
        without.amplification()
    );
    assert!(
        with.amplification() <= 1.3,
        "leaf saw {:.2}x the client's requests with ballast in every hop",
        with.amplification()
    );
    // The hop nearest the leaf spent its budget, the two above spent nothing and said why.
    assert!(with.counter(2, "ballast_retries_allowed") > 0.0);
    for hop in [0, 1] {
        assert_eq!(
            with.counter(hop, "ballast_retries_allowed"),
            0.0,
            "E{} retried a final failure",
            hop + 1
        );
        assert!(
            with.counter(hop, "ballast_retry_final_marks_honoured") >= 0.9 * with.sent as f64,
            "E{} honoured too few marks",
            hop + 1
        );
        assert!(with.counter(hop, "ballast_retries_saved") > 0.0);
    }
    let failure = with.failure.expect("a failed response");
    assert_eq!(failure.status, 503);
    // The client is on loopback, trusted by default: it sees why, marked by E1.
    assert_eq!(failure.header("x-ballast-final"), Some("upstream"));
    assert_eq!(
        failure.header("x-ballast-retry"),
        Some("retry-denied=upstream-final; retries=0")
    );
}

fn leaf_failing_one_in_ten(workers: usize) {
    let _one = ONE_CHAIN_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let with = measure(0.1, true, workers);
    print(
        &format!("ballast defaults, 10 % failures, {workers} worker(s)"),
        &with,
    );
    assert!(
        with.ok as f64 >= 0.99 * with.sent as f64,
        "success {}/{}: transient failures must still be retried",
        with.ok,
        with.sent
    );
    assert!(
        with.counter(2, "ballast_retries_allowed") >= 0.05 * with.sent as f64,
        "E3 retried the failures"
    );
}

#[test]
fn a_failing_leaf_is_retried_at_one_hop_only() {
    leaf_failing_everything(1);
}

#[test]
fn a_failing_leaf_is_retried_at_one_hop_only_with_two_workers() {
    leaf_failing_everything(2);
}

#[test]
fn transient_failures_are_still_rescued() {
    leaf_failing_one_in_ten(1);
}

#[test]
fn transient_failures_are_still_rescued_with_two_workers() {
    leaf_failing_one_in_ten(2);
}

/// gRPC through three hops rendered from `envoy-config/grpc-retry.yaml` (routes retry
/// `unavailable` 3 times), with a leaf that answers every call UNAVAILABLE: the hop nearest it
/// retries within its budget, the two above do not, and the caller's final status says why.
#[test]
fn a_failing_grpc_leaf_is_retried_at_one_hop_and_the_status_says_so() {
    use ballast_e2e::grpc::{self, GrpcServer};
    let _one = ONE_CHAIN_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    const CALLS: usize = 100;
    let mut leaf = GrpcServer::start(0).unwrap_or_else(|e| panic!("leaf: {e}"));
    let envoys = envoy_chain(HOPS, leaf.port(), |_| {
        EnvoyConfig::from_file("envoy-config/grpc-retry.yaml")
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let results = grpc::call(envoys[0].listener(), CALLS, 5_000, &[("x-fail-code", "14")])
        .unwrap_or_else(|e| panic!("{e}"));
    let leaf_calls = leaf.calls(Duration::from_millis(500)).unwrap().len();
    let stats: Vec<String> = envoys.iter().map(|e| e.prometheus().unwrap()).collect();
    let counter =
        |hop: usize, name: &str| sample(&stats[hop], name, &[("policy_set", "api")]).unwrap_or(0.0);
    println!(
        "gRPC: {CALLS} calls, leaf saw {leaf_calls} ({:.2}x); retries allowed E1 {} E2 {} E3 {}; \
         first status {} {:?}",
        leaf_calls as f64 / CALLS as f64,
        counter(0, "ballast_retries_allowed"),
        counter(1, "ballast_retries_allowed"),
        counter(2, "ballast_retries_allowed"),
        results[0].code,
        results[0].trailing
    );
    for result in &results {
        assert_eq!(result.code, "UNAVAILABLE", "{result:?}");
        assert_eq!(
            result.trailer("x-ballast-final"),
            Some("upstream"),
            "the final status says a hop below already retried it: {result:?}"
        );
    }
    assert!(
        leaf_calls as f64 <= 1.3 * CALLS as f64,
        "leaf saw {leaf_calls} calls for {CALLS}"
    );
    assert!(counter(2, "ballast_retries_allowed") > 0.0, "E3 retried");
    for hop in [0, 1] {
        assert_eq!(counter(hop, "ballast_retries_allowed"), 0.0, "E{}", hop + 1);
        assert_eq!(
            counter(hop, "ballast_retry_final_marks_honoured"),
            CALLS as f64,
            "E{}",
            hop + 1
        );
    }
}
