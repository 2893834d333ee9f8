//! Proxy-wasm metrics for the policy crate's [`Metric`]s, one set per policy set.
//!
//! Why this naming: proxy-wasm metrics have no labels; Envoy extracts tags from stat names with
//! regexes (`stats_config.stats_tags`). ballast encodes tags the way Istio's own wasm stats do,
//! `<prefix>_requests_total.policy_set=.=<name>;.;`, so Istio's `extraStatTags: [policy_set]`
//! (or the tag rule in `envoy-config/envoy.yaml`) turns them into Prometheus labels:
//! `ballast_requests_total{policy_set="api"}`. Without a tag rule the name is still unique.
//!
//! Metrics are defined once per VM in `on_configure`; Envoy aggregates identically-named
//! metrics across worker VMs into one process-wide stat. A metric whose definition failed is
//! inert: a lost count must never fail a request.

use crate::abi;
use ballast_policy::config::{PolicySet, PriorityId};
use ballast_policy::metrics::{ClassMetric, Kind, Metric, Telemetry};

/// Tag name used for the policy set in metric names.
pub const POLICY_SET_TAG: &str = "policy_set";

/// Tag name used for the priority class in metric names.
pub const CLASS_TAG: &str = "class";
/// Tag name used for the refusal reason in metric names.
pub const REASON_TAG: &str = "reason";

/// Renders a metric name carrying one tag, in Istio's extractable form.
pub fn tagged_name(prefix: &str, metric: &str, tag: &str, value: &str) -> String {
    multi_tagged_name(prefix, metric, &[(tag, value)])
}

/// Renders a metric name carrying several tags, each in Istio's extractable form.
pub fn multi_tagged_name(prefix: &str, metric: &str, tags: &[(&str, &str)]) -> String {
    let mut name = format!("{prefix}_{metric}.");
    for (tag, value) in tags {
        name.push_str(tag);
        name.push_str("=.=");
        name.push_str(value);
        name.push_str(";.;");
    }
    name
}

/// Defines a metric; `None` (logged) when the host refuses.
fn define(kind: Kind, name: &str) -> Option<u32> {
    // proxy_metric_type_t.
    let host_kind = match kind {
        Kind::Counter => 0,
        Kind::Gauge => 1,
        Kind::Histogram => 2,
    };
    match abi::define_metric(host_kind, name) {
        Ok(id) => Some(id),
        Err(status) => {
            log::warn!("cannot define metric {name}: {status:?}");
            None
        }
    }
}

/// Adds `n` to the counter `id`.
pub fn increment(id: Option<u32>, n: u64) {
    if let (Some(id), Ok(n)) = (id, i64::try_from(n)) {
        if n > 0 {
            let _ = abi::increment_metric(id, n);
        }
    }
}

/// The metrics of one policy set: a handle per [`Metric`] its sections need.
pub struct SetTelemetry {
    handles: Vec<Option<u32>>,
    /// Per class, a handle per [`ClassMetric`] (by `ClassMetric::position`); empty for a set
    /// without shedding.
    class_handles: Vec<Vec<Option<u32>>>,
}

impl SetTelemetry {
    /// Defines the metrics `set` needs under `prefix`.
    pub fn define(prefix: &str, set: &PolicySet, classes: &[String]) -> SetTelemetry {
        let handles = Metric::ALL
            .iter()
            .map(|metric| {
                metric
                    .needs()
                    .met_by(set)
                    .then(|| {
                        let name = tagged_name(prefix, metric.name(), POLICY_SET_TAG, &set.name);
                        define(metric.kind(), &name)
                    })
                    .flatten()
            })
            .collect();
        let class_handles = if set.shedding.is_some() {
            classes
                .iter()
                .map(|class| {
                    ClassMetric::all()
                        .map(|metric| {
                            let mut tags = vec![(POLICY_SET_TAG, set.name.as_str())];
                            tags.push((CLASS_TAG, class.as_str()));
                            if let Some(reason) = metric.reason() {
                                tags.push((REASON_TAG, reason));
                            }
                            define(
                                Kind::Counter,
                                &multi_tagged_name(prefix, metric.name(), &tags),
                            )
                        })
                        .collect()
                })
                .collect()
        } else {
            Vec::new()
        };
        SetTelemetry {
            handles,
            class_handles,
        }
    }

    fn handle(&self, metric: Metric) -> Option<u32> {
        self.handles.get(metric as usize).copied().flatten()
    }
}

impl Telemetry for SetTelemetry {
    fn add_class(&self, metric: ClassMetric, class: PriorityId, n: u64) {
        let id = self
            .class_handles
            .get(class.0)
            .and_then(|handles| handles.get(metric.position()))
            .copied()
            .flatten();
        increment(id, n);
    }

    fn add(&self, metric: Metric, n: u64) {
        increment(self.handle(metric), n);
    }

    fn set(&self, metric: Metric, value: u64) {
        if let Some(id) = self.handle(metric) {
            let _ = abi::record_metric(id, value);
        }
    }

    fn record(&self, metric: Metric, value: u64) {
        if let Some(id) = self.handle(metric) {
            let _ = abi::record_metric(id, value);
        }
    }

    fn warn(&self, message: &str) {
        log::warn!("{message}");
    }
}

/// The counter of requests no rule matched and no default policy set covered.
pub fn define_unmatched(prefix: &str) -> Option<u32> {
    define(Kind::Counter, &format!("{prefix}_requests_unmatched_total"))
}

/// The counter of host calls that returned a status their call does not document (see
/// `abi`): each such call had a defined outcome (an absent value, a lost edit), and this says
/// the host misbehaved.
pub fn define_host_errors(prefix: &str) -> Option<u32> {
    define(Kind::Counter, &format!("{prefix}_host_errors_total"))
}
