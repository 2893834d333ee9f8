//! Configuration tests: every shipped example parses; every row of the rejected-config table
//! fails with exactly its JSON path and reason. The table (`testdata/invalid_configs.json`) is
//! shared with the JSON Schema agreement test, so parser and schema are checked on the same rows.

use super::*;
use crate::routing::{RequestView, Routed};
use crate::test_support::test;

pub(crate) const EXAMPLES: &[(&str, &str)] = &[
    (
        "minimal.json",
        include_str!("../../../../examples/configs/minimal.json"),
    ),
    (
        "two-routes.json",
        include_str!("../../../../examples/configs/two-routes.json"),
    ),
    (
        "full.json",
        include_str!("../../../../examples/configs/full.json"),
    ),
    (
        "deadline.json",
        include_str!("../../../../examples/configs/deadline.json"),
    ),
];

const INVALID: &str = include_str!("../../testdata/invalid_configs.json");

#[test]
fn every_example_config_parses() {
    for (name, text) in EXAMPLES {
        if let Err(err) = Config::from_json(text.as_bytes()) {
            panic!("{name}: {err}");
        }
    }
}

#[test]
fn rejected_configs_name_path_and_reason() {
    let rows: Vec<serde_json::Value> = serde_json::from_str(INVALID).unwrap();
    assert!(rows.len() >= 15, "the table must keep at least 15 rows");
    for row in rows {
        let field = |key: &str| row[key].as_str().unwrap();
        let (why, config) = (field("why"), field("config"));
        let err = match Config::from_json(config.as_bytes()) {
            Ok(_) => panic!("{why}: accepted {config}"),
            Err(err) => err,
        };
        assert_eq!(err.path, field("path"), "{why}: wrong path in `{err}`");
        assert!(
            err.reason.contains(field("reason_contains")),
            "{why}: reason `{}` lacks `{}`",
            err.reason,
            field("reason_contains")
        );
    }
}

#[test]
fn empty_document_is_the_empty_config() {
    for text in ["", "  \n", "{}"] {
        let config = Config::from_json(text.as_bytes()).unwrap();
        assert_eq!(config.metric_prefix, "ballast");
        assert!(!config.dry_run);
        assert!(config.policy_sets.is_empty());
        assert_eq!(config.routes.default, None);
        assert_eq!(
            config.priority.classes,
            ["critical", "standard", "sheddable"]
        );
        assert_eq!(config.priority.default, PriorityId(1));
        assert_eq!(config.priority.header, "x-ballast-priority");
        assert!(config.trusted_peers.is_trusted(Some("127.0.0.1:1"), None));
        assert!(!config.trusted_peers.is_trusted(Some("8.8.8.8:1"), None));
    }
}

#[test]
fn not_utf8_is_rejected_at_root() {
    let err = Config::from_json(&[0x7b, 0xff, 0x7d]).unwrap_err();
    assert_eq!(err.path, "");
    assert!(err.reason.contains("not UTF-8"), "{err}");
}

