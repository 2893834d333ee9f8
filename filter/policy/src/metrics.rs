//! Every metric ballast exports, by name, and where policies report them (and warnings).
//!
//! Why here and not in the plugin: which numbers a policy reports, and when, is part of the
//! policy (a rejection counted twice is a policy bug). Policies report to a [`Telemetry`];
//! the plugin's turns each [`Metric`] into a proxy-wasm metric of the policy set and each
//! warning into a log line, tests use [`Recorded`]. Names are rendered by the plugin with the
//! policy-set tag.

use crate::config::PolicySet;
use std::cell::RefCell;
use std::collections::BTreeMap;

/// Counter or gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only grows.
    Counter,
    /// Set to a value.
    Gauge,
    /// A distribution of recorded values.
    Histogram,
}

/// Which section of a policy set needs a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Every policy set.
    Always,
    /// A set with retry rules (`retry` or `retry_budget`).
    Retry,
    /// A set with a retry budget.
    RetryBudget,
    /// A set with a concurrency limiter.
    Concurrency,
    /// A set with deadline propagation.
    Deadline,
    /// A set with load shedding.
    Shedding,
}

macro_rules! metrics {
    ($($variant:ident => $name:literal, $kind:ident, $needs:ident, $doc:literal;)*) => {
        /// A metric of one policy set (README, "Metrics", says what each means).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Metric {
            $(#[doc = $doc] $variant,)*
        }

        impl Metric {
            /// Every metric, in declaration order (`metric as usize` indexes it).
            pub const ALL: &'static [Metric] = &[$(Metric::$variant,)*];

            /// Its name without prefix and tag, e.g. `concurrency_rejected`.
            pub fn name(self) -> &'static str {
                match self { $(Metric::$variant => $name,)* }
            }

            /// Counter or gauge.
            pub fn kind(self) -> Kind {
                match self { $(Metric::$variant => Kind::$kind,)* }
            }

            /// Which section makes a policy set export it.
            pub fn needs(self) -> Needs {
                match self { $(Metric::$variant => Needs::$needs,)* }
            }
        }
    };
}

