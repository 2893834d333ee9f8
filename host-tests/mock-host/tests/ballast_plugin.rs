//! The real ballast plugin (`target/ballast.wasm`) through the harness API: configuration
//! accepted and rejected with its JSON path, routing to policy sets, metrics aggregated over
//! workers, and requests passing unchanged. This is the shape of test a user writes for their
//! own policy configuration (see README, "Test your policy in the harness").
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use ballast_mock_host::{Action, Host, LogLevel, PluginModule};

fn plugin() -> PluginModule {
    common::ballast_plugin()
}

fn example(name: &str) -> String {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/configs")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

fn host(workers: usize, config: &str) -> Host {
    let mut host = Host::builder(&plugin())
        .workers(workers)
        .plugin_config(config)
        .root_id("ballast")
        .vm_id("ballast")
        .build()
        .unwrap();
    let outcome = host.start().unwrap();
    let logs: Vec<&str> = outcome.logs.iter().map(|l| l.message.as_str()).collect();
    assert!(
        outcome.all_ok(),
        "plugin refused its configuration: {logs:?}"
    );
    host
}

fn requests_total(host: &Host, set: &str) -> u64 {
    host.counter(&format!("ballast_requests_total.policy_set=.={set};.;"))
        .unwrap_or_else(|| panic!("no counter for policy set {set}: {:?}", host.metrics()))
}

/// Sends one request through `worker` and returns the action; asserts nothing was changed.
fn send(
    host: &mut Host,
    worker: usize,
    headers: &[(&str, &str)],
    route_name: Option<&str>,
) -> Action {
    let mut stream = host.http_stream(worker).unwrap();
    if let Some(name) = route_name {
        stream.set_property("xds.route_name", name).unwrap();
    }
    let action = stream.request_headers(headers, true).unwrap();
    assert!(
        stream.local_response().is_none(),
        "nothing rejects one request at a time"
    );
    // Only the retry policy may add a header (Envoy's retry cap), and shedding the class it
    // gave the request (the default: these requests carry none); nothing else changes.
    let now = stream.request_headers_now();
    if let Some((_, class)) = now.iter().find(|(k, _)| k == "x-ballast-priority") {
        assert_eq!(
            class, "standard",
            "a request without a class gets the default"
        );
    }
    let seen: Vec<(String, String)> = now
        .into_iter()
        .filter(|(k, _)| k != "x-envoy-max-retries" && k != "x-ballast-priority")
        .collect();
    let sent: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(seen, sent, "the request passes through otherwise unchanged");
    assert_eq!(
        stream
            .response_headers(&[(":status", "200")], true)
            .unwrap(),
        Action::Continue
    );
    stream.finish().unwrap();
    action
}

/// Every example in `examples/configs/`, found by listing the directory (so a new one cannot be
/// missed), is accepted by the real .wasm's `on_configure` on every worker, which logs its
/// summary. (`filter/policy/tests/schema.rs` holds the same files to the JSON Schema.)
#[test]
fn every_example_config_is_accepted_by_the_plugin() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/configs");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .collect();
    names.sort();
    assert!(
        names.len() >= 9,
        "examples/configs holds the shipped examples: {names:?}"
    );
    for name in names {
        let mut host = Host::builder(&plugin())
            .workers(2)
            .plugin_config(example(&name))
            .root_id("ballast")
            .vm_id("ballast")
            .build()
            .unwrap();
        let outcome = host.start().unwrap();
        let logs: Vec<&str> = outcome.logs.iter().map(|l| l.message.as_str()).collect();
        assert!(outcome.all_ok(), "{name} refused: {logs:?}");
        assert!(host.logged("configured: policy sets"), "{name}: {logs:?}");
    }
}

#[test]
fn accepted_configuration_is_summarised_in_the_log() {
    let host = host(1, &example("full.json"));
    assert!(
        host.logged("configured: policy sets {checkout[retry_budget,retry,concurrency,deadline,shedding] search[concurrency,shedding] passthrough}, 3 route(s), default passthrough"),
        "{:?}",
        host.logs()
    );
    assert!(host.logs_at(LogLevel::Error).is_empty());
}