#[test]
fn priority_default_is_last_class_when_omitted() {
    let config = Config::from_json(br#"{"priority": {"classes": ["a", "b", "c"]}}"#).unwrap();
    assert_eq!(config.priority.default, PriorityId(2));
    let (class, ignored) = config.priority.classify(Some("a"), true);
    assert_eq!((class, ignored), (PriorityId(0), false));
    assert_eq!(
        config.priority.classify(Some("a"), false),
        (PriorityId(2), true)
    );
    assert_eq!(
        config.priority.classify(Some("zzz"), true),
        (PriorityId(2), true)
    );
    assert_eq!(config.priority.classify(None, true), (PriorityId(2), false));
}

/// A request for routing tests that records which attributes were read.
#[derive(Default)]
pub(crate) struct FakeRequest {
    pub authority: Option<String>,
    pub path: Option<String>,
    pub method: Option<String>,
    pub headers: Vec<(String, String)>,
    pub route_name: Option<String>,
    pub reads: Vec<String>,
}

impl RequestView for FakeRequest {
    fn authority(&mut self) -> Option<&str> {
        self.reads.push("authority".into());
        self.authority.as_deref()
    }
    fn path(&mut self) -> Option<&str> {
        self.reads.push("path".into());
        self.path.as_deref()
    }
    fn method(&mut self) -> Option<&str> {
        self.reads.push("method".into());
        self.method.as_deref()
    }
    fn header(&mut self, name: &str) -> Option<&str> {
        self.reads.push(name.to_string());
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    fn route_name(&mut self) -> Option<&str> {
        self.reads.push("route_name".into());
        self.route_name.as_deref()
    }
}

fn request(method: &str, authority: &str, path: &str, headers: &[(&str, &str)]) -> FakeRequest {
    FakeRequest {
        authority: Some(authority.into()),
        path: Some(path.into()),
        method: Some(method.into()),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        ..FakeRequest::default()
    }
}

#[test]
fn full_example_routes_as_documented() {
    let config = Config::from_json(EXAMPLES[2].1.as_bytes()).unwrap();
    let set = |name: &str| config.policy_set_named(name).unwrap();
    let rows: Vec<(FakeRequest, Option<PolicySetId>, &str)> = vec![
        (
            FakeRequest {
                route_name: Some("checkout".into()),
                ..FakeRequest::default()
            },
            Some(set("checkout")),
            "route name",
        ),
        (
            request(
                "POST",
                "eu.shop.example.com",
                "/checkout/v2/pay",
                &[("x-canary", "1")],
            ),
            Some(set("checkout")),
            "canary rule",
        ),
        (
            request(
                "POST",
                "EU.SHOP.EXAMPLE.COM",
                "/checkout/v2/pay",
                &[("x-canary", "1")],
            ),
            Some(set("checkout")),
            "authority ignores case",
        ),
        (
            request(
                "POST",
                "eu.shop.example.com",
                "/checkout/v2/pay",
                &[("x-canary", "1"), ("x-debug", "on")],
            ),
            Some(set("passthrough")),
            "x-debug must be absent",
        ),
        (
            request(
                "GET",
                "eu.shop.example.com",
                "/checkout/v2/pay",
                &[("x-canary", "1")],
            ),
            Some(set("passthrough")),
            "method must be POST",
        ),
        (
            request("GET", "a", "/search?q=1", &[("x-tenant", "internal")]),
            Some(set("search")),
            "inverted regex",
        ),
        (
            request("GET", "a", "/search", &[("x-tenant", "t-42")]),
            Some(set("passthrough")),
            "inverted regex excludes",
        ),
        (
            request("GET", "a", "/search", &[]),
            Some(set("passthrough")),
            "absent header fails value condition",
        ),
    ];
    for (mut req, expected, why) in rows {
        assert_eq!(
            config.routes.route(&mut req).policy_set(),
            expected,
            "{why}"
        );
    }
}

#[test]
fn routing_reads_only_what_it_needs() {
    let config = Config::from_json(EXAMPLES[1].1.as_bytes()).unwrap();
    let mut req = request("GET", "x", "/api/users", &[]);
    let routed = config.routes.route(&mut req);
    assert_eq!(
        routed,
        Routed::Rule {
            rule: 0,
            policy_set: PolicySetId(0)
        }
    );
    assert_eq!(req.reads, ["path"], "first rule needs the path only");

    let mut req = request("POST", "x", "/static/a.css", &[]);
    assert_eq!(
        config.routes.route(&mut req),
        Routed::Default(PolicySetId(1))
    );
    assert_eq!(
        req.reads,
        ["path", "method"],
        "method is checked before path, then stops"
    );
    assert!(!req.reads.contains(&"authority".to_string()));
}

#[test]
fn unmatched_without_default_passes() {
    let config = Config::from_json(
        br#"{"policy_sets": {"a": {}}, "routes": [{"match": {"path": {"exact": "/a"}}, "policy_set": "a"}]}"#,
    )
    .unwrap();
    let mut req = request("GET", "x", "/b", &[]);
    assert_eq!(config.routes.route(&mut req), Routed::Unmatched);
    let mut req = request("GET", "x", "/a", &[]);
    assert_eq!(
        config.routes.route(&mut req).policy_set(),
        Some(PolicySetId(0))
    );
}

/// The policy set `name` of `config` (a test's own configuration: it must be there).
fn set_named<'a>(config: &'a Config, name: &str) -> &'a PolicySet {
    config
        .policy_set(config.policy_set_named(name).unwrap())
        .unwrap()
}

