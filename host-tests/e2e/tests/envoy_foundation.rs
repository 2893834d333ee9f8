//! The foundation, proven in real Envoy 1.40: the plugin loads from the shipped config, requests
//! pass, routing picks policy sets, metrics reach `/stats/prometheus`, and a bad configuration is
//! refused by `envoy --mode validate` with ballast's path-naming error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use ballast_demo_upstream::{spawn, RunningUpstream, UpstreamConfig};
use ballast_e2e::envoy::validate;
use ballast_e2e::prometheus::sample;
use ballast_e2e::{get, request, Envoy, EnvoyConfig};

const SHIPPED: &str = "envoy-config/envoy.yaml";

fn upstream() -> RunningUpstream {
    spawn(UpstreamConfig::default()).expect("demo upstream starts")
}

fn start(upstream: &RunningUpstream, json: Option<&str>) -> Envoy {
    let mut config = EnvoyConfig::from_file(SHIPPED)
        .unwrap()
        .upstream_port(upstream.addr().port())
        .concurrency(2);
    if let Some(json) = json {
        config = config.plugin_json(json);
    }
    Envoy::start(&config).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn request_passes_through_and_is_counted_per_policy_set() {
    let upstream = upstream();
    let envoy = start(&upstream, None);

    let response = get(envoy.listener(), "/api/hello?x=1").unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    let echoed: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(echoed["served_by"], "demo-upstream");
    assert_eq!(echoed["path"], "/api/hello");

    // Two Envoy routes ("api" for /api/, "default" for the rest) map to two policy sets
    // through the plugin's `route_name` rule and its default.
    for _ in 0..4 {
        assert_eq!(get(envoy.listener(), "/api/x").unwrap().status, 200);
    }
    for _ in 0..3 {
        assert_eq!(get(envoy.listener(), "/web/page").unwrap().status, 200);
    }
    let text = envoy.prometheus().unwrap();
    let api = sample(&text, "ballast_requests_total", &[("policy_set", "api")]);
    let web = sample(&text, "ballast_requests_total", &[("policy_set", "web")]);
    assert_eq!(api, Some(5.0), "api count in:\n{text}");
    assert_eq!(web, Some(3.0), "web count in:\n{text}");
    assert_eq!(
        sample(&text, "ballast_requests_unmatched_total", &[]),
        Some(0.0)
    );
    assert_eq!(
        upstream.stats().total,
        8,
        "every request reached the upstream"
    );
    assert!(
        envoy
            .logs()
            .contains("configured: policy sets {api[retry_budget,retry] web}"),
        "configure summary missing:\n{}",
        envoy.log_tail(30)
    );
}

#[test]
fn plugin_rules_on_path_header_and_method_route_in_envoy() {
    let upstream = upstream();
    let json = r#"{
  "policy_sets": { "writes": {}, "tenant": {}, "rest": {} },
  "routes": [
    { "match": { "method": ["POST", "PUT"] }, "policy_set": "writes" },
    { "match": { "headers": [{ "name": "x-tenant", "prefix": "t-" }] }, "policy_set": "tenant" }
  ],
  "default_policy_set": "rest"
}"#;
    let envoy = start(&upstream, Some(json));
    let post = request(envoy.listener(), "POST", "/a", &[], b"body").unwrap();
    assert_eq!(post.status, 200);
    let tenant = request(envoy.listener(), "GET", "/a", &[("x-tenant", b"t-7")], b"").unwrap();
    assert_eq!(tenant.status, 200);
    // A header value with a non-UTF-8 byte: the plugin must read it without crashing the VM.
    let odd = request(
        envoy.listener(),
        "GET",
        "/a",
        &[("x-tenant", b"t-\xff")],
        b"",
    )
    .unwrap();
    assert_eq!(odd.status, 200, "{}", odd.text());
    let plain = get(envoy.listener(), "/a").unwrap();
    assert_eq!(plain.status, 200);

    let text = envoy.prometheus().unwrap();
    let count = |set| sample(&text, "ballast_requests_total", &[("policy_set", set)]);
    assert_eq!(count("writes"), Some(1.0), "{text}");
    assert_eq!(count("tenant"), Some(2.0), "{text}");
    assert_eq!(count("rest"), Some(1.0), "{text}");
    assert_eq!(
        sample(&text, "envoy_wasm_ballast_vm_reload", &[]).unwrap_or(0.0),
        0.0,
        "the VM must not have crashed"
    );
    assert!(!envoy.logs().contains("panicked"), "{}", envoy.log_tail(30));
}

#[test]
fn shipped_config_validates() {
    let config = EnvoyConfig::from_file(SHIPPED).unwrap();
    let (status, output) = validate(&config).unwrap();
    assert!(status.success(), "envoy --mode validate failed:\n{output}");
}

#[test]
fn bad_plugin_config_is_refused_with_its_json_path() {
    let rows = [
        (
            r#"{"policy_sets": {"api": {}}, "routes": [{"match": {"path": {"prefix": "api"}}, "policy_set": "api"}]}"#,
            r#"routes[0].match.path.prefix: must start with "/""#,
        ),
        (
            r#"{"policy_sets": {"api": {}}, "default_policy_set": "apx"}"#,
            "default_policy_set: unknown policy set `apx` (defined: api)",
        ),
        (
            r#"{"polcy_sets": {}}"#,
            "polcy_sets: unknown field `polcy_sets`",
        ),
    ];
    for (json, expected) in rows {
        let config = EnvoyConfig::from_file(SHIPPED).unwrap().plugin_json(json);
        let (status, output) = validate(&config).unwrap();
        assert!(!status.success(), "Envoy accepted {json}:\n{output}");
        assert!(
            output.contains(&format!("invalid configuration: {expected}")),
            "expected `{expected}` in:\n{output}"
        );
    }
}

#[test]
fn bad_plugin_config_stops_envoy_from_starting() {
    let upstream = upstream();
    let config = EnvoyConfig::from_file(SHIPPED)
        .unwrap()
        .upstream_port(upstream.addr().port())
        .plugin_json(r#"{"dry_run": "yes"}"#);
    let err = match Envoy::start(&config) {
        Ok(_) => panic!("Envoy started with an invalid plugin configuration"),
        Err(err) => err,
    };
    assert!(err.contains("exited during start-up"), "{err}");
    assert!(
        err.contains(
            "invalid configuration: dry_run: invalid type: string \"yes\", expected a boolean"
        ),
        "{err}"
    );
}
