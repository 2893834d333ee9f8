//! A caller's deadline across three hops of real Envoy 1.40, with and without ballast.
//!
//! Why this test exists: deadline propagation only matters end to end. Each hop costs 30 ms and
//! the client allows 50 ms, so by the third hop the caller has given up; the question is whether
//! the leaf still starts the work. Two shapes, because the deadline travels differently in each:
//!
//! - **Envoy-only** (client → E1 → E2 → E3 → leaf): the 30 ms is spent in each Envoy *before*
//!   ballast (Envoy's fault filter), which ballast must count because it measures relative
//!   deadlines from Envoy's `request.time`.
//! - **Applications between proxies** (client → E1 → A1 → E2 → A2 → E3 → A3 → leaf): each
//!   application copies headers verbatim and never cancels, so a relative `grpc-timeout` reaches
//!   the next Envoy undecremented and only ballast's absolute `x-ballast-deadline` still says
//!   how much time is left. (Envoy also strips `x-envoy-*` timeouts from these peers.)
//!
//! Every Envoy is the shipped `envoy-config/chain-hop-<n>.yaml` (ballast with `deadline {}` and
//! the retry budget, loopback trusted). Each shape runs once without the plugin (same Envoys
//! otherwise) to show what happens anyway, and once with it. Requests use a path outside `/api/`, whose route retries 5xx: retries of a
//! 504 would only blur which hop answered. One test runs at a time (a lock): the latencies are
//! measured, and two chains sharing the CPU would measure each other.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use ballast_e2e::chain::{
    percentile, print_deadline_counters, EXPIRED_ON_ARRIVAL, SEEN_ABSOLUTE, SEEN_GRPC,
    UNTRUSTED_IGNORED, UPSTREAM_TIMEOUTS, VIA_HEADER,
};
use ballast_e2e::client::request_within;
use ballast_e2e::hops::{ChainRun, DeadlineChain, Plugin, Shape};
use ballast_e2e::Response;
use ballast_policy::deadline::wire::parse_grpc_timeout;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const HOPS: usize = 3;
const HOP_DELAY_MS: u64 = 30;
const CLIENT_DEADLINE_MS: u64 = 50;
const REQUESTS: usize = 200;
const CLIENT_THREADS: usize = 10;
/// The client keeps waiting well past its deadline, so late answers are seen and timed.
const CLIENT_WAIT: Duration = Duration::from_secs(2);
const PATH: &str = "/chain/items";
/// What the chain takes without any deadline: the hops' delays.
const CHAIN_MS: u64 = HOPS as u64 * HOP_DELAY_MS;

static ONE_CHAIN_AT_A_TIME: Mutex<()> = Mutex::new(());