#[test]
fn retry_sections_take_defaults_and_values() {
    let config = Config::from_json(
        br#"{"policy_sets": {
            "defaults": {"retry_budget": {}},
            "tuned": {"retry_budget": {"ratio": 0.5, "min_retries_per_second": 0, "ttl": "1m"},
                      "retry": {"idempotent_methods": ["GET"], "idempotency_key_header": "idempotency-key",
                                "max_retries_per_request": 2, "explain_header": "x-ballast-retry"}},
            "rules_only": {"retry": {}}}}"#,
    )
    .unwrap();
    let set = |name: &str| set_named(&config, name).clone();
    let defaults = set("defaults");
    assert_eq!(
        defaults.retry_budget,
        Some(crate::retry::BudgetParams {
            ratio_ppm: 200_000,
            min_retries_per_second: 10,
            ttl_seconds: 10
        })
    );
    assert_eq!(defaults.retry, Some(crate::retry::RetryRules::default()));
    let tuned = set("tuned");
    assert_eq!(
        tuned.retry_budget,
        Some(crate::retry::BudgetParams {
            ratio_ppm: 500_000,
            min_retries_per_second: 0,
            ttl_seconds: 60
        })
    );
    let rules = tuned.retry.unwrap();
    assert_eq!(rules.idempotent_methods, ["GET"]);
    assert_eq!(
        rules.idempotency_key_header.as_deref(),
        Some("idempotency-key")
    );
    assert_eq!(rules.max_retries_per_request, 2);
    assert_eq!(rules.explain_header.as_deref(), Some("x-ballast-retry"));
    let rules_only = set("rules_only");
    assert_eq!(rules_only.retry_budget, None);
    assert_eq!(rules_only.retry, Some(crate::retry::RetryRules::default()));
}

#[test]
fn enabled_sections_are_listed() {
    let config = Config::from_json(EXAMPLES[2].1.as_bytes()).unwrap();
    let checkout = config
        .policy_set(config.policy_set_named("checkout").unwrap())
        .unwrap();
    assert_eq!(
        checkout.enabled_sections(),
        [
            "retry_budget",
            "retry",
            "concurrency",
            "deadline",
            "shedding"
        ]
    );
    let search = config
        .policy_set(config.policy_set_named("search").unwrap())
        .unwrap();
    assert_eq!(search.enabled_sections(), ["concurrency", "shedding"]);
}

#[test]
fn concurrency_section_defaults_and_values() {
    use crate::concurrency::queue::Order;
    use crate::concurrency::window::Aggregate;
    use crate::concurrency::AlgorithmParams;
    let config = Config::from_json(
        br#"{"policy_sets": {
            "defaults": {"concurrency": {}},
            "vegas": {"concurrency": {"algorithm": "vegas", "initial_limit": 30, "min_limit": 5, "max_limit": 60,
                      "aggregate": "p99", "measure": "end_of_stream", "window": "1s",
                      "queue": {"size": 0, "order": "lifo", "max_wait": "20ms", "respect_deadlines": false}, "reject_status": 429, "retry_after": "2s"}},
            "fixed": {"concurrency": {"algorithm": "fixed", "initial_limit": 8}}}}"#,
    )
    .unwrap();
    let get = |name: &str| set_named(&config, name).concurrency.clone().unwrap();
    let d = get("defaults");
    assert!(
        matches!(d.algorithm, AlgorithmParams::Gradient2(p) if p.bounds.initial == 10.0 && p.slow_start && p.rtt_tolerance == 1.2)
    );
    assert_eq!(
        (d.window, d.min_samples, d.aggregate),
        (250 * crate::duration::MILLISECOND, 20, Aggregate::Average)
    );
    assert_eq!(
        (
            d.queue.size,
            d.queue.order,
            d.queue.respect_deadlines,
            d.reject_status,
            d.retry_after_seconds
        ),
        (100, Order::Fifo, true, 503, 1)
    );
    let v = get("vegas");
    assert!(matches!(v.algorithm, AlgorithmParams::Vegas(p) if p.bounds.max == 60.0));
    assert_eq!(v.aggregate, Aggregate::Percentile(0.99));
    assert_eq!(v.measure, Measure::EndOfStream);
    assert_eq!(
        (
            v.queue.size,
            v.queue.order,
            v.queue.respect_deadlines,
            v.reject_status,
            v.retry_after_seconds
        ),
        (0, Order::Lifo, false, 429, 2)
    );
    assert!(matches!(get("fixed").algorithm, AlgorithmParams::Fixed(b) if b.initial == 8.0));
}

