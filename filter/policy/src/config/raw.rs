//! The configuration's wire form: exactly what the JSON may contain, nothing more.
//!
//! Why separate from the validated model: reading the wire form checks shape (types, unknown
//! and duplicate fields, required ones: `decode.rs`) and names the JSON path of a shape error;
//! the semantic checks (references, regexes, CIDRs, naming rules) then build the validated
//! model in `validate.rs`. Code on the request path only ever sees the validated model.

use super::decode::wire_struct;
use super::json::Node;

wire_struct! {
    /// The whole plugin configuration document.
    #[derive(Debug)]
    pub(crate) struct RawConfig {
        metric_prefix: Option<String>,
        dry_run: bool,
        priority: Option<RawPriority>,
        trusted_peers: Option<RawTrustedPeers>,
        policy_sets: NamedMap<RawPolicySet>,
        routes: Vec<RawRoute>,
        default_policy_set: Option<String>,
    }
}

wire_struct! {
    /// `priority`: request classes ordered from most to least important.
    #[derive(Debug)]
    pub(crate) struct RawPriority {
        [required] classes: Vec<String>,
        default: Option<String>,
        header: Option<String>,
        /// Header values naming a class besides the names: exact strings or integer ranges.
        values: NamedMap<String>,
    }
}

wire_struct! {
    /// `trusted_peers`: whose request hints (priority, deadline, retry marks) are believed.
    #[derive(Debug)]
    pub(crate) struct RawTrustedPeers {
        source_cidrs: Vec<String>,
        principals: Vec<RawStringMatch>,
    }
}

wire_struct! {
    /// One named policy set. Each section switches its policy on for the requests routed here.
    #[derive(Debug)]
    pub(crate) struct RawPolicySet {
        retry_budget: Option<RawRetryBudget>,
        retry: Option<RawRetry>,
        concurrency: Option<RawConcurrency>,
        deadline: Option<RawDeadline>,
        shedding: Option<RawShedding>,
    }
}

wire_struct! {
    /// `retry_budget`: retries allowed as a ratio of first attempts over a window.
    #[derive(Debug)]
    pub(crate) struct RawRetryBudget {
        ratio: Option<f64>,
        min_retries_per_second: Option<u32>,
        ttl: Option<String>,
    }
}

wire_struct! {
    /// `retry`: which requests may be retried, and how refusals are shown.
    #[derive(Debug)]
    pub(crate) struct RawRetry {
        idempotent_methods: Option<Node>,
        idempotency_key_header: Option<String>,
        idempotency_key_from_untrusted: Option<bool>,
        max_retries_per_request: Option<u32>,
        explain_header: Option<String>,
        mark_final_failures: Option<bool>,
        strip_marks_to_untrusted: Option<bool>,
    }
}

wire_struct! {
    /// `concurrency`: adaptive concurrency limit with a bounded wait queue.
    #[derive(Debug)]
    pub(crate) struct RawConcurrency {
        algorithm: Option<String>,
        initial_limit: Option<u32>,
        slow_start: Option<bool>,
        min_limit: Option<u32>,
        max_limit: Option<u32>,
        smoothing: Option<f64>,
        rtt_tolerance: Option<f64>,
        queue_allowance: Option<f64>,
        probe_interval: Option<String>,
        backoff_ratio: Option<f64>,
        timeout: Option<String>,
        window: Option<String>,
        min_samples: Option<u32>,
        aggregate: Option<String>,
        measure: Option<String>,
        queue: Option<RawQueue>,
        reject_status: Option<u16>,
        retry_after: Option<String>,
    }
}

wire_struct! {
    /// `concurrency.queue`.
    #[derive(Debug)]
    pub(crate) struct RawQueue {
        size: Option<u32>,
        max_wait: Option<String>,
        order: Option<String>,
        respect_deadlines: Option<bool>,
    }
}

wire_struct! {
    /// `deadline`: read the caller's deadline, pass the rest on, fail fast once it is spent.
    #[derive(Debug)]
    pub(crate) struct RawDeadline {
        default: Option<String>,
        max: Option<String>,
        offset: Option<String>,
        min_useful: Option<String>,
        header: Option<String>,
        max_clock_skew: Option<String>,
        malformed: Option<String>,
        believe_untrusted_peers: Option<bool>,
    }
}

wire_struct! {
    /// `shedding`: drop the least important work first under overload.
    #[derive(Debug)]
    pub(crate) struct RawShedding {
        admission: Option<RawAdmission>,
        throttle: Option<RawThrottle>,
        rate_limits: NamedMap<RawRateLimit>,
        overload_status: Option<u16>,
        rate_limit_status: Option<u16>,
        retry_after: Option<String>,
        body: Option<String>,
        propagate: Option<bool>,
    }
}

wire_struct! {
    /// `shedding.admission`: the admission level.
    #[derive(Debug)]
    pub(crate) struct RawAdmission {
        enabled: Option<bool>,
        target_queue_wait: Option<String>,
        interval: Option<String>,
        step: Option<f64>,
    }
}

wire_struct! {
    /// `shedding.throttle`: client-side throttling.
    #[derive(Debug)]
    pub(crate) struct RawThrottle {
        enabled: Option<bool>,
        k: Option<f64>,
        window: Option<String>,
        min_rps: Option<f64>,
        max_reject_probability: Option<f64>,
    }
}

wire_struct! {
    /// `shedding.rate_limits.<class>`.
    #[derive(Debug)]
    pub(crate) struct RawRateLimit {
        [required] per_second: f64,
        burst: Option<u32>,
        scope: Option<String>,
    }
}

wire_struct! {
    /// One routing rule: the first rule whose `match` holds picks the policy set.
    #[derive(Debug)]
    pub(crate) struct RawRoute {
        name: Option<String>,
        matcher as "match": RawRouteMatch,
        [required] policy_set: String,
        /// The class of requests this rule matches (a trusted peer's header still wins).
        priority: Option<String>,
    }
}

wire_struct! {
    /// Conditions of a rule; all present conditions must hold.
    #[derive(Debug)]
    pub(crate) struct RawRouteMatch {
        authority: Option<RawStringMatch>,
        path: Option<RawStringMatch>,
        method: Option<Node>,
        headers: Vec<RawHeaderMatch>,
        route_name: Option<RawStringMatch>,
    }
}

wire_struct! {
    /// A string condition: exactly one of the operators must be given.
    #[derive(Debug)]
    pub(crate) struct RawStringMatch {
        exact: Option<String>,
        prefix: Option<String>,
        suffix: Option<String>,
        contains: Option<String>,
        regex: Option<String>,
        ignore_case: bool,
    }
}

wire_struct! {
    /// A header condition: `present`, or one string operator, optionally inverted.
    #[derive(Debug)]
    pub(crate) struct RawHeaderMatch {
        [required] name: String,
        present: Option<bool>,
        exact: Option<String>,
        prefix: Option<String>,
        suffix: Option<String>,
        contains: Option<String>,
        regex: Option<String>,
        ignore_case: bool,
        invert: bool,
    }
}

/// A JSON object whose keys are names, kept in document order, with duplicate keys rejected
/// (a map would silently keep the last one, which would hide a mistake).
#[derive(Debug)]
pub(crate) struct NamedMap<T>(pub Vec<(String, T)>);

impl<T> Default for NamedMap<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}
