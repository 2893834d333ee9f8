//! The configuration's wire form: exactly what the JSON may contain, nothing more.
//!
//! Why separate from the validated model: serde checks shape (types, unknown fields — every
//! struct denies them) and `serde_path_to_error` gives the JSON path of a shape error; the
//! semantic checks (references, regexes, CIDRs, naming rules) then build the validated model in
//! `validate.rs`. Code on the request path only ever sees the validated model.

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::fmt;

/// The whole plugin configuration document.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub metric_prefix: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
    pub priority: Option<RawPriority>,
    pub trusted_peers: Option<RawTrustedPeers>,
    #[serde(default)]
    pub policy_sets: NamedMap<RawPolicySet>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    pub default_policy_set: Option<String>,
}

/// `priority`: request classes ordered from most to least important.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPriority {
    pub classes: Vec<String>,
    pub default: Option<String>,
    pub header: Option<String>,
    /// Header values naming a class besides the names: exact strings or integer ranges.
    #[serde(default)]
    pub values: NamedMap<String>,
}

/// `trusted_peers`: whose request hints (priority, deadline, retry marks) are believed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTrustedPeers {
    #[serde(default)]
    pub source_cidrs: Vec<String>,
    #[serde(default)]
    pub principals: Vec<RawStringMatch>,
}

/// One named policy set. Each section switches its policy on for the requests routed here.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicySet {
    pub retry_budget: Option<RawRetryBudget>,
    pub retry: Option<RawRetry>,
    pub concurrency: Option<RawConcurrency>,
    pub deadline: Option<RawDeadline>,
    pub shedding: Option<RawShedding>,
}

/// `retry_budget`: retries allowed as a ratio of first attempts over a window.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetryBudget {
    pub ratio: Option<f64>,
    pub min_retries_per_second: Option<u32>,
    pub ttl: Option<String>,
}

/// `retry`: which requests may be retried, and how refusals are shown.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetry {
    pub idempotent_methods: Option<serde_json::Value>,
    pub idempotency_key_header: Option<String>,
    pub idempotency_key_from_untrusted: Option<bool>,
    pub max_retries_per_request: Option<u32>,
    pub explain_header: Option<String>,
    pub mark_final_failures: Option<bool>,
    pub strip_marks_to_untrusted: Option<bool>,
}

/// `concurrency`: adaptive concurrency limit with a bounded wait queue.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConcurrency {
    pub algorithm: Option<String>,
    pub initial_limit: Option<u32>,
    pub slow_start: Option<bool>,
    pub min_limit: Option<u32>,
    pub max_limit: Option<u32>,
    pub smoothing: Option<f64>,
    pub rtt_tolerance: Option<f64>,
    pub queue_allowance: Option<f64>,
    pub probe_interval: Option<String>,
    pub backoff_ratio: Option<f64>,
    pub timeout: Option<String>,
    pub window: Option<String>,
    pub min_samples: Option<u32>,
    pub aggregate: Option<String>,
    pub measure: Option<String>,
    pub queue: Option<RawQueue>,
    pub reject_status: Option<u16>,
    pub retry_after: Option<String>,
}

/// `concurrency.queue`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQueue {
    pub size: Option<u32>,
    pub max_wait: Option<String>,
    pub order: Option<String>,
    pub respect_deadlines: Option<bool>,
}

/// `deadline`: read the caller's deadline, pass the rest on, fail fast once it is spent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDeadline {
    pub default: Option<String>,
    pub max: Option<String>,
    pub offset: Option<String>,
    pub min_useful: Option<String>,
    pub header: Option<String>,
    pub max_clock_skew: Option<String>,
    pub malformed: Option<String>,
    pub believe_untrusted_peers: Option<bool>,
}

/// `shedding`: drop the least important work first under overload.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawShedding {
    pub admission: Option<RawAdmission>,
    pub throttle: Option<RawThrottle>,
    #[serde(default)]
    pub rate_limits: NamedMap<RawRateLimit>,
    pub overload_status: Option<u16>,
    pub rate_limit_status: Option<u16>,
    pub retry_after: Option<String>,
    pub body: Option<String>,
    pub propagate: Option<bool>,
}

/// `shedding.admission`: the admission level.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmission {
    pub enabled: Option<bool>,
    pub target_queue_wait: Option<String>,
    pub interval: Option<String>,
    pub step: Option<f64>,
}

/// `shedding.throttle`: client-side throttling.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawThrottle {
    pub enabled: Option<bool>,
    pub k: Option<f64>,
    pub window: Option<String>,
    pub min_rps: Option<f64>,
    pub max_reject_probability: Option<f64>,
}

/// `shedding.rate_limits.<class>`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRateLimit {
    pub per_second: f64,
    pub burst: Option<u32>,
    pub scope: Option<String>,
}

/// One routing rule: the first rule whose `match` holds picks the policy set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub name: Option<String>,
    #[serde(default, rename = "match")]
    pub matcher: RawRouteMatch,
    pub policy_set: String,
    /// The class of requests this rule matches (a trusted peer's header still wins).
    pub priority: Option<String>,
}

/// Conditions of a rule; all present conditions must hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRouteMatch {
    pub authority: Option<RawStringMatch>,
    pub path: Option<RawStringMatch>,
    pub method: Option<serde_json::Value>,
    #[serde(default)]
    pub headers: Vec<RawHeaderMatch>,
    pub route_name: Option<RawStringMatch>,
}

/// A string condition: exactly one of the operators must be given.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStringMatch {
    pub exact: Option<String>,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
    pub contains: Option<String>,
    pub regex: Option<String>,
    #[serde(default)]
    pub ignore_case: bool,
}

/// A header condition: `present`, or one string operator, optionally inverted.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHeaderMatch {
    pub name: String,
    pub present: Option<bool>,
    pub exact: Option<String>,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
    pub contains: Option<String>,
    pub regex: Option<String>,
    #[serde(default)]
    pub ignore_case: bool,
    #[serde(default)]
    pub invert: bool,
}

/// A JSON object whose keys are names, kept in document order, with duplicate keys rejected
/// (serde's maps silently keep the last one, which would hide a mistake).
#[derive(Debug)]
pub(crate) struct NamedMap<T>(pub Vec<(String, T)>);

impl<T> Default for NamedMap<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for NamedMap<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NamedMapVisitor<T>(std::marker::PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for NamedMapVisitor<T> {
            type Value = NamedMap<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of named entries")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries: Vec<(String, T)> = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    if entries.iter().any(|(existing, _)| *existing == name) {
                        return Err(serde::de::Error::custom(format!("duplicate name `{name}`")));
                    }
                    let value = map.next_value::<T>()?;
                    entries.push((name, value));
                }
                Ok(NamedMap(entries))
            }
        }

        deserializer.deserialize_map(NamedMapVisitor(std::marker::PhantomData))
    }
}