#[test]
fn deadline_section_defaults_and_values() {
    use crate::deadline::{DeadlineConfig, Malformed};
    use crate::duration::{MILLISECOND, SECOND};
    let config = Config::from_json(
        br#"{"policy_sets": {
            "defaults": {"deadline": {}},
            "edge": {"deadline": {"default": "2s", "max": "30s", "offset": "3ms", "min_useful": "20ms",
                     "header": "x-request-deadline", "max_clock_skew": "500ms", "malformed": "reject",
                     "believe_untrusted_peers": true}}}}"#,
    )
    .unwrap();
    let section = |name: &str| set_named(&config, name).deadline.clone().unwrap();
    let defaults = section("defaults");
    assert_eq!(defaults, DeadlineConfig::default());
    assert_eq!(
        (
            defaults.default,
            defaults.max,
            defaults.offset,
            defaults.min_useful
        ),
        (None, None, MILLISECOND, 5 * MILLISECOND)
    );
    assert_eq!(defaults.header, "x-ballast-deadline");
    assert_eq!(defaults.max_clock_skew, 10 * SECOND);
    assert_eq!(defaults.malformed, Malformed::Ignore);
    assert!(!defaults.believe_untrusted_peers);
    assert_eq!(
        section("edge"),
        DeadlineConfig {
            default: Some(2 * SECOND),
            max: Some(30 * SECOND),
            offset: 3 * MILLISECOND,
            min_useful: 20 * MILLISECOND,
            header: "x-request-deadline".to_string(),
            max_clock_skew: 500 * MILLISECOND,
            malformed: Malformed::Reject,
            believe_untrusted_peers: true,
        }
    );
}

#[test]
fn the_queue_order_is_adaptive_by_default_only_beside_shedding() {
    use crate::concurrency::queue::Order;
    let config = Config::from_json(
        br#"{"priority": {"classes": ["critical", "normal"], "default": "normal"},
            "policy_sets": {
            "alone": {"concurrency": {}},
            "shed": {"concurrency": {}, "shedding": {}},
            "shed_fifo": {"concurrency": {"queue": {"order": "fifo"}}, "shedding": {}},
            "asked": {"concurrency": {"queue": {"order": "adaptive"}}}}}"#,
    )
    .unwrap();
    let order = |name: &str| {
        set_named(&config, name)
            .concurrency
            .as_ref()
            .unwrap()
            .queue
            .order
    };
    assert_eq!(order("alone"), Order::Fifo);
    assert_eq!(order("shed"), Order::Adaptive);
    assert_eq!(order("shed_fifo"), Order::Fifo, "an explicit order stands");
    assert_eq!(order("asked"), Order::Adaptive);
}

#[test]
fn final_marks_are_on_by_default_and_can_be_turned_off() {
    let config = Config::from_json(
        br#"{"policy_sets": {
            "on": {"retry_budget": {}},
            "off": {"retry": {"mark_final_failures": false, "strip_marks_to_untrusted": false}}}}"#,
    )
    .unwrap();
    let chain = |name: &str| set_named(&config, name).retry.clone().unwrap().chain;
    assert_eq!(chain("on"), crate::retry::ChainRules::default());
    assert!(chain("on").mark_final_failures && chain("on").strip_marks_to_untrusted);
    assert!(!chain("off").mark_final_failures && !chain("off").strip_marks_to_untrusted);
    let err = Config::from_json(
        br#"{"policy_sets": {"api": {"retry": {"mark_final_failures": "yes"}}}}"#,
    )
    .unwrap_err();
    assert!(
        err.path.contains("policy_sets.api.retry"),
        "the error names where: {err}"
    );
}
