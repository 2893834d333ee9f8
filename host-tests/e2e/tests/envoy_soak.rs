//! A minute of mixed traffic through real Envoy 1.40 (`--concurrency 2`) with every policy of
//! ballast on: the VM is never reloaded, nothing panics, the host never answers a status the
//! plugin's host layer does not expect, and every 5xx the client sees is a policy decision
//! (it carries `x-ballast-rejected`), never an accident.
//!
//! Why: unit and harness tests show each path; only a long run through the real proxy shows
//! that they hold together under Envoy's scheduling, across both workers, for a while. The mix
//! has every priority (and a value no class has), deadlines from ample to already spent,
//! malformed ones, POSTs, retry marks and requests on a path without a policy set.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use ballast_demo_upstream::{spawn, Settings, UpstreamConfig};
use ballast_e2e::paced;
use ballast_e2e::prometheus::sample;
use ballast_e2e::{Envoy, EnvoyConfig};
use std::time::Duration;

const DURATION: Duration = Duration::from_secs(60);
const RATE: f64 = 200.0;
const PLUGIN: &str = r#"{
  "priority": {"classes": ["critical", "normal", "sheddable"], "default": "normal"},
  "policy_sets": {
    "api": {
      "retry_budget": {}, "retry": {"max_retries_per_request": 3, "explain_header": "x-ballast-retry"},
      "concurrency": {}, "deadline": {},
      "shedding": {"rate_limits": {"sheddable": {"per_second": 20, "burst": 5, "scope": "shared"}}}},
    "web": {}},
  "routes": [{"match": {"route_name": {"exact": "api"}}, "policy_set": "api"}],
  "default_policy_set": "web"}"#;

/// Request `i`'s headers: a rotating mix of every kind of hint.
fn mix(i: usize) -> (usize, Vec<(String, String)>) {
    let priority = ["critical", "normal", "sheddable", "vip"][i % 4];
    let deadline = ["5S", "200m", "1m", "junk", "", "30S", "0m"][i % 7];
    let mut headers = vec![("x-ballast-priority".to_string(), priority.to_string())];
    if !deadline.is_empty() {
        headers.push(("grpc-timeout".to_string(), deadline.to_string()));
    }
    if i.is_multiple_of(5) {
        headers.push(("x-envoy-attempt-count".to_string(), "2".to_string()));
    }
    (i % 7, headers)
}

#[test]
fn a_minute_of_mixed_traffic_with_every_policy_on() {
    let upstream = spawn(UpstreamConfig {
        settings: Settings {
            capacity: 20,
            service_time_ms: 5,
            service_jitter_ms: 10,
            ..Settings::default()
        },
        ..UpstreamConfig::default()
    })
    .unwrap();
    let config = EnvoyConfig::from_file("envoy-config/envoy.yaml")
        .unwrap()
        .upstream_port(upstream.addr().port())
        .concurrency(2)
        .plugin_json(PLUGIN);
    let envoy = Envoy::start(&config).unwrap_or_else(|e| panic!("{e}"));
    let run = paced::run_mixed(envoy.listener(), "/api/items", RATE, DURATION, 32, mix);
    let mut by_status = std::collections::BTreeMap::new();
    let mut accidents = Vec::new();
    let mut client_errors = 0;
    for outcome in &run.outcomes {
        match &outcome.result {
            Ok(response) => {
                *by_status.entry(response.status).or_insert(0usize) += 1;
                if response.status >= 500 && response.header("x-ballast-rejected").is_none() {
                    accidents.push((response.status, response.text()));
                }
            }
            Err(_) => client_errors += 1,
        }
    }
    let text = envoy.prometheus().unwrap();
    let metric = |name: &str| sample(&text, name, &[]).unwrap_or(0.0);
    println!(
        "soak: {} requests over {DURATION:?} at {RATE}/s ({} late); by status {by_status:?}; \
         client errors {client_errors}; vm reloads {}; host errors {}",
        run.outcomes.len(),
        run.late,
        metric("envoy_wasm_ballast_vm_reload"),
        metric("ballast_host_errors_total"),
    );
    assert_eq!(client_errors, 0, "every request got an answer");
    assert!(
        accidents.is_empty(),
        "5xx that were no policy decision: {:?}",
        &accidents[..accidents.len().min(5)]
    );
    assert_eq!(
        metric("envoy_wasm_ballast_vm_reload"),
        0.0,
        "the VM was reloaded"
    );
    assert_eq!(
        metric("ballast_host_errors_total"),
        0.0,
        "Envoy answered a status the host layer does not expect"
    );
    assert!(!envoy.logs().contains("panicked"), "{}", envoy.log_tail(30));
    // The mix did reach every policy: answered by the upstream, and by ballast's deadline stage.
    assert!(by_status.get(&200).copied().unwrap_or(0) > run.outcomes.len() / 2);
    assert!(
        by_status.get(&504).copied().unwrap_or(0) > 0,
        "spent deadlines answered"
    );
}
