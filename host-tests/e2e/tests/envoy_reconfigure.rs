//! ballast's configuration replaced at runtime in real Envoy 1.40, through ECDS from a file
//! (`envoy-config/ecds.yaml`, the way Istio delivers a WasmPlugin), while requests wait in its
//! queue: none is lost (every one answered 200 by the upstream), none counted twice (requests
//! and the in-flight gauge add up), new requests get the new configuration, the old root
//! context is shut down once its last request ends, and a configuration ballast refuses is
//! rejected while the previous one keeps serving.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use ballast_demo_upstream::{spawn, UpstreamConfig};
use ballast_e2e::prometheus::sample;
use ballast_e2e::{get, request, Envoy, EnvoyConfig, Response};
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A fixed limit, so who waits is certain.
fn limiter(limit: u32) -> String {
    format!(
        r#"{{"policy_sets": {{"api": {{"concurrency": {{"algorithm": "fixed", "initial_limit": {limit},
            "queue": {{"size": 20, "max_wait": "10s"}}}}}}}},
          "default_policy_set": "api"}}"#
    )
}

/// Writes the ECDS resource with ballast configuration `json` into `dir` the way a user should:
/// a new file, renamed over the watched one.
fn publish(dir: &Path, json: &str) {
    let text = EnvoyConfig::from_file("envoy-config/ballast-ecds.yaml")
        .unwrap()
        .plugin_json(json)
        .render(0, 0)
        .unwrap();
    let staged = dir.join(".ballast-ecds.yaml.new");
    std::fs::write(&staged, text).unwrap();
    std::fs::rename(&staged, dir.join("ballast-ecds.yaml")).unwrap();
}

fn ecds_stat(envoy: &Envoy, name: &str) -> u64 {
    let text = get(envoy.admin(), "/stats?filter=extension_config_discovery")
        .unwrap()
        .text();
    let key = format!("extension_config_discovery.http_filter.ballast.{name}: ");
    text.lines()
        .find_map(|l| l.strip_prefix(key.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits (at most 10 s) until `done` holds.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn gauge(envoy: &Envoy, name: &str) -> f64 {
    let text = envoy.prometheus().unwrap();
    sample(&text, name, &[("policy_set", "api")]).unwrap_or(-1.0)
}

/// A request the upstream answers after `delay_ms`, sent from a thread.
fn send(envoy: &Envoy, delay_ms: u64) -> JoinHandle<(Response, Duration)> {
    let addr = envoy.listener();
    std::thread::spawn(move || {
        let start = Instant::now();
        let delay = delay_ms.to_string();
        let response = request(
            addr,
            "GET",
            "/a",
            &[("x-demo-delay-ms", delay.as_bytes())],
            b"",
        )
        .unwrap();
        (response, start.elapsed())
    })
}

#[test]
fn a_configuration_replaced_while_requests_wait_loses_none() {
    let upstream = spawn(UpstreamConfig::default()).unwrap();
    let dir = tempdir();
    publish(&dir, &limiter(2));
    let resource = dir.join("ballast-ecds.yaml");
    let config = EnvoyConfig::from_file("envoy-config/ecds.yaml")
        .unwrap()
        .upstream_port(upstream.addr().port())
        .concurrency(2)
        .substitute(
            "path: envoy-config/ballast-ecds.yaml",
            &format!("path: {}", resource.display()),
        )
        .substitute(
            "watched_directory: { path: envoy-config }",
            &format!("watched_directory: {{ path: {} }}", dir.display()),
        );
    let envoy = Envoy::start(&config).unwrap_or_else(|e| panic!("{e}"));
    let reloads = ecds_stat(&envoy, "config_reload");

    // Two slow requests hold the limit of 2; three more wait in the queue.
    let holders: Vec<_> = (0..2).map(|_| send(&envoy, 1_500)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let waiters: Vec<_> = (0..3).map(|_| send(&envoy, 50)).collect();
    wait_for("3 requests queued", || {
        gauge(&envoy, "ballast_concurrency_queued") == 3.0
    });

    // The new configuration: a limit of 20.
    publish(&dir, &limiter(20));
    wait_for("the update applied", || {
        ecds_stat(&envoy, "config_reload") > reloads
    });
    let newcomers: Vec<_> = (0..5).map(|_| send(&envoy, 50)).collect();
    let newcomers: Vec<_> = newcomers.into_iter().map(|h| h.join().unwrap()).collect();
    for (response, took) in &newcomers {
        assert_eq!(response.status, 200, "{}", response.text());
        assert!(
            *took < Duration::from_millis(1_200),
            "a new request is admitted under the new limit at once, not queued behind the old \
             holders: took {took:?}"
        );
    }
    for (i, handle) in holders.into_iter().chain(waiters).enumerate() {
        let (response, took) = handle.join().unwrap();
        assert_eq!(
            response.status,
            200,
            "request {i} (begun under the old configuration): {}",
            response.text()
        );
        if i >= 2 {
            assert!(
                took >= Duration::from_millis(1_000),
                "request {i} waited for a slot of the old configuration: {took:?}"
            );
        }
    }
    assert_eq!(
        upstream.stats().total,
        10,
        "every request reached the upstream once"
    );
    wait_for("in flight and queued back to 0", || {
        gauge(&envoy, "ballast_concurrency_in_flight") == 0.0
            && gauge(&envoy, "ballast_concurrency_queued") == 0.0
    });
    let text = envoy.prometheus().unwrap();
    assert_eq!(
        sample(&text, "ballast_requests_total", &[("policy_set", "api")]),
        Some(10.0),
        "each request counted once, whichever configuration served it"
    );
    assert_eq!(
        sample(
            &text,
            "ballast_concurrency_rejected",
            &[("policy_set", "api")]
        ),
        Some(0.0)
    );
    wait_for("the old root context shut down", || {
        envoy.logs().contains("root context done")
    });

    // A configuration ballast refuses: rejected, and the last good one keeps serving.
    let rejected = ecds_stat(&envoy, "update_rejected");
    publish(
        &dir,
        r#"{"policy_sets": {"api": {"concurrency": {"algorithm": "fixed", "initial_limit": 0}}}, "default_policy_set": "api"}"#,
    );
    wait_for("the bad update rejected", || {
        ecds_stat(&envoy, "update_rejected") > rejected
    });
    assert!(
        envoy
            .logs()
            .contains("invalid configuration: policy_sets.api.concurrency.initial_limit"),
        "ballast's reason is in Envoy's log"
    );
    let burst: Vec<_> = (0..4).map(|_| send(&envoy, 300)).collect();
    for handle in burst {
        let (response, took) = handle.join().unwrap();
        assert_eq!(response.status, 200);
        assert!(
            took < Duration::from_millis(1_200),
            "limit 20 still: {took:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ballast-ecds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
