//! The validated configuration model — the contract every policy extends.
//!
//! Why: the plugin configuration is JSON written by people. It is parsed once, in
//! `on_configure`, into this model; anything wrong is rejected there with a [`ConfigError`]
//! naming the JSON path, so Envoy refuses to load it instead of misbehaving under traffic. The
//! model is immutable afterwards and shared by every request.
//!
//! Shape (see README "Configuration reference" and `config.schema.json`):
//! ```json
//! { "metric_prefix": "ballast", "dry_run": false,
//!   "priority": { "classes": ["critical", "standard", "sheddable"], "default": "standard",
//!                 "header": "x-ballast-priority" },
//!   "trusted_peers": { "source_cidrs": ["10.0.0.0/8"], "principals": [{"prefix": "spiffe://"}] },
//!   "policy_sets": { "api": { "retry_budget": { "ratio": 0.2 }, "retry": {}, "concurrency": {} } },
//!   "routes": [ { "name": "api", "match": { "path": { "prefix": "/api" } }, "policy_set": "api" } ],
//!   "default_policy_set": "api" }
//! ```

mod checks;
mod concurrency;
mod deadline;
mod decimal;
mod error;
mod json;
mod priority;
mod retry;
mod shape;
mod shedding;
mod validate;

pub use error::ConfigError;

use crate::routing::RouteTable;
use crate::trust::TrustedPeers;

/// A policy set of one [`Config`], as routing names it. Opaque: ids come only from the config
/// they belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicySetId(pub(crate) usize);

impl PolicySetId {
    /// Its position in [`Config::policy_sets`].
    pub(crate) fn index(self) -> usize {
        self.0
    }
}

/// Index of a priority class in [`PriorityClasses::classes`]; 0 is the most important.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PriorityId(pub usize);

/// The validated plugin configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Prefix of every metric name (default `ballast`).
    pub metric_prefix: String,
    /// Count what policies would do, but let every request through unchanged.
    pub dry_run: bool,
    /// Request priority classes.
    pub priority: PriorityClasses,
    /// Peers whose request hints are believed.
    pub trusted_peers: TrustedPeers,
    /// Policy sets in document order; [`PolicySetId`] indexes this.
    pub policy_sets: Vec<PolicySet>,
    /// How requests are mapped to policy sets.
    pub routes: RouteTable,
}

/// Priority classes, most important first.
#[derive(Debug, Clone)]
pub struct PriorityClasses {
    /// Class names, most important first.
    pub classes: Vec<String>,
    /// Class of requests without a (believable, known) priority header.
    pub default: PriorityId,
    /// Request header that carries the class name (lower-case).
    pub header: String,
    /// Header values that name a class besides the class names, in document order.
    pub values: Vec<(crate::shedding::classify::ValueMatch, PriorityId)>,
}

/// A named bundle of policies applied to the requests routed to it.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    /// Name from the configuration (`[A-Za-z0-9_-]{1,64}`), used in metric tags.
    pub name: String,
    /// Retry budget, when enabled.
    pub retry_budget: Option<crate::retry::BudgetParams>,
    /// Retry eligibility rules; present whenever `retry` or `retry_budget` is configured.
    pub retry: Option<crate::retry::RetryRules>,
    /// Adaptive concurrency limit, when enabled.
    pub concurrency: Option<ConcurrencyConfig>,
    /// Deadline propagation, when enabled.
    pub deadline: Option<crate::deadline::DeadlineConfig>,
    /// Load shedding, when enabled.
    pub shedding: Option<crate::shedding::SheddingConfig>,
}

impl PolicySet {
    /// Names of the sections this set enables, in a fixed order.
    pub fn enabled_sections(&self) -> Vec<&'static str> {
        [
            ("retry_budget", self.retry_budget.is_some()),
            ("retry", self.retry.is_some()),
            ("concurrency", self.concurrency.is_some()),
            ("deadline", self.deadline.is_some()),
            ("shedding", self.shedding.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect()
    }
}

/// Where an RTT sample ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// At the response headers.
    Headers,
    /// At the end of the response stream.
    EndOfStream,
}

/// The validated `concurrency` section.
#[derive(Debug, Clone, PartialEq)]
pub struct ConcurrencyConfig {
    /// The limit algorithm and its parameters.
    pub algorithm: crate::concurrency::AlgorithmParams,
    /// Samples are aggregated per window of this length…
    pub window: crate::duration::Nanos,
    /// …once it holds at least this many samples.
    pub min_samples: u32,
    /// How a window's RTTs become one sample.
    pub aggregate: crate::concurrency::window::Aggregate,
    /// Where a sample's RTT ends.
    pub measure: Measure,
    /// The wait queue (size 0 disables it).
    pub queue: crate::concurrency::queue::QueueParams,
    /// Status of a rejection (gRPC requests get grpc-status 14 instead).
    pub reject_status: u16,
    /// `retry-after` seconds on rejections (none when 0).
    pub retry_after_seconds: u32,
}

impl Config {
    /// Parses and validates a configuration document. An empty (or all-whitespace) document
    /// is the empty configuration `{}`: every request passes through untouched.
    pub fn from_json(bytes: &[u8]) -> Result<Config, ConfigError> {
        validate::parse(bytes).map_err(|failure| *failure)
    }

    /// Finds a policy set by name.
    pub fn policy_set_named(&self, name: &str) -> Option<PolicySetId> {
        self.policy_sets
            .iter()
            .position(|set| set.name == name)
            .map(PolicySetId)
    }

    /// The policy set behind an id (ids come from this config, so this always succeeds for
    /// them; `None` only for a foreign id).
    pub fn policy_set(&self, id: PolicySetId) -> Option<&PolicySet> {
        self.policy_sets.get(id.0)
    }
}

#[cfg(test)]
mod tests;
