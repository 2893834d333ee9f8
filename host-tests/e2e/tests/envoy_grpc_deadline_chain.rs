//! A gRPC caller's deadline across three hops of real Envoy 1.40, with and without ballast:
//! a real grpcio client and grpcio servers (`host-tests/e2e/grpc/`), HTTP/2 all the way, with
//! Envoys rendered from the shipped `envoy-config/grpc-deadline.yaml`.
//!
//! Why, next to the HTTP/1.1 chain test (`envoy_deadline_chain`): a gRPC caller does not wait
//! past its deadline. grpcio's own timer ends the call and resets its stream, and an Envoy
//! passes a reset on to its upstream; an application that knows nothing of deadlines does not.
//! What reaches the leaf, and which status the caller gets (DEADLINE_EXCEEDED, which clients
//! do not retry, never UNAVAILABLE, which they do), is decided by those libraries and proxies
//! together, so only the real ones can show it. Two shapes, as in the HTTP test:
//!
//! - **Envoy-only** (client → E1 → E2 → E3 → leaf): each Envoy spends 30 ms (its fault filter)
//!   before ballast, which counts it because it measures from Envoy's `request.time`.
//! - **Applications between proxies** (client → E1 → A1 → E2 → A2 → E3 → A3 → leaf): each
//!   application is a grpcio server that works 30 ms and makes the same call to the next hop
//!   with the incoming metadata copied. grpcio keeps `grpc-timeout` to itself, so like a real
//!   application it calls on without a deadline and never cancels: only ballast's absolute
//!   `x-ballast-deadline`, copied with the rest of the metadata, still says when the caller
//!   gives up.
//!
//! Every call also carries `x-test-client-deadline` (the client's send time + 50 ms, epoch ms),
//! which ballast ignores and every hop copies, so the leaf can tell whether it started a call
//! its caller had already given up on. Each shape runs without the plugin (same Envoys
//! otherwise) and with it. One chain at a time (a lock): the latencies are measured.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use ballast_e2e::chain::{
    percentile, print_deadline_counters, CLIENT_DEADLINE_HEADER, EXPIRED_ON_ARRIVAL, SEEN_ABSOLUTE,
    SEEN_GRPC, UNTRUSTED_IGNORED, UPSTREAM_TIMEOUTS,
};
use ballast_e2e::grpc::{self, CallResult, GrpcServer, ServerCall};
use ballast_e2e::{Envoy, EnvoyConfig};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const CONFIG: &str = "envoy-config/grpc-deadline.yaml";
const HOPS: usize = 3;
const HOP_DELAY_MS: u64 = 30;
/// The client's deadline (grpcio sends it as `grpc-timeout: 50m`).
const CLIENT_TIMEOUT_MS: u64 = 50;
/// Calls per run, one after the other.
const CALLS: usize = 60;
/// Reports from the hops still on their way when the client is done.
const SETTLE: Duration = Duration::from_millis(500);
const PLUGIN: &str = r#"{"trusted_peers": {"source_cidrs": ["127.0.0.0/8"]},
    "policy_sets": {"api": {"deadline": {}}}, "default_policy_set": "api"}"#;
/// What the chain takes without any deadline: the hops' delays.
const CHAIN_MS: u64 = HOPS as u64 * HOP_DELAY_MS;
/// grpcio's message for a deadline it enforced itself (client or server side).
const GRPCIO_DEADLINE: &str = "Deadline Exceeded";

static ONE_CHAIN_AT_A_TIME: Mutex<()> = Mutex::new(());

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    EnvoyOnly,
    AppsBetween,
}

/// One running chain: `envoys[0]` is E1, `apps[0]` A1.
struct Chain {
    envoys: Vec<Envoy>,
    apps: Vec<GrpcServer>,
    leaf: GrpcServer,
}

impl Chain {
    /// Starts the chain from the leaf back to E1, each hop pointed at the one after it.
    fn start(shape: Shape, ballast: bool) -> Chain {
        let leaf = GrpcServer::start(0).unwrap_or_else(|e| panic!("leaf: {e}"));
        let mut next = SocketAddr::from(([127, 0, 0, 1], leaf.port()));
        let (mut envoys, mut apps) = (Vec::new(), Vec::new());
        for hop in (1..=HOPS).rev() {
            let mut config = EnvoyConfig::from_file(CONFIG).unwrap();
            if shape == Shape::AppsBetween {
                let app = GrpcServer::forwarding(HOP_DELAY_MS, next)
                    .unwrap_or_else(|e| panic!("A{hop}: {e}"));
                next = SocketAddr::from(([127, 0, 0, 1], app.port()));
                apps.push(app);
            } else {
                config = config.delay_before_plugin(HOP_DELAY_MS);
            }
            config = if ballast {
                config.plugin_json(PLUGIN)
            } else {
                config.without_plugin()
            };
            let envoy = Envoy::start(&config.upstream_port(next.port()))
                .unwrap_or_else(|e| panic!("E{hop}: {e}"));
            next = envoy.listener();
            envoys.push(envoy);
        }
        envoys.reverse();
        apps.reverse();
        Chain { envoys, apps, leaf }
    }

