//! Shape errors in serde's words, at their paths, and what `null` and absence mean.

use crate::config::Config;
use crate::test_support::test;

/// Shape errors: each row's document has one mistake, reported at its path in serde's words.
#[test]
fn shape_errors_name_path_and_reason() {
    let rows = [
        (
            r#"{"dry_run": null}"#,
            "dry_run",
            "invalid type: null, expected a boolean",
        ),
        (
            r#"{"metric_prefix": 5}"#,
            "metric_prefix",
            "invalid type: integer `5`, expected a string",
        ),
        (
            r#"{"metric_prefix": -5}"#,
            "metric_prefix",
            "invalid type: integer `-5`, expected a string",
        ),
        (
            r#"{"metric_prefix": true}"#,
            "metric_prefix",
            "invalid type: boolean `true`, expected a string",
        ),
        (
            r#"{"metric_prefix": "a\"b"}"#,
            "metric_prefix",
            r#"must match"#,
        ),
        (
            r#"{"dry_run": "a\"b"}"#,
            "dry_run",
            r#"invalid type: string "a\"b", expected a boolean"#,
        ),
        (
            r#"{"routes": {}}"#,
            "routes",
            "invalid type: map, expected a sequence",
        ),
        (
            r#"{"policy_sets": []}"#,
            "policy_sets",
            "invalid type: sequence, expected an object of named entries",
        ),
        (
            r#"{"priority": [["a", "b"]]}"#,
            "priority",
            "invalid type: sequence, expected an object",
        ),
        (
            r#"{"priority": "a"}"#,
            "priority",
            r#"invalid type: string "a", expected an object"#,
        ),
        (
            r#"{"priority": {"classes": ["a"], "classes": ["b"]}}"#,
            "priority",
            "duplicate field `classes`",
        ),
        (
            r#"{"priority": {"classes": ["a"], "default": null, "default": "a"}}"#,
            "priority",
            "duplicate field `default`",
        ),
        (
            r#"{"priority": {"default": "a"}}"#,
            "priority",
            "missing field `classes`",
        ),
        (
            r#"{"trusted_peers": {"cidrs": []}}"#,
            "trusted_peers.cidrs",
            "unknown field `cidrs`, expected `source_cidrs` or `principals`",
        ),
        (
            r#"{"policy_sets": {"a": {"retry": {"max_retries_per_request": 5.0}}}}"#,
            "policy_sets.a.retry.max_retries_per_request",
            "invalid type: floating point `5.0`, expected u32",
        ),
        (
            r#"{"policy_sets": {"a": {"retry": {"max_retries_per_request": 4294967296}}}}"#,
            "policy_sets.a.retry.max_retries_per_request",
            "invalid value: integer `4294967296`, expected u32",
        ),
        (
            r#"{"policy_sets": {"a": {"concurrency": {"reject_status": 65536}}}}"#,
            "policy_sets.a.concurrency.reject_status",
            "invalid value: integer `65536`, expected u16",
        ),
        (
            r#"{"policy_sets": {"a": {"concurrency": {"reject_status": -503}}}}"#,
            "policy_sets.a.concurrency.reject_status",
            "invalid value: integer `-503`, expected u16",
        ),
        (
            r#"{"policy_sets": {"a": {"retry_budget": {"ratio": "0.2"}}}}"#,
            "policy_sets.a.retry_budget.ratio",
            r#"invalid type: string "0.2", expected f64"#,
        ),
        (
            r#"{"routes": [{"match": null, "policy_set": "a"}]}"#,
            "routes[0].match",
            "invalid type: null, expected an object",
        ),
    ];
    for (text, path, reason) in rows {
        let err = Config::from_json(text.as_bytes()).unwrap_err();
        assert_eq!(err.path, path, "{text}: {err}");
        assert!(err.reason.contains(reason), "{text}: {err}");
    }
}

/// `null` is an absent optional field; integers are read where floats are expected.
#[test]
fn null_is_absent_and_integers_are_floats() {
    let config = Config::from_json(
        br#"{"metric_prefix": null, "priority": null, "trusted_peers": null,
             "policy_sets": {"a": {"retry_budget": {"ratio": 1, "ttl": null}, "retry": null}},
             "default_policy_set": null}"#,
    )
    .unwrap();
    assert_eq!(config.metric_prefix, "ballast");
    let set = config
        .policy_set(config.policy_set_named("a").unwrap())
        .unwrap();
    assert_eq!(set.retry_budget.unwrap().ratio_ppm, 1_000_000);
    assert_eq!(config.routes.default, None);
}