fn start(shape: Shape, ballast: bool) -> DeadlineChain {
    let plugin = if ballast {
        Plugin::Shipped
    } else {
        Plugin::Without
    };
    DeadlineChain::start_with(shape, HOPS, Duration::from_millis(HOP_DELAY_MS), plugin)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn run(chain: DeadlineChain) -> ChainRun {
    chain
        .run(
            PATH,
            REQUESTS,
            CLIENT_THREADS,
            CLIENT_DEADLINE_MS,
            CLIENT_WAIT,
        )
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A request with no deadline header goes through the whole chain to the leaf.
fn assert_chain_works(chain: &DeadlineChain) {
    let response = request_within(chain.entry(), "GET", PATH, &[], b"", CLIENT_WAIT).unwrap();
    assert_eq!(response.status, 200, "{:?}", response);
    assert_eq!(response.text(), "leaf");
    assert_eq!(chain.leaf.take_starts().len(), 1);
}

/// Which hop made the answer, and what it was.
fn answered_by(response: &Response) -> String {
    let kind = if response.header("x-ballast-rejected") == Some("deadline") {
        "ballast 504".to_string()
    } else if response.status == 504 && response.text().contains("upstream request timeout") {
        "router 504 (upstream request timeout)".to_string()
    } else {
        response.status.to_string()
    };
    let hop = match response.header(VIA_HEADER) {
        Some(via) => match via.split_whitespace().count() {
            HOPS => "leaf".to_string(),
            depth => format!("E{}", depth + 1),
        },
        // E1 adds x-envoy-upstream-service-time to what it relays, not to its own replies.
        None if response.header("x-envoy-upstream-service-time").is_some() => "past E1".to_string(),
        None => "E1".to_string(),
    };
    format!("{kind} from {hop}")
}

fn counts(labels: impl Iterator<Item = String>) -> String {
    let mut all = BTreeMap::<String, usize>::new();
    for label in labels {
        *all.entry(label).or_default() += 1;
    }
    let parts: Vec<String> = all.iter().map(|(k, n)| format!("{k}: {n}")).collect();
    parts.join(", ")
}

fn latencies(run: &ChainRun) -> Vec<Duration> {
    run.outcomes.iter().map(|o| o.latency).collect()
}

fn late_starts(run: &ChainRun) -> usize {
    run.late_starts()
}

fn print_table(shape: Shape, without: &ChainRun, with: &ChainRun) {
    println!(
        "\n{shape:?}: {HOPS} hops × {HOP_DELAY_MS} ms, client deadline {CLIENT_DEADLINE_MS} ms"
    );
    let row = |name: &str, f: &dyn Fn(&ChainRun) -> String| {
        println!("  {name:<36} | {:<28} | {}", f(without), f(with));
    };
    println!("  {:<36} | {:<28} | with ballast", "", "without ballast");
    row("requests", &|r| r.outcomes.len().to_string());
    row("leaf starts", &|r| r.leaf_starts.len().to_string());
    row("leaf starts after client deadline", &|r| {
        late_starts(r).to_string()
    });
    row("client latency min/p50/p90/max (ms)", &|r| {
        let l = latencies(r);
        let ms = |percent| percentile(&l, percent).as_millis().to_string();
        [ms(0), ms(50), ms(90), ms(100)].join(" / ")
    });
    row("load duration (ms)", &|r| r.elapsed.as_millis().to_string());
    let answers = |run: &ChainRun, label: fn(&Response) -> String| {
        counts(run.outcomes.iter().map(|o| match &o.response {
            Ok(response) => label(response),
            Err(e) => format!("client error ({e})"),
        }))
    };
    for (name, run) in [("without ballast", without), ("with ballast", with)] {
        println!(
            "  client statuses {name:<16} {}",
            answers(run, |r| r.status.to_string())
        );
    }
    println!(
        "  answered by, with ballast:       {}",
        answers(with, answered_by)
    );
}

/// A request with time to spare reaches the leaf told the budget E3 forwarded: the caller's,
/// less the time spent before E3's ballast — all three hops' 30 ms in the Envoy-only chain
/// (each delay is in an Envoy, before its ballast), two in the other (A3's comes after E3).
/// Each ballast counts the time spent before it instead of passing the caller's number on.
fn assert_budget_shrinks_per_hop(chain: &DeadlineChain, shape: Shape) {
    const GENEROUS_MS: u64 = 500;
    // Envoy arms timers from its event loop's cached clock, so a fault delay may end a few ms
    // early by the wall clock ballast reads; without counting the time before ballast at all,
    // the leaf would be told about 497 ms.
    const TIMER_SLACK_MS: u64 = 5;
    let before_e3_ms = match shape {
        Shape::EnvoyOnly => CHAIN_MS,
        Shape::AppsBetween => CHAIN_MS - HOP_DELAY_MS,
    };
    let timeout = format!("{GENEROUS_MS}m");
    let headers: [(&str, &[u8]); 1] = [("grpc-timeout", timeout.as_bytes())];
    let started = Instant::now();
    let response = request_within(chain.entry(), "GET", PATH, &headers, b"", CLIENT_WAIT).unwrap();
    let took = started.elapsed();
    assert_eq!(response.status, 200, "{:?}", response);
    let starts = chain.leaf.take_starts();
    let told = starts[0]
        .grpc_timeout
        .as_deref()
        .expect("E3 forwards grpc-timeout");
    let told_ms = parse_grpc_timeout(told).expect("a well-formed grpc-timeout") as f64 / 1e6;
    println!(
        "  grpc-timeout {timeout} at E1 reached the leaf as {told} ({told_ms} ms) after {took:?}"
    );
    assert!(
        told_ms <= (GENEROUS_MS - before_e3_ms + TIMER_SLACK_MS) as f64 && told_ms > 0.0,
        "the leaf was told {told}: not {GENEROUS_MS} ms less the {before_e3_ms} ms before E3"
    );
}

/// Runs a shape without and with ballast, prints the table, checks what holds in both shapes,
/// and returns ballast's counters (`[hop][metric]`) for the shape's own checks.
fn compare(shape: Shape) -> Vec<[f64; 5]> {
    let _one_at_a_time = ONE_CHAIN_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let test_started = Instant::now();
    let without = run(start(shape, false));
    let chain = start(shape, true);
    println!("\n{shape:?}, with ballast:");
    assert_chain_works(&chain);
    assert_budget_shrinks_per_hop(&chain, shape);
    let with = run(chain);
    print_table(shape, &without, &with);
    let counters =
        print_deadline_counters("ballast counters (policy_set=\"api\")", &with.stats).unwrap();
    println!("  {shape:?} took {:?} in all", test_started.elapsed());

    // Without ballast the leaf does the work of callers that have given up.
    let late = late_starts(&without);
    assert!(
        late * 10 >= REQUESTS * 9,
        "without ballast only {late} of {REQUESTS} leaf starts were after the client's deadline"
    );
    // With it, none: the answer is a 504 near the deadline instead.
    assert_eq!(
        late_starts(&with),
        0,
        "with ballast: {:?}",
        with.leaf_starts
    );
    for outcome in &with.outcomes {
        let response = outcome.response.as_ref().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(response.status, 504, "{response:?}");
    }
    let l = latencies(&with);
    let (p50, max) = (percentile(&l, 50), percentile(&l, 100));
    assert!(
        p50 >= Duration::from_millis(CLIENT_DEADLINE_MS - 10),
        "with ballast the p50 answer took {p50:?}: well before the {CLIENT_DEADLINE_MS} ms deadline"
    );
    assert!(
        p50 < Duration::from_millis(CHAIN_MS),
        "with ballast the p50 answer took {p50:?}: no sooner than the {CHAIN_MS} ms chain"
    );
    assert!(
        max < Duration::from_secs(1),
        "with ballast the slowest answer took {max:?}"
    );
    // E1 believed every client's grpc-timeout and its router gave up at the budget it set.
    assert!(counters[0][SEEN_GRPC] >= REQUESTS as f64);
    assert!(counters[0][UPSTREAM_TIMEOUTS] > 0.0);
    // Every hop trusted its loopback peer (else hints would be dropped, not believed).
    assert!(counters.iter().all(|hop| hop[UNTRUSTED_IGNORED] == 0.0));
    counters
}

/// The Envoy-only chain: the time spent before ballast in each Envoy comes off the budget.
///
/// E1 forwards the 19 ms left after its own 30 ms, and its router resets the stream to E2
/// when they run out, while E2 still holds it in its own 30 ms delay: E2's and E3's ballast
/// never see these requests, so only E1's counters show the deadline.
#[test]
fn envoy_only_chain_stops_at_the_callers_deadline() {
    compare(Shape::EnvoyOnly);
}

/// Applications between the proxies copy headers without decrementing them: the absolute
/// deadline ballast wrote is what the next Envoy still believes, and since the applications
/// never cancel, the later Envoys do get the requests, and answer them at once.
#[test]
fn app_between_proxies_chain_stops_at_the_callers_deadline() {
    let counters = compare(Shape::AppsBetween);
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