    /// One call with time to spare goes through every hop to the leaf (and opens the HTTP/2
    /// connections, so that the measured calls do not pay for that). Returns the leaf's count.
    fn assert_works(&mut self) -> usize {
        let entry = self.envoys[0].listener();
        let results = grpc::call(entry, 1, 2_000, &[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(results[0].code, "OK", "{:?}", results[0]);
        let reached = self.leaf.calls(Duration::ZERO).unwrap().len();
        assert_eq!(reached, 1, "the leaf saw the call with time to spare");
        reached
    }
}

/// What one run produced.
struct Run {
    results: Vec<CallResult>,
    leaf: Vec<ServerCall>,
    /// How many calls reached A1, A2, A3.
    app_calls: Vec<usize>,
    /// `/stats/prometheus` of E1, E2, E3 once every hop has finished.
    stats: Vec<String>,
    elapsed: Duration,
}

fn run(mut chain: Chain) -> Run {
    let before = chain.assert_works();
    let started = Instant::now();
    let results = grpc::call_marking_deadline(
        chain.envoys[0].listener(),
        CALLS,
        CLIENT_TIMEOUT_MS,
        CLIENT_DEADLINE_HEADER,
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", chain.envoys[0].log_tail(30)));
    let elapsed = started.elapsed();
    let leaf = chain.leaf.calls(SETTLE).unwrap()[before..].to_vec();
    let app_calls = chain
        .apps
        .iter_mut()
        .map(|app| app.calls(Duration::ZERO).unwrap().len() - before)
        .collect();
    let stats = chain
        .envoys
        .iter()
        .map(|e| e.prometheus().unwrap())
        .collect();
    Run {
        results,
        leaf,
        app_calls,
        stats,
        elapsed,
    }
}

/// Whether the leaf started this call after its client's deadline.
fn after_deadline(call: &ServerCall) -> bool {
    call.metadata(CLIENT_DEADLINE_HEADER)
        .and_then(|v| v.parse::<f64>().ok())
        .is_some_and(|deadline| call.arrival_ms > deadline)
}

fn late_starts(run: &Run) -> usize {
    run.leaf.iter().filter(|c| after_deadline(c)).count()
}

fn latencies(run: &Run) -> Vec<Duration> {
    run.results
        .iter()
        .map(|r| Duration::from_secs_f64(r.elapsed_ms / 1000.0))
        .collect()
}

fn counts(labels: impl Iterator<Item = String>) -> String {
    let mut all = BTreeMap::<String, usize>::new();
    for label in labels {
        *all.entry(label).or_default() += 1;
    }
    let parts: Vec<String> = all.iter().map(|(k, n)| format!("{k}: {n}")).collect();
    parts.join(", ")
}

fn statuses(run: &Run) -> String {
    counts(
        run.results
            .iter()
            .map(|r| format!("{}({}) {:?}", r.code, r.code_number, r.details)),
    )
}

fn print_table(shape: Shape, without: &Run, with: &Run) {
    println!(
        "\n{shape:?} (gRPC): {HOPS} hops × {HOP_DELAY_MS} ms, client timeout {CLIENT_TIMEOUT_MS} \
         ms, {CALLS} calls"
    );
    let row = |name: &str, f: &dyn Fn(&Run) -> String| {
        println!("  {name:<36} | {:<24} | {}", f(without), f(with));
    };
    println!("  {:<36} | {:<24} | with ballast", "", "without ballast");
    row("calls", &|r| r.results.len().to_string());
    if shape == Shape::AppsBetween {
        row("calls reaching A1 / A2 / A3", &|r| {
            let n: Vec<String> = r.app_calls.iter().map(usize::to_string).collect();
            n.join(" / ")
        });
    }
    row("leaf starts", &|r| r.leaf.len().to_string());
    row("leaf starts after client deadline", &|r| {
        late_starts(r).to_string()
    });
    row("client latency min/p50/p90/max (ms)", &|r| {
        let l = latencies(r);
        let ms = |percent| percentile(&l, percent).as_millis().to_string();
        [ms(0), ms(50), ms(90), ms(100)].join(" / ")
    });
    row("run duration (ms)", &|r| r.elapsed.as_millis().to_string());
    println!("  client statuses without ballast: {}", statuses(without));
    println!("  client statuses with ballast:    {}", statuses(with));
}

/// Runs a shape without and with ballast, prints the table, checks what holds in both shapes,
/// and returns both runs and ballast's counters (`[hop][metric]`) for the shape's own checks.
fn compare(shape: Shape) -> (Run, Run, Vec<[f64; 5]>) {
    grpc::python().unwrap_or_else(|e| panic!("{e}"));
    let _one_at_a_time = ONE_CHAIN_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let test_started = Instant::now();
    let without = run(Chain::start(shape, false));
    let with = run(Chain::start(shape, true));
    print_table(shape, &without, &with);
    let counters = print_deadline_counters(
        "ballast counters (policy_set=\"api\", the warm-up call included)",
        &with.stats,
    )
    .unwrap();
    println!("  {shape:?} took {:?} in all", test_started.elapsed());

    // Both ways the caller's own timer (or ballast's answer) ends the call with
    // DEADLINE_EXCEEDED, so the status alone does not tell them apart.
    for r in without.results.iter().chain(&with.results) {
        assert_eq!(
            (r.code.as_str(), r.code_number),
            ("DEADLINE_EXCEEDED", 4),
            "{r:?}: never UNAVAILABLE (Envoy's router timeout left as it was), never OK"
        );
    }
    // Without ballast that is grpcio's own timer (the client's, or an application's server side).
    for r in &without.results {
        assert_eq!(r.details, GRPCIO_DEADLINE, "{r:?}");
    }
    // With ballast the leaf starts nothing its caller has given up on.
    assert_eq!(late_starts(&with), 0, "with ballast: {:#?}", with.leaf);
    let l = latencies(&with);
    let (min, p50, max) = (percentile(&l, 0), percentile(&l, 50), percentile(&l, 100));
    assert!(
        min >= Duration::from_millis(CLIENT_TIMEOUT_MS - 15),
        "with ballast a call ended after {min:?}: well before the {CLIENT_TIMEOUT_MS} ms deadline"
    );
    assert!(
        p50 < Duration::from_millis(CHAIN_MS),
        "with ballast the p50 call took {p50:?}: no sooner than the {CHAIN_MS} ms chain"
    );
    assert!(
        max < Duration::from_secs(1),
        "with ballast the slowest call took {max:?}"
    );
    // E1 believed every client's grpc-timeout; every hop trusted its loopback peer.
    assert!(counters[0][SEEN_GRPC] >= CALLS as f64);
    assert!(counters.iter().all(|hop| hop[UNTRUSTED_IGNORED] == 0.0));
    (without, with, counters)
}

/// The Envoy-only chain. Unlike the HTTP/1.1 client of `envoy_deadline_chain`, which waits past
/// its deadline, grpcio resets its stream at 50 ms, and each Envoy resets its upstream stream in
/// turn: E2 is still in its 30 ms delay then, so the leaf is spared even without ballast. What
/// ballast adds here is E1's router giving up at the budget (~19 ms after its 30 ms delay), with
/// DEADLINE_EXCEEDED, whichever of it and the client's own timer comes first.
#[test]
fn envoy_only_grpc_chain_stops_at_the_callers_deadline() {
    let (without, _with, counters) = compare(Shape::EnvoyOnly);
    let reached = without.leaf.len();
    assert!(
        reached * 2 <= CALLS,
        "without ballast {reached} of {CALLS} calls reached the leaf: the client's reset did not \
         travel through the Envoys before E3 forwarded"
    );
    assert!(
        counters[0][UPSTREAM_TIMEOUTS] > 0.0,
        "E1's router never timed out"
    );
}

/// Applications copy metadata without decrementing anything and never cancel: without ballast
/// the leaf starts every call long after the caller gave up; with it, none, because the next
/// Envoy believes the absolute deadline the applications copied and answers a spent one.
#[test]
fn apps_between_grpc_chain_stops_at_the_callers_deadline() {
    let (without, _with, counters) = compare(Shape::AppsBetween);
    let late = late_starts(&without);
    assert!(
        late * 10 >= CALLS * 9,
        "without ballast only {late} of {CALLS} leaf starts were after the client's deadline"
    );
    assert!(
        counters[1][SEEN_ABSOLUTE] > 0.0,
        "E2 saw no x-ballast-deadline from A1"
    );
    let expired_later = counters[1][EXPIRED_ON_ARRIVAL] + counters[2][EXPIRED_ON_ARRIVAL];
    assert!(
        expired_later > 0.0,
        "no later hop answered a spent deadline on arrival"
    );
}
