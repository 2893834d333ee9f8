//! The Envoy bootstraps in `envoy-config/` that users copy, checked as shipped.
//!
//! Why: a bootstrap is documentation a user runs. If one stops loading, or stops doing what its
//! comments promise, the user finds out in production. So:
//!
//! - every bootstrap under `envoy-config/` passes `envoy --mode validate` (which loads the .wasm
//!   and runs ballast's `on_configure`). The list is found by walking the directory, so a new
//!   file cannot be missed; `istio/` and `grafana/` hold Kubernetes manifests and dashboards, and
//!   any other YAML must be a bootstrap or an ECDS resource, or the test fails;
//! - the deployment shapes carry envoy.yaml's `stats_tags` rules, and the policies embedded in
//!   `sidecar-inbound.yaml` and `edge-gateway.yaml` are the examples of `examples/configs/`;
//! - the three shapes run as shipped (only ports and the .wasm path rendered) in real Envoy 1.40
//!   on loopback: the sidecar limits and sheds an overload by class, the client side caps
//!   retries by its budget and forwards a shrunk deadline, and the edge ignores a client's own
//!   priority and rate-limits a class with 429.
//!
//! Load is bounded in count and time; one test at a time (a lock), so none measures another.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use ballast_demo_upstream::RunningUpstream;
use ballast_e2e::chain::epoch_ms;
use ballast_e2e::envoy::validate;
use ballast_e2e::load;
use ballast_e2e::paced;
use ballast_e2e::paths::repo_file;
use ballast_e2e::prometheus::sample;
use ballast_e2e::{request, Envoy, EnvoyConfig, Response};
use ballast_policy::deadline::wire::parse_grpc_timeout;
use serde_yaml_ng::Value;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Directories of `envoy-config/` that hold no Envoy bootstrap.
const NOT_ENVOY: [&str; 2] = ["istio", "grafana"];
/// Bootstraps shipped today: six before the deployment shapes (envoy, ecds, grpc-deadline,
/// grpc-retry, and the two native comparisons), six with them (sidecar-inbound,
/// client-outbound, edge-gateway, chain-hop-1..3).
const AT_LEAST: usize = 12;
/// The deployment shapes a user copies, which must label ballast's metrics like envoy.yaml.
const SHAPES: [&str; 6] = [
    "envoy-config/sidecar-inbound.yaml",
    "envoy-config/client-outbound.yaml",
    "envoy-config/edge-gateway.yaml",
    "envoy-config/chain-hop-1.yaml",
    "envoy-config/chain-hop-2.yaml",
    "envoy-config/chain-hop-3.yaml",
];

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn alone() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every `.yaml` under `dir`, outside [`NOT_ENVOY`], relative to the repository root.
fn yaml_files(dir: &Path, relative: &str, found: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let rel = format!("{relative}/{name}");
        if path.is_dir() {
            if !(relative == "envoy-config" && NOT_ENVOY.contains(&name.as_str())) {
                yaml_files(&path, &rel, found);
            }
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            found.push(rel);
        }
    }
}

fn parse(relative: &str) -> Value {
    let text = std::fs::read_to_string(repo_file(relative)).unwrap();
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// The bootstraps under `envoy-config/`; any other YAML file must be an ECDS resource.
fn bootstraps() -> Vec<String> {
    let mut files = Vec::new();
    yaml_files(&repo_file("envoy-config"), "envoy-config", &mut files);
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let value = parse(&file);
        if value.get("static_resources").is_some() || value.get("dynamic_resources").is_some() {
            found.push(file);
        } else {
            assert!(
                value.get("resources").is_some(),
                "{file} is neither an Envoy bootstrap nor an ECDS resource file"
            );
        }
    }
    found
}

#[test]
fn every_shipped_bootstrap_passes_envoy_validate() {
    let _alone = alone();
    let files = bootstraps();
    println!("{} bootstraps: {files:?}", files.len());
    assert!(
        files.len() >= AT_LEAST,
        "found {} bootstraps under envoy-config/, expected at least {AT_LEAST}: {files:?}",
        files.len()
    );
    for shape in SHAPES {
        assert!(files.iter().any(|f| f == shape), "{shape} was not found");
    }
    // Three at a time: each validation starts V8 and compiles the .wasm.
    for chunk in files.chunks(3) {
        std::thread::scope(|scope| {
            let runs: Vec<_> = chunk
                .iter()
                .map(|file| scope.spawn(move || validate(&EnvoyConfig::from_file(file)?)))
                .collect();
            for (file, run) in chunk.iter().zip(runs) {
                let (status, output) = run
                    .join()
                    .unwrap()
                    .unwrap_or_else(|e| panic!("{file}: {e}"));
                assert!(
                    status.success(),
                    "{file}: envoy --mode validate said\n{output}"
                );
            }
        });
    }
}