metrics! {
    RequestsTotal => "requests_total", Counter, Always, "Requests routed to the policy set.";
    RetriesAllowed => "retries_allowed", Counter, Retry, "Retries Envoy made within the budget.";
    RetriesDeniedBudget => "retries_denied_budget", Counter, Retry, "Failed requests a spent budget kept from a retry.";
    RetriesDeniedNotIdempotent => "retries_denied_not_idempotent", Counter, Retry, "Failed requests not retried because they are not idempotent.";
    RetryBudgetContended => "retry_budget_contended", Counter, Retry, "Budget updates that lost every CAS race.";
    RetriedRequestsReceived => "retried_requests_received", Counter, Retry, "Requests marked as retries by a trusted peer.";
    RetryMarksMalformed => "retry_marks_malformed", Counter, Retry, "Retry marks that did not parse.";
    RetryIdempotencyKeysUntrusted => "retry_idempotency_keys_untrusted", Counter, Retry, "Idempotency keys ignored: the peer is not trusted (the request stays not retryable).";
    RetryFinalMarksEmitted => "retry_final_marks_emitted", Counter, Retry, "Final failures marked so the proxies above do not retry them.";
    RetryMarksHonoured => "retry_final_marks_honoured", Counter, Retry, "Failed responses a trusted hop below had marked final (not retried here).";
    RetriesSaved => "retries_saved", Counter, Retry, "Retries this hop's router would have made on responses marked final below.";
    RetryMarksUntrusted => "retry_final_marks_untrusted", Counter, Retry, "Final marks from an upstream that is not trusted (not counted as final).";
    RetryMarksStripped => "retry_final_marks_stripped", Counter, Retry, "Responses whose final marks were removed toward a peer that is not trusted.";
    RetryBudgetAvailable => "retry_budget_available", Gauge, RetryBudget, "Whole retries available in the budget.";
    ConcurrencyLimit => "concurrency_limit", Gauge, Concurrency, "The current limit.";
    ConcurrencyInFlight => "concurrency_in_flight", Gauge, Concurrency, "Requests in flight, all workers.";
    ConcurrencyQueued => "concurrency_queued", Gauge, Concurrency, "Requests waiting, all workers.";
    ConcurrencySampleRttUs => "concurrency_sample_rtt_us", Gauge, Concurrency, "The last window RTT fed to the algorithm.";
    ConcurrencyMinRttUs => "concurrency_min_rtt_us", Gauge, Concurrency, "The learned no-load RTT.";
    ConcurrencyRejected => "concurrency_rejected", Counter, Concurrency, "Requests the limiter answered itself.";
    ConcurrencyQueueTimeouts => "concurrency_queue_timeouts", Counter, Concurrency, "Requests whose wait ran out.";
    ConcurrencyDeadlineDrops => "concurrency_deadline_drops", Counter, Concurrency, "Requests answered because their deadline would pass first.";
    ConcurrencyContended => "concurrency_contended", Counter, Concurrency, "Limiter updates that lost every CAS race.";
    ConcurrencyReclaimed => "concurrency_reclaimed", Counter, Concurrency, "Slots returned from worker VMs that stopped.";
    DeadlineSeenGrpcTimeout => "deadline_seen_grpc_timeout", Counter, Deadline, "Requests with a believed, well-formed grpc-timeout.";
    DeadlineSeenEnvoyExpected => "deadline_seen_envoy_expected", Counter, Deadline, "Requests with a believed, well-formed x-envoy-expected-rq-timeout-ms.";
    DeadlineSeenEnvoyUpstream => "deadline_seen_envoy_upstream", Counter, Deadline, "Requests with a believed, well-formed x-envoy-upstream-rq-timeout-ms.";
    DeadlineSeenAbsolute => "deadline_seen_absolute", Counter, Deadline, "Requests with a believed, well-formed absolute deadline header.";
    DeadlineDefaulted => "deadline_defaulted", Counter, Deadline, "Requests that got the policy's default deadline.";
    DeadlineCapped => "deadline_capped", Counter, Deadline, "Requests whose deadline max shortened.";
    DeadlineExpiredOnArrival => "deadline_expired_on_arrival", Counter, Deadline, "Requests answered at arrival: less than min_useful left.";
    DeadlineExpiredQueued => "deadline_expired_queued", Counter, Deadline, "Requests answered because their deadline passed while they waited.";
    DeadlineUpstreamTimeouts => "deadline_upstream_timeouts", Counter, Deadline, "Forwarded requests whose budget ran out before the upstream answered.";
    DeadlineMalformed => "deadline_malformed", Counter, Deadline, "Requests with a deadline header that did not parse.";
    DeadlineSkewRejected => "deadline_skew_rejected", Counter, Deadline, "Absolute deadlines ignored as further in the past than max_clock_skew.";
    DeadlineUntrustedIgnored => "deadline_untrusted_ignored", Counter, Deadline, "Requests whose deadline hints were ignored: the peer is not trusted.";
    DeadlineForwardedBudgetMs => "deadline_forwarded_budget_ms", Histogram, Deadline, "Budget forwarded to the upstream, in milliseconds.";
    SheddingAdmissionLevel => "shedding_admission_level", Gauge, Shedding, "Ranks the admission level lets pass, in hundredths (all pass: 200 per class).";
    SheddingPriorityUntrusted => "shedding_priority_untrusted", Counter, Shedding, "Priority headers ignored: the peer is not trusted.";
    SheddingPriorityUnknown => "shedding_priority_unknown", Counter, Shedding, "Priority headers ignored: the value names no class.";
    SheddingRateLimitContended => "shedding_rate_limit_contended", Counter, Shedding, "Shared rate-limit checks that lost every CAS race (let through).";
}

impl Needs {
    /// Whether `set` enables what this needs, so exports the metric.
    pub fn met_by(self, set: &PolicySet) -> bool {
        match self {
            Needs::Always => true,
            Needs::Retry => set.retry.is_some(),
            Needs::RetryBudget => set.retry_budget.is_some(),
            Needs::Concurrency => set.concurrency.is_some(),
            Needs::Deadline => set.deadline.is_some(),
            Needs::Shedding => set.shedding.is_some(),
        }
    }
}

/// Why a request of a class was refused before it reached the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ShedReason {
    /// The admission level sheds its rank.
    AdmissionLevel,
    /// Client-side throttling.
    Throttled,
    /// Its class's rate limit.
    RateLimited,
    /// A more important request took its place in the full wait queue.
    Displaced,
    /// The concurrency limiter refused it (queue full, or its wait ran out).
    Concurrency,
}

