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

/// A gauge handle; inert when its definition failed.
#[derive(Debug, Clone, Copy)]
pub struct Gauge(Option<u32>);

impl Gauge {
    /// Defines (or looks up) the gauge `name`.
    pub fn define(name: &str) -> Gauge {
        match hostcalls::define_metric(MetricType::Gauge, name) {
            Ok(id) => Gauge(Some(id)),
            Err(status) => {
                log::warn!("cannot define metric {name}: {status:?}");
                Gauge(None)
            }
        }
    }

    /// Sets the value.
    pub fn set(self, value: u64) {
        if let Some(id) = self.0 {
            let _ = hostcalls::record_metric(id, value);
        }
    }
}

/// The concurrency metrics of one policy set (see README, "Metrics").
#[derive(Debug, Clone, Copy)]
pub struct ConcurrencyMetrics {
    /// Current limit.
    pub limit: Gauge,
    /// Requests in flight, all workers.
    pub in_flight: Gauge,
    /// Requests waiting in the queues of all workers.
    pub queued: Gauge,
    /// Last aggregated RTT fed to the algorithm, microseconds.
    pub sample_rtt_us: Gauge,
    /// Gauge: the learned no-load RTT (µs; 0 until learned).
    pub min_rtt_us: Gauge,
    /// Requests answered by the limiter (queue full, wait ran out, or deadline).
    pub rejected: Counter,
    /// Requests whose wait ran out.
    pub queue_timeouts: Counter,
    /// Requests answered because their caller's deadline would pass before they could be served.
    pub deadline_drops: Counter,
    /// Limiter updates that lost every CAS race.
    pub contended: Counter,
    /// Slots returned from worker VMs that stopped (crashed) while holding them.
    pub reclaimed: Counter,
}

impl Counter {
    /// Adds `n`.
    pub fn add(self, n: u64) {
        if let (Some(id), Ok(n)) = (self.0, i64::try_from(n)) {
            if n > 0 {
                let _ = hostcalls::increment_metric(id, n);
            }
        }
    }
}

/// The retry metrics of one policy set (see README, "Metrics").
#[derive(Debug, Clone, Copy)]
pub struct RetryMetrics {
    /// Retries Envoy made within the budget.
    pub allowed: Counter,
    /// Failed requests that would have been retried but the budget was spent.
    pub denied_budget: Counter,
    /// Failed requests that were not retried because they are not idempotent.
    pub denied_not_idempotent: Counter,
    /// Budget updates that lost every CAS race (the request then got no retries).
    pub budget_contended: Counter,
    /// Requests that arrived marked as retries by a trusted peer.
    pub received_retries: Counter,
    /// Retry marks that did not parse.
    pub malformed_marks: Counter,
    /// Retries currently available in the budget (set once a second; only with a budget).
    pub budget_available: Option<Gauge>,
}

/// The metrics of one policy set.
#[derive(Debug, Clone, Copy)]
pub struct PolicySetMetrics {
    /// Requests routed to this policy set.
    pub requests_total: Counter,
    /// Retry metrics, when the set has a `retry` or `retry_budget` section.
    pub retry: Option<RetryMetrics>,
    /// Concurrency metrics, when the set has a `concurrency` section.
    pub concurrency: Option<ConcurrencyMetrics>,
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
            .map(|set| {
                let name = |metric: &str| tagged_name(prefix, metric, POLICY_SET_TAG, &set.name);
                PolicySetMetrics {
                    requests_total: Counter::define(&name("requests_total")),
                    retry: set.retry.as_ref().map(|_| RetryMetrics {
                        allowed: Counter::define(&name("retries_allowed")),
                        denied_budget: Counter::define(&name("retries_denied_budget")),
                        denied_not_idempotent: Counter::define(&name(
                            "retries_denied_not_idempotent",
                        )),
                        budget_contended: Counter::define(&name("retry_budget_contended")),
                        received_retries: Counter::define(&name("retried_requests_received")),
                        malformed_marks: Counter::define(&name("retry_marks_malformed")),
                        budget_available: set
                            .retry_budget
                            .map(|_| Gauge::define(&name("retry_budget_available"))),
                    }),
                    concurrency: set.concurrency.as_ref().map(|_| ConcurrencyMetrics {
                        limit: Gauge::define(&name("concurrency_limit")),
                        in_flight: Gauge::define(&name("concurrency_in_flight")),
                        queued: Gauge::define(&name("concurrency_queued")),
                        sample_rtt_us: Gauge::define(&name("concurrency_sample_rtt_us")),
                        min_rtt_us: Gauge::define(&name("concurrency_min_rtt_us")),
                        rejected: Counter::define(&name("concurrency_rejected")),
                        queue_timeouts: Counter::define(&name("concurrency_queue_timeouts")),
                        deadline_drops: Counter::define(&name("concurrency_deadline_drops")),
                        contended: Counter::define(&name("concurrency_contended")),
                        reclaimed: Counter::define(&name("concurrency_reclaimed")),
                    }),
                }
            })
            .collect();
        Metrics {
            policy_sets,
            unmatched_total: Counter::define(&format!("{prefix}_requests_unmatched_total")),
        }
    }
}
