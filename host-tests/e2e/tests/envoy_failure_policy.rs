//! What a user sees in real Envoy 1.40 with each `failure_policy`, when the plugin cannot start
//! (a bad configuration) and when its VM traps. README, "Failure policy", draws the advice from
//! these results.
//!
//! ballast itself cannot be made to trap (host calls never panic, `ballast_host_failures.rs`), so
//! the trap is the fixture plugin's (`x-fixture-op: panic`, a Rust panic in the proxy-wasm SDK)
//! loaded with the shipped bootstrap: what Envoy does with a crashed VM does not depend on
//! which plugin crashed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use ballast_demo_upstream::{spawn, RunningUpstream, UpstreamConfig};
use ballast_e2e::paths::fixture_wasm;
use ballast_e2e::{request, Envoy, EnvoyConfig, Response};
use std::time::{Duration, Instant};

const SHIPPED: &str = "envoy-config/envoy.yaml";
const POLICIES: [&str; 3] = ["FAIL_CLOSED", "FAIL_OPEN", "FAIL_RELOAD"];

fn config(upstream: &RunningUpstream, policy: &str) -> EnvoyConfig {
    EnvoyConfig::from_file(SHIPPED)
        .unwrap()
        .upstream_port(upstream.addr().port())
        .failure_policy(policy)
}

fn get(envoy: &Envoy, headers: &[(&str, &[u8])]) -> Response {
    request(envoy.listener(), "GET", "/api/a", headers, b"").unwrap()
}

/// Whether the request went through the plugin (the fixture adds `x-fixture-seen`, which the
/// demo upstream echoes).
fn through_plugin(response: &Response) -> bool {
    response.text().contains("x-fixture-seen")
}

#[test]
fn a_bad_configuration_stops_envoy_whatever_the_failure_policy() {
    let upstream = spawn(UpstreamConfig::default()).unwrap();
    let bad =
        r#"{"policy_sets": {"a": {"concurrency": {"algorithm": "fixed", "initial_limit": -1}}}}"#;
    for policy in POLICIES {
        let error = match Envoy::start(&config(&upstream, policy).plugin_json(bad)) {
            Ok(_) => panic!("{policy}: Envoy started with a configuration ballast refuses"),
            Err(error) => error,
        };
        assert!(
            error.contains("exited during start-up"),
            "{policy}: {error}"
        );
        assert!(
            error.contains("invalid configuration: policy_sets.a.concurrency.initial_limit"),
            "{policy}: ballast's reason, with the JSON path, is in Envoy's log: {error}"
        );
        assert!(
            error.contains("Unable to create Wasm plugin ballast"),
            "{policy}: {error}"
        );
    }
}

/// Sends a request every 250 ms for `span`, returning (elapsed, response) pairs.
fn sample(envoy: &Envoy, span: Duration) -> Vec<(Duration, Response)> {
    let start = Instant::now();
    let mut out = Vec::new();
    while start.elapsed() < span {
        out.push((start.elapsed(), get(envoy, &[])));
        std::thread::sleep(Duration::from_millis(250));
    }
    out
}

fn statuses(samples: &[(Duration, Response)]) -> Vec<(u128, u16, bool)> {
    samples
        .iter()
        .map(|(t, r)| (t.as_millis(), r.status, through_plugin(r)))
        .collect()
}

#[test]
fn a_trapping_vm_under_each_failure_policy() {
    let upstream = spawn(UpstreamConfig::default()).unwrap();
    for policy in POLICIES {
        let envoy = Envoy::start(
            &config(&upstream, policy)
                .wasm(fixture_wasm().unwrap())
                .plugin_json("tick_ms=0"),
        )
        .unwrap_or_else(|e| panic!("{policy}: {e}"));
        let before = get(&envoy, &[]);
        assert_eq!(before.status, 200, "{policy}");
        assert!(through_plugin(&before), "{policy}: the plugin runs");

        let trapped = get(&envoy, &[("x-fixture-op", b"panic".as_slice())]);
        assert_eq!(
            trapped.status, 503,
            "{policy}: the request that trapped the VM"
        );
        let after = sample(&envoy, Duration::from_secs(4));
        let seen = statuses(&after);
        match policy {
            // Every later request is refused until Envoy restarts.
            "FAIL_CLOSED" => assert!(
                after.iter().all(|(_, r)| r.status == 503),
                "{policy}: {seen:?}"
            ),
            // Every later request passes, none through the plugin: no protection.
            "FAIL_OPEN" => assert!(
                after
                    .iter()
                    .all(|(_, r)| r.status == 200 && !through_plugin(r)),
                "{policy}: {seen:?}"
            ),
            // 503 while Envoy waits to reload, then a fresh VM serves every request again.
            _ => {
                let back = after
                    .iter()
                    .position(|(_, r)| r.status == 200 && through_plugin(r))
                    .unwrap_or_else(|| panic!("{policy}: no fresh VM within 4 s: {seen:?}"));
                assert!(
                    after[..back].iter().all(|(_, r)| r.status == 503),
                    "{policy}: {seen:?}"
                );
                assert!(
                    after[back..]
                        .iter()
                        .all(|(_, r)| r.status == 200 && through_plugin(r)),
                    "{policy}: {seen:?}"
                );
                eprintln!(
                    "{policy}: fresh VM after {} ms ({back} requests refused meanwhile)",
                    after[back].0.as_millis()
                );
            }
        }
    }
}