impl ShedReason {
    /// Every reason, in declaration order.
    pub const ALL: &'static [ShedReason] = &[
        ShedReason::AdmissionLevel,
        ShedReason::Throttled,
        ShedReason::RateLimited,
        ShedReason::Displaced,
        ShedReason::Concurrency,
    ];

    /// The `reason` tag's value (also `x-ballast-rejected` of the refusal, but for the
    /// limiter's own refusals, which say `concurrency`).
    pub fn name(self) -> &'static str {
        match self {
            ShedReason::AdmissionLevel => "shed",
            ShedReason::Throttled => "throttled",
            ShedReason::RateLimited => "rate-limited",
            ShedReason::Displaced => "displaced",
            ShedReason::Concurrency => "concurrency",
        }
    }
}

/// A counter per priority class of a policy set with shedding (tagged `class`, and `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ClassMetric {
    /// Requests of the class that passed the shedding stage.
    Admitted,
    /// Requests of the class refused, by reason.
    Shed(ShedReason),
}

impl ClassMetric {
    /// Every class metric, in a fixed order (`ClassMetric::position` indexes it).
    pub fn all() -> impl Iterator<Item = ClassMetric> {
        std::iter::once(ClassMetric::Admitted)
            .chain(ShedReason::ALL.iter().map(|r| ClassMetric::Shed(*r)))
    }

    /// Its position in [`ClassMetric::all`].
    pub fn position(self) -> usize {
        match self {
            ClassMetric::Admitted => 0,
            ClassMetric::Shed(reason) => 1 + reason as usize,
        }
    }

    /// Its name without prefix and tags.
    pub fn name(self) -> &'static str {
        match self {
            ClassMetric::Admitted => "class_admitted",
            ClassMetric::Shed(_) => "class_shed",
        }
    }

    /// The `reason` tag, if it has one.
    pub fn reason(self) -> Option<&'static str> {
        match self {
            ClassMetric::Admitted => None,
            ClassMetric::Shed(reason) => Some(reason.name()),
        }
    }
}

/// Where a policy set's policies report their numbers and what an operator must hear of.
pub trait Telemetry {
    /// Adds `n` to a class's counter.
    fn add_class(&self, metric: ClassMetric, class: crate::config::PriorityId, n: u64);
    /// Adds `n` to a counter.
    fn add(&self, metric: Metric, n: u64);
    /// Sets a gauge.
    fn set(&self, metric: Metric, value: u64);
    /// Records a value in a histogram.
    fn record(&self, metric: Metric, value: u64);
    /// Something an operator should know (a log line at warning level in the plugin).
    fn warn(&self, message: &str);
}

/// Telemetry that keeps what it is told, for tests.
#[derive(Debug, Default)]
pub struct Recorded {
    values: RefCell<BTreeMap<Metric, u64>>,
    classes: RefCell<BTreeMap<(ClassMetric, crate::config::PriorityId), u64>>,
    samples: RefCell<BTreeMap<Metric, Vec<u64>>>,
    warnings: RefCell<Vec<String>>,
}

impl Recorded {
    /// The counter's total or the gauge's last value (0 if never reported).
    pub fn get(&self, metric: Metric) -> u64 {
        self.values.borrow().get(&metric).copied().unwrap_or(0)
    }

    /// A class counter's total (0 if never reported).
    pub fn class(&self, metric: ClassMetric, class: usize) -> u64 {
        self.classes
            .borrow()
            .get(&(metric, crate::config::PriorityId(class)))
            .copied()
            .unwrap_or(0)
    }

    /// The values recorded in a histogram, in order.
    pub fn samples(&self, metric: Metric) -> Vec<u64> {
        self.samples
            .borrow()
            .get(&metric)
            .cloned()
            .unwrap_or_default()
    }

    /// The warnings so far.
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.borrow().clone()
    }
}

impl Telemetry for Recorded {
    fn add_class(&self, metric: ClassMetric, class: crate::config::PriorityId, n: u64) {
        let mut classes = self.classes.borrow_mut();
        let total = classes.entry((metric, class)).or_insert(0);
        *total = total.saturating_add(n);
    }

    fn add(&self, metric: Metric, n: u64) {
        let mut values = self.values.borrow_mut();
        let total = values.entry(metric).or_insert(0);
        *total = total.saturating_add(n);
    }

    fn set(&self, metric: Metric, value: u64) {
        self.values.borrow_mut().insert(metric, value);
    }

    fn record(&self, metric: Metric, value: u64) {
        self.samples
            .borrow_mut()
            .entry(metric)
            .or_default()
            .push(value);
    }

    fn warn(&self, message: &str) {
        self.warnings.borrow_mut().push(message.to_string());
    }
}