#[test]
fn rejected_configuration_names_path_and_reason_on_every_worker() {
    let config = r#"{"policy_sets": {"a": {}}, "routes": [{"match": {"headers": [{"name": "X-Up", "present": true}]}, "policy_set": "a"}]}"#;
    let mut host = Host::builder(&plugin())
        .workers(2)
        .plugin_config(config)
        .build()
        .unwrap();
    let outcome = host.start().unwrap();
    assert!(
        outcome
            .workers
            .iter()
            .all(|w| w.vm_started && !w.configured),
        "{:?}",
        outcome.workers
    );
    let errors = common::start_errors(&outcome);
    assert_eq!(
        errors,
        vec![
            "invalid configuration: routes[0].match.headers[0].name: `X-Up` must be lower-case";
            2
        ]
    );
}

#[test]
fn routes_requests_to_policy_sets_like_the_config_says() {
    let mut host = host(1, &example("full.json"));
    let canary = [
        (":method", "POST"),
        (":path", "/checkout/v3/confirm?x=1"),
        (":authority", "eu.shop.example.com:443"),
        ("x-canary", "1"),
    ];
    assert_eq!(send(&mut host, 0, &canary, None), Action::Continue);
    assert_eq!(requests_total(&host, "checkout"), 1);

    // Same request with a debug header: the canary rule requires it absent → default.
    let mut debug = canary.to_vec();
    debug.push(("x-debug", "1"));
    send(&mut host, 0, &debug, None);
    assert_eq!(requests_total(&host, "passthrough"), 1);

    // Envoy's route name wins first, whatever the request looks like.
    send(
        &mut host,
        0,
        &[(":method", "GET"), (":path", "/x"), (":authority", "a")],
        Some("checkout"),
    );
    assert_eq!(requests_total(&host, "checkout"), 2);

    // Inverted header regex: tenants that are not `t-<digits>` go to search.
    send(
        &mut host,
        0,
        &[
            (":method", "GET"),
            (":path", "/search"),
            (":authority", "a"),
            ("x-tenant", "internal"),
        ],
        None,
    );
    send(
        &mut host,
        0,
        &[
            (":method", "GET"),
            (":path", "/search"),
            (":authority", "a"),
            ("x-tenant", "t-9"),
        ],
        None,
    );
    assert_eq!(requests_total(&host, "search"), 1);
    assert_eq!(requests_total(&host, "passthrough"), 2);
    assert_eq!(host.counter("ballast_requests_unmatched_total"), Some(0));
}

#[test]
fn metrics_aggregate_across_workers() {
    let mut host = host(3, &example("two-routes.json"));
    for i in 0..30 {
        let path = if i % 3 == 0 {
            "/api/users"
        } else {
            "/static/app.js"
        };
        send(
            &mut host,
            i % 3,
            &[(":method", "GET"), (":path", path), (":authority", "a")],
            None,
        );
    }
    assert_eq!(requests_total(&host, "api"), 10);
    assert_eq!(requests_total(&host, "static"), 20);
}

#[test]
fn empty_configuration_passes_everything_as_unmatched() {
    let mut host = host(1, "");
    for _ in 0..3 {
        send(
            &mut host,
            0,
            &[(":method", "GET"), (":path", "/"), (":authority", "a")],
            None,
        );
    }
    assert_eq!(host.counter("ballast_requests_unmatched_total"), Some(3));
}

#[test]
fn requests_without_pseudo_headers_do_not_crash_the_vm() {
    // A malformed request (no :path, no :authority) must not trap: routing treats missing
    // attributes as not matching and the default applies.
    let mut host = host(1, &example("full.json"));
    let mut stream = host.http_stream(0).unwrap();
    assert_eq!(
        stream
            .request_headers(&[("x-tenant", "t-1")], true)
            .unwrap(),
        Action::Continue
    );
    stream.finish().unwrap();
    assert_eq!(requests_total(&host, "passthrough"), 1);
}
