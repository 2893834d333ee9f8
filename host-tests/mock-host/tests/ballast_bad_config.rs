//! The bad-configuration table: out-of-range, non-finite, mistyped and negative numbers, empty
//! and duplicated names, unknown fields, absurd nesting, dangling references, each given to the
//! real plugin in the harness on two workers.
//!
//! Why: Envoy refuses a configuration whose `on_configure` returns false, and keeps serving with
//! the last good one; what the operator has then is the log line. So each must be refused (never
//! half-applied, never a trap) and its message must name the JSON path and the reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use ballast_mock_host::Host;

/// Bad configurations: each is refused on every worker, with a message that names where and
/// why (Envoy then refuses the configuration and keeps the last good one).
#[test]
fn every_bad_configuration_is_refused_with_its_path() {
    let nested: String = "[".repeat(200) + &"]".repeat(200);
    let nested_config =
        format!(r#"{{"policy_sets": {{"api": {{"retry": {{"idempotent_methods": {nested}}}}}}}}}"#);
    let rows: Vec<(&str, String, &str)> = vec![
        ("not JSON", "policy_sets: api".into(), "JSON"),
        (
            "number out of range",
            r#"{"policy_sets": {"api": {"retry_budget": {"ratio": 1e999}}}}"#.into(),
            "policy_sets",
        ),
        (
            "negative ratio",
            r#"{"policy_sets": {"api": {"retry_budget": {"ratio": -0.1}}}}"#.into(),
            "policy_sets.api.retry_budget.ratio",
        ),
        (
            "ratio as text",
            r#"{"policy_sets": {"api": {"retry_budget": {"ratio": "NaN"}}}}"#.into(),
            "policy_sets.api.retry_budget",
        ),
        (
            "no classes",
            r#"{"priority": {"classes": []}}"#.into(),
            "priority.classes",
        ),
        (
            "duplicate class",
            r#"{"priority": {"classes": ["a", "a"]}}"#.into(),
            "priority.classes",
        ),
        (
            "duplicate policy set",
            r#"{"policy_sets": {"api": {}, "api": {"retry": {}}}}"#.into(),
            "policy_sets",
        ),
        (
            "unknown field at the root",
            r#"{"policy_set": {}}"#.into(),
            "policy_set",
        ),
        (
            "unknown field in a section",
            r#"{"policy_sets": {"api": {"retry": {"max_retry": 3}}}}"#.into(),
            "policy_sets.api.retry",
        ),
        (
            "limit of zero",
            r#"{"policy_sets": {"api": {"concurrency": {"max_limit": 0}}}}"#.into(),
            "policy_sets.api.concurrency.max_limit",
        ),
        (
            "window too short",
            r#"{"policy_sets": {"api": {"concurrency": {"window": "1ms"}}}}"#.into(),
            "policy_sets.api.concurrency.window",
        ),
        (
            "negative duration",
            r#"{"policy_sets": {"api": {"retry_budget": {"ttl": "-10s"}}}}"#.into(),
            "policy_sets.api.retry_budget.ttl: `-10s` is negative",
        ),
        (
            "a boolean as text",
            r#"{"policy_sets": {"api": {"retry": {"mark_final_failures": "yes"}}}}"#.into(),
            "policy_sets.api.retry",
        ),
        ("nested 200 deep", nested_config, "policy_sets"),
        (
            "default set that does not exist",
            r#"{"policy_sets": {"api": {}}, "default_policy_set": "web"}"#.into(),
            "default_policy_set",
        ),
    ];
    for (name, config, path) in rows {
        let mut host = Host::builder(&common::ballast_plugin())
            .workers(2)
            .plugin_config(config.as_str())
            .build()
            .unwrap();
        let outcome = host.start().unwrap();
        assert!(
            outcome
                .workers
                .iter()
                .all(|w| w.vm_started && !w.configured),
            "{name}: accepted {config}"
        );
        let errors = common::start_errors(&outcome);
        assert_eq!(errors.len(), 2, "{name}: one error per worker: {errors:?}");
        assert!(
            errors
                .iter()
                .all(|e| e.starts_with("invalid configuration: ") && e.contains(path)),
            "{name}: {errors:?} should name `{path}`"
        );
    }
}
