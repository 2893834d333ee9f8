//! Metric names and handles.
//!
//! Why this naming: proxy-wasm metrics have no labels; Envoy extracts tags from stat names with
//! regexes (`stats_config.stats_tags`). ballast encodes tags the way Istio's own wasm stats do,
//! `<prefix>_requests_total.policy_set=.=<name>;.;`, so Istio's `extraStatTags: [policy_set]`
//! (or the tag rule in `envoy-config/envoy.yaml`) turns them into Prometheus labels:
//! `ballast_requests_total{policy_set="api"}`. Without a tag rule the name is still unique.
//!
//! Metrics are defined once per VM in `on_configure`; Envoy aggregates identically-named
//! metrics across worker VMs into one process-wide stat.

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

/// Tag name used for the policy set in metric names.
pub const POLICY_SET_TAG: &str = "policy_set";

/// Renders a metric name carrying one tag, in Istio's extractable form.
pub fn tagged_name(prefix: &str, metric: &str, tag: &str, value: &str) -> String {
    format!("{prefix}_{metric}.{tag}=.={value};.;")
}

/// A counter handle; a failed definition leaves it inert rather than failing the request.
#[derive(Debug, Clone, Copy)]
pub struct Counter(Option<u32>);

impl Counter {
    /// Defines (or looks up) the counter `name`. Logs and returns an inert counter on failure.
    pub fn define(name: &str) -> Counter {
        match hostcalls::define_metric(MetricType::Counter, name) {
            Ok(id) => Counter(Some(id)),
            Err(status) => {
                log::warn!("cannot define metric {name}: {status:?}");
                Counter(None)
            }
        }
    }

    /// Adds one.
    pub fn increment(self) {
        if let Some(id) = self.0 {
            // A failed increment only loses a count; the request must not suffer for it.
            let _ = hostcalls::increment_metric(id, 1);
        }
    }
}

/// The metrics of one policy set.
#[derive(Debug, Clone, Copy)]
pub struct PolicySetMetrics {
    /// Requests routed to this policy set.
    pub requests_total: Counter,
}

/// All metrics of the plugin, indexed like the configuration's policy sets.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Per policy set, same order as `Config::policy_sets`.
    pub policy_sets: Vec<PolicySetMetrics>,
    /// Requests no rule matched and no default policy set covered.
    pub unmatched_total: Counter,
}

impl Metrics {
    /// Defines every metric the configuration needs.
    pub fn define(config: &ballast_policy::config::Config) -> Metrics {
        let prefix = &config.metric_prefix;
        let policy_sets = config
            .policy_sets
            .iter()
            .map(|set| PolicySetMetrics {
                requests_total: Counter::define(&tagged_name(
                    prefix,
                    "requests_total",
                    POLICY_SET_TAG,
                    &set.name,
                )),
            })
            .collect();
        Metrics {
            policy_sets,
            unmatched_total: Counter::define(&format!("{prefix}_requests_unmatched_total")),
        }
    }
}