#[test]
fn deployment_shapes_label_metrics_like_envoy_yaml() {
    let reference = parse("envoy-config/envoy.yaml");
    let rules = reference.get("stats_config").unwrap();
    for shape in SHAPES {
        assert_eq!(parse(shape).get("stats_config"), Some(rules), "{shape}");
    }
}

/// The JSON ballast gets from a bootstrap (its `google.protobuf.StringValue`).
fn embedded_policy(relative: &str) -> serde_json::Value {
    fn find(value: &Value) -> Option<String> {
        match value {
            Value::Mapping(map) => {
                let string_value = "type.googleapis.com/google.protobuf.StringValue";
                if value.get("@type").and_then(Value::as_str) == Some(string_value) {
                    return value.get("value").and_then(Value::as_str).map(String::from);
                }
                map.values().find_map(find)
            }
            Value::Sequence(items) => items.iter().find_map(find),
            _ => None,
        }
    }
    let text = find(&parse(relative)).unwrap_or_else(|| panic!("no plugin config in {relative}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

#[test]
fn embedded_policies_are_the_shipped_examples() {
    for (bootstrap, example) in [
        (
            "envoy-config/sidecar-inbound.yaml",
            "examples/configs/api-service.json",
        ),
        (
            "envoy-config/edge-gateway.yaml",
            "examples/configs/edge-gateway.json",
        ),
    ] {
        let text = std::fs::read_to_string(repo_file(example)).unwrap();
        let example_value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            embedded_policy(bootstrap),
            example_value,
            "{bootstrap} vs {example}"
        );
    }
}

/// `file` as shipped, in front of `upstream`, with `workers` workers.
fn start(file: &str, upstream: &RunningUpstream, workers: usize) -> Envoy {
    let config = EnvoyConfig::from_file(file)
        .unwrap()
        .upstream_port(upstream.addr().port())
        .concurrency(workers);
    Envoy::start(&config).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The demo upstream's echo of the request headers it received.
fn echoed_header(response: &Response, name: &str) -> Option<String> {
    let echo: serde_json::Value = serde_json::from_str(&response.text())
        .unwrap_or_else(|e| panic!("not the upstream's echo ({e}): {response:?}"));
    echo["headers"][name].as_str().map(String::from)
}

fn counter(envoy: &Envoy, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = envoy.prometheus().unwrap();
    sample(&text, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
}

const CLASSES: [&str; 3] = ["critical", "standard", "sheddable"];

/// The sidecar in front of a service of 8 slots × 50–60 ms (about 145 req/s), offered 3× that
/// for 3 s in a 20/50/30 mix of classes from the local, trusted peer: the limiter refuses what
/// the service cannot take (refusals never reach it), and critical work is what gets through.
#[test]
fn sidecar_inbound_limits_an_overload_and_sheds_the_least_important_first() {
    let _alone = alone();
    const CAPACITY: usize = 8;
    let upstream = ballast_e2e::upstreams::limited(CAPACITY, 50, 10).unwrap();
    let envoy = start("envoy-config/sidecar-inbound.yaml", &upstream, 2);
    let best_rps = CAPACITY as f64 * 1000.0 / 55.0;
    let run = paced::run_mixed(
        envoy.listener(),
        "/api/items",
        3.0 * best_rps,
        Duration::from_secs(3),
        200,
        |i| {
            let kind = match i % 10 {
                0 | 1 => 0,
                2..=6 => 1,
                _ => 2,
            };
            (
                kind,
                vec![("x-ballast-priority".into(), CLASSES[kind].into())],
            )
        },
    );
    let sent = run.outcomes.len();
    let all = run.summary(Duration::ZERO, Duration::from_secs(60));
    let success = |kind: usize| {
        let class = run.summary_of(kind, Duration::ZERO, Duration::from_secs(60));
        class.ok as f64 / class.sent as f64
    };
    let refused: Vec<&Response> = run
        .outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().ok())
        .filter(|r| r.status != 200)
        .collect();
    println!(
        "sidecar-inbound, 3x of {CAPACITY} slots for 3 s: {sent} sent, {} ok, {} refused; \
         success critical {:.3}, standard {:.3}, sheddable {:.3}; upstream saw {}, at most {} at once",
        all.ok,
        refused.len(),
        success(0),
        success(1),
        success(2),
        upstream.stats().total,
        upstream.stats().max_in_flight_seen,
    );
    assert!(
        run.outcomes.iter().all(|o| o.result.is_ok()),
        "every request is answered: {:?}",
        run.outcomes.iter().find(|o| o.result.is_err())
    );
    for response in &refused {
        assert!(
            response.status == 503 && response.header("x-ballast-rejected").is_some(),
            "a refusal is ballast's, and says why: {response:?}"
        );
    }
    assert!(
        refused.len() * 5 >= sent,
        "at 3x capacity ballast refuses much of the load: {} of {sent}",
        refused.len()
    );
    assert_eq!(
        upstream.stats().total as usize,
        all.ok,
        "what ballast refused never reached the service"
    );
    assert!(success(0) >= 0.9, "critical success {:.3}", success(0));
    assert!(success(2) <= 0.5, "sheddable success {:.3}", success(2));
    drop(envoy);
    upstream.stop().unwrap();
}

const RETRY_RATIO: f64 = 0.2;
const RETRY_FLOOR_PER_SECOND: f64 = 10.0;
const RETRY_TTL_SECONDS: f64 = 10.0;
/// Time each request spends in the proxy before ballast (Envoy's fault filter), which ballast
/// must take off the caller's deadline.
const DELAY_BEFORE_BALLAST_MS: u64 = 50;

/// The client side toward a backend failing every request: Envoy's route would retry each 3
/// times (4× the load); the budget holds the backend to the first attempts plus 20 % and the
/// floor. A caller's 500 ms deadline reaches the backend less the 50 ms spent in the proxy,
/// and a call without one gets the config's 5 s default instead of the route's 15 s.
#[test]
fn client_outbound_caps_retries_by_its_budget_and_forwards_a_shrunk_deadline() {
    let _alone = alone();
    let upstream = ballast_e2e::upstreams::failing(1.0).unwrap();
    let config = EnvoyConfig::from_file("envoy-config/client-outbound.yaml")
        .unwrap()
        .upstream_port(upstream.addr().port())
        .delay_before_plugin(DELAY_BEFORE_BALLAST_MS);
    let envoy = Envoy::start(&config).unwrap_or_else(|e| panic!("{e}"));

    let n = 300;
    let run = load::run(envoy.listener(), n, 16, |i| {
        ("GET", format!("/items/{}", i % 7), Vec::new())
    });
    let seen = upstream.stats().total as f64;
    let labels = [("policy_set", "backend")];
    let allowed = counter(&envoy, "ballast_retries_allowed", &labels);
    let bound =
        (n as f64 * (1.0 + RETRY_RATIO) + RETRY_FLOOR_PER_SECOND * RETRY_TTL_SECONDS) * 1.05;
    println!(
        "client-outbound, backend failing everything: {n} requests → backend saw {seen} \
         ({:.2}x; the route alone would make 4x), {allowed} retries allowed, bound {bound:.0}",
        seen / n as f64
    );
    assert_eq!(run.count_status(503), n, "the backend fails everything");
    assert!(
        seen <= bound,
        "backend saw {seen} for {n}: over the budget's {bound:.0}"
    );
    assert_eq!(
        allowed,
        seen - n as f64,
        "every extra request is a retry ballast allowed"
    );
    // Half the ratio's share at least: first attempts reach the shared budget up to a second
    // late (worker leases), which can only under-spend in a run this short.
    assert!(
        allowed >= 0.5 * RETRY_RATIO * n as f64,
        "the budget was spent, not bypassed: {allowed}"
    );
    let denied = run
        .results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .find(|r| {
            r.header("x-ballast-retry")
                .is_some_and(|v| v.starts_with("retry-denied=budget"))
        });
    assert!(
        denied.is_some(),
        "a refused retry is explained to the (trusted) caller"
    );

    let sent_at = epoch_ms();
    let response = request(
        envoy.listener(),
        "GET",
        "/items/1",
        &[("grpc-timeout", b"500m"), ("x-demo-fail-ratio", b"0")],
        b"",
    )
    .unwrap();
    assert_eq!(response.status, 200, "{response:?}");
    let told = echoed_header(&response, "grpc-timeout").expect("grpc-timeout forwarded");
    let told_ms = parse_grpc_timeout(&told).expect("well-formed") as f64 / 1e6;
    let absolute: u64 = echoed_header(&response, "x-ballast-deadline")
        .expect("x-ballast-deadline forwarded")
        .parse()
        .unwrap();
    println!("  grpc-timeout 500m reached the backend as {told} ({told_ms} ms)");
    // Envoy arms the fault delay's timer from a cached clock: it may end a few ms early.
    assert!(
        told_ms > 0.0 && told_ms <= (500 - DELAY_BEFORE_BALLAST_MS + 5) as f64,
        "the backend was told {told}: not 500 ms less the {DELAY_BEFORE_BALLAST_MS} ms spent"
    );
    assert!(
        absolute >= sent_at && absolute <= sent_at + 500,
        "{absolute} vs sent {sent_at}"
    );

    let response = request(
        envoy.listener(),
        "GET",
        "/items/2",
        &[("x-demo-fail-ratio", b"0")],
        b"",
    )
    .unwrap();
    let expected: u64 = echoed_header(&response, "x-envoy-expected-rq-timeout-ms")
        .expect("the router tells the backend its timeout")
        .parse()
        .unwrap();
    assert!(
        expected <= 5_000 && expected > 4_000,
        "a call without a deadline gets the 5 s default, not the route's 15 s: {expected} ms"
    );
    drop(envoy);
    upstream.stop().unwrap();
}

/// The edge, whose clients are trusted for nothing: a client claiming `critical` is forwarded
/// as its route's class, and the `sheddable` export route is held to 20/s (burst 5) with 429s
/// whatever the client claims, while the standard class passes.
#[test]
fn edge_gateway_ignores_a_clients_priority_and_rate_limits_a_class() {
    let _alone = alone();
    let upstream = ballast_e2e::upstreams::limited(0, 1, 0).unwrap();
    let envoy = start("envoy-config/edge-gateway.yaml", &upstream, 2);
    let claim: [(&str, &[u8]); 1] = [("x-ballast-priority", b"critical")];

    let response = request(envoy.listener(), "GET", "/api/items", &claim, b"").unwrap();
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(
        echoed_header(&response, "x-ballast-priority").as_deref(),
        Some("standard"),
        "the service behind sees the route's class, not the client's claim"
    );
    let response = request(envoy.listener(), "GET", "/api/checkout/cart", &[], b"").unwrap();
    assert_eq!(
        echoed_header(&response, "x-ballast-priority").as_deref(),
        Some("critical")
    );
    let untrusted = counter(
        &envoy,
        "ballast_shedding_priority_untrusted",
        &[("policy_set", "public")],
    );
    assert!(
        untrusted >= 1.0,
        "the claim was counted as untrusted: {untrusted}"
    );

    const EXPORTS: usize = 60;
    let run = load::run(envoy.listener(), EXPORTS, 6, |i| {
        let headers = vec![("x-ballast-priority", b"critical".to_vec())];
        ("GET", format!("/api/export/{i}.csv"), headers)
    });
    let (admitted, limited) = (run.count_status(200), run.count_status(429));
    let most = 5.0 + 20.0 * (run.elapsed.as_secs_f64() + 1.0);
    println!(
        "edge-gateway: {EXPORTS} exports claiming critical in {:?}: {admitted} admitted, \
         {limited} answered 429",
        run.elapsed
    );
    assert_eq!(admitted + limited, EXPORTS, "{:?}", run.results);
    assert!(
        limited > 0 && admitted >= 1,
        "the limit admits its burst and refuses the rest"
    );
    assert!(
        admitted as f64 <= most,
        "{admitted} admitted: more than 20/s and a burst of 5"
    );
    for response in run.results.iter().filter_map(|r| r.as_ref().ok()) {
        if response.status == 429 {
            assert_eq!(response.header("x-ballast-rejected"), Some("rate-limited"));
            assert!(response.header("retry-after").is_some(), "{response:?}");
        }
    }
    let shed = counter(
        &envoy,
        "ballast_class_shed",
        &[
            ("policy_set", "public"),
            ("class", "sheddable"),
            ("reason", "rate-limited"),
        ],
    );
    assert_eq!(shed, limited as f64);

    let standard = load::run(envoy.listener(), 20, 4, |i| {
        ("GET", format!("/api/items/{i}"), Vec::new())
    });
    assert_eq!(
        standard.count_status(200),
        20,
        "the standard class is not limited by it"
    );
    drop(envoy);
    upstream.stop().unwrap();
}
