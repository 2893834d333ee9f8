//! The series ballast should export for a configuration, derived from the code that defines
//! them, so the scrape can be compared with it both ways.
//!
//! Why derived and not a hand-kept list: a list in the test would agree with itself. The
//! per-set metrics come from the policy crate's `Metric::ALL` (with each metric's `needs`,
//! exactly as the plugin's `SetTelemetry::define` filters them), the class counters from
//! `ClassMetric::all()`, and the two process-wide counters from the `format!("{prefix}_…")`
//! names in `filter/plugin/src/metrics.rs`. The tag names are read from the same file.

use ballast_policy::config::Config;
use ballast_policy::metrics::{ClassMetric, Kind, Metric};
use std::collections::{BTreeMap, BTreeSet};

/// A label set, sorted by key (without a histogram's `le`).
pub type Labels = BTreeMap<String, String>;

/// One metric family as `/stats/prometheus` should print it.
#[derive(Debug, Clone)]
pub struct Family {
    /// `# TYPE` kind: `counter`, `gauge` or `histogram`.
    pub kind: &'static str,
    /// Label keys every series carries (histogram buckets add `le`).
    pub keys: BTreeSet<String>,
    /// Every label set it should have a series for.
    pub series: BTreeSet<Vec<(String, String)>>,
}

/// Family name → family, for a plugin configuration.
pub fn expected(config_json: &str) -> BTreeMap<String, Family> {
    let config = Config::from_json(config_json.as_bytes())
        .unwrap_or_else(|e| panic!("the test's plugin configuration: {e:?}"));
    let prefix = &config.metric_prefix;
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut add = |name: String, kind: Kind, labels: Vec<(&str, &str)>| {
        let family = families.entry(name).or_insert_with(|| Family {
            kind: kind_name(kind),
            keys: labels.iter().map(|(k, _)| k.to_string()).collect(),
            series: BTreeSet::new(),
        });
        let mut sorted: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        sorted.sort();
        family.series.insert(sorted);
    };
    for set in &config.policy_sets {
        for metric in Metric::ALL {
            if metric.needs().met_by(set) {
                let name = format!("{prefix}_{}", metric.name());
                add(name, metric.kind(), vec![("policy_set", set.name.as_str())]);
            }
        }
        if set.shedding.is_some() {
            for class in &config.priority.classes {
                for metric in ClassMetric::all() {
                    let mut labels = vec![("policy_set", set.name.as_str()), ("class", class)];
                    if let Some(reason) = metric.reason() {
                        labels.push(("reason", reason));
                    }
                    add(format!("{prefix}_{}", metric.name()), Kind::Counter, labels);
                }
            }
        }
    }
    for name in process_wide_counters() {
        add(format!("{prefix}_{name}"), Kind::Counter, Vec::new());
    }
    families
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
        Kind::Histogram => "histogram",
    }
}

fn plugin_metrics_source() -> String {
    let path = ballast_e2e::paths::repo_file("filter/plugin/src/metrics.rs");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The counters the plugin defines outside any policy set: every `format!("{prefix}_NAME")`
/// with a literal name in its metrics module.
pub fn process_wide_counters() -> Vec<String> {
    let source = plugin_metrics_source();
    let names: Vec<String> = source
        .split("format!(\"{prefix}_")
        .skip(1)
        .filter_map(|rest| rest.split_once('"'))
        .map(|(name, _)| name.to_string())
        // `{prefix}_{metric}.` is the per-set name template, not a counter.
        .filter(|name| {
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
        .collect();
    assert!(
        names.len() >= 2,
        "expected the unmatched and host-error counters in the plugin's metrics.rs, found {names:?}"
    );
    names
}

/// The tag names the plugin encodes into metric names: its `pub const …_TAG: &str = "…"`.
pub fn plugin_tags() -> BTreeSet<String> {
    let source = plugin_metrics_source();
    let tags: BTreeSet<String> = source
        .lines()
        .filter(|line| line.starts_with("pub const ") && line.contains("_TAG: &str = \""))
        .filter_map(|line| line.split('"').nth(1))
        .map(str::to_string)
        .collect();
    assert!(
        tags.contains("policy_set"),
        "no policy_set tag constant found in the plugin's metrics.rs: {tags:?}"
    );
    tags
}
