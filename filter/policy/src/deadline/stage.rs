//! The deadline stage: answer a request whose deadline is spent, and tell the next hop how much
//! is left.
//!
//! Why the budget is computed when the request leaves, not when it arrives: the time a request
//! spends here (in the concurrency queue above all) is time the caller no longer has. The stage
//! decides at arrival ([`DeadlinePolicy::arrive`]) and hands the pipeline a [`Forwarding`]; the
//! headers come from [`DeadlinePolicy::forward`] at the moment the request is forwarded, at once
//! or when it leaves the queue.
//!
//! Forwarded budget = deadline − now − `offset`. It is written four ways, so that each kind of
//! next hop finds it: `x-envoy-upstream-rq-timeout-ms` (this Envoy's router answers 504 when it
//! runs out, so the upstream attempt and its retries stay inside it),
//! `x-envoy-expected-rq-timeout-ms` (the next Envoy), `grpc-timeout` (the next gRPC server or
//! client library), and the absolute header (survives an application that copies headers).

use super::{wire, Deadline, DeadlineConfig, Malformed, Reading, Source, Sources};
use crate::duration::{Nanos, MILLISECOND};
use crate::env::Env;
use crate::headers::HeaderEdit;
use crate::metrics::Metric;
use crate::reply::{GrpcCode, LocalReply};

/// The value of `x-ballast-rejected` on a reply to a spent deadline.
pub const REJECTED_DEADLINE: &str = "deadline";
/// The value of `x-ballast-rejected` on a reply to a malformed deadline header.
pub const REJECTED_MALFORMED: &str = "malformed-deadline";

/// How much earlier than the forwarded budget's end a 504 (gRPC 14) still counts as the router's
/// timeout of that budget.
pub const TIMER_SLACK: Nanos = 10 * MILLISECOND;

/// One policy set's deadline stage.
#[derive(Debug, Clone)]
pub struct DeadlinePolicy {
    config: DeadlineConfig,
}

/// What the stage decided at arrival.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arrival {
    /// Go on; forward with these deadline headers when the request is forwarded.
    Go(Forwarding),
    /// Answer at once with this reply (deadline spent, or a malformed header and `reject`).
    Reply(LocalReply),
}

/// What the stage writes when the request is forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forwarding {
    /// The request's deadline.
    pub deadline: Option<Deadline>,
    /// Whether the request is gRPC (looked up only when it has a deadline; else `false`).
    pub grpc: bool,
    /// Write `grpc-timeout` (a gRPC request, or one that carried the header).
    grpc_timeout: bool,
    /// Hints that were not believed, removed when there is no deadline to write over them.
    unbelieved: Sources,
}

impl DeadlinePolicy {
    /// The stage for a validated `deadline` section.
    pub fn new(config: DeadlineConfig) -> DeadlinePolicy {
        DeadlinePolicy { config }
    }

    /// Its configuration.
    pub fn config(&self) -> &DeadlineConfig {
        &self.config
    }

    /// The latest moment the request can still be forwarded with a useful budget (the
    /// concurrency queue lets a waiter go by then).
    pub fn forward_by(&self, deadline: Deadline) -> Nanos {
        deadline
            .at
            .saturating_sub(self.config.offset)
            .saturating_sub(self.config.min_useful)
    }

    /// The budget the next hop gets if the request is forwarded at `now`.
    pub fn budget(&self, deadline: Deadline, now: Nanos) -> Nanos {
        deadline
            .at
            .saturating_sub(self.config.offset)
            .saturating_sub(now)
    }

    /// Counts what `reading` found and decides: answer now, or go on. `grpc` (whether the
    /// request is gRPC, a header read) is asked only for a reply or a deadline to forward.
    pub fn arrive(
        &self,
        env: Env<'_>,
        reading: &Reading,
        grpc: impl FnOnce() -> bool,
        now: Nanos,
    ) -> Arrival {
        self.count(env, reading);
        if !reading.malformed.is_empty() && self.config.malformed == Malformed::Reject {
            return Arrival::Reply(LocalReply {
                grpc: grpc(),
                status: 400,
                grpc_status: GrpcCode::InvalidArgument,
                headers: vec![("x-ballast-rejected", REJECTED_MALFORMED.to_string())],
                message: "ballast: malformed deadline header".into(),
            });
        }
        let grpc = reading.deadline.is_some() && grpc();
        if let Some(deadline) = reading.deadline {
            if self.budget(deadline, now) < self.config.min_useful {
                env.metrics.add(Metric::DeadlineExpiredOnArrival, 1);
                return Arrival::Reply(spent(grpc));
            }
        }
        let mut unbelieved = Sources::default();
        if reading.untrusted {
            unbelieved = reading.present;
        }
        Arrival::Go(Forwarding {
            deadline: reading.deadline,
            grpc,
            grpc_timeout: grpc || reading.present.contains(Source::GrpcTimeout),
            unbelieved,
        })
    }

    fn count(&self, env: Env<'_>, reading: &Reading) {
        for (source, metric) in [
            (Source::GrpcTimeout, Metric::DeadlineSeenGrpcTimeout),
            (Source::EnvoyExpected, Metric::DeadlineSeenEnvoyExpected),
            (Source::EnvoyUpstream, Metric::DeadlineSeenEnvoyUpstream),
            (Source::Absolute, Metric::DeadlineSeenAbsolute),
        ] {
            if reading.seen.contains(source) {
                env.metrics.add(metric, 1);
            }
        }
        let counted = [
            (!reading.malformed.is_empty(), Metric::DeadlineMalformed),
            (reading.skew_rejected, Metric::DeadlineSkewRejected),
            (reading.untrusted, Metric::DeadlineUntrustedIgnored),
            (reading.capped, Metric::DeadlineCapped),
            (
                reading
                    .deadline
                    .is_some_and(|d| d.source == Source::Default),
                Metric::DeadlineDefaulted,
            ),
        ];
        for (happened, metric) in counted {
            if happened {
                env.metrics.add(metric, 1);
            }
        }
    }

    /// The deadline headers for a request forwarded at `now` (records the budget forwarded).
    /// With no deadline, only the hints that were not believed are removed.
    pub fn forward(&self, env: Env<'_>, forwarding: &Forwarding, now: Nanos) -> Vec<HeaderEdit> {
        let Some(deadline) = forwarding.deadline else {
            return Source::HEADERS
                .into_iter()
                .filter(|source| forwarding.unbelieved.contains(*source))
                .map(|source| (self.header_of(source), None))
                .collect();
        };
        // At least a millisecond: `arrive` and the queue forward nothing with less than
        // `min_useful` (at least 1 ms) left, and Envoy reads 0 as "no timeout".
        let budget = self.budget(deadline, now).max(MILLISECOND);
        env.metrics
            .record(Metric::DeadlineForwardedBudgetMs, budget / MILLISECOND);
        let timeout_ms = wire::format_timeout_ms(budget);
        let mut edits: Vec<HeaderEdit> = vec![
            (
                wire::ENVOY_UPSTREAM_TIMEOUT_MS.into(),
                Some(timeout_ms.clone()),
            ),
            (wire::ENVOY_EXPECTED_TIMEOUT_MS.into(), Some(timeout_ms)),
            (
                self.config.header.clone().into(),
                Some(wire::format_epoch_ms(now.saturating_add(budget))),
            ),
        ];
        if forwarding.grpc_timeout {
            edits.push((
                wire::GRPC_TIMEOUT.into(),
                Some(wire::format_grpc_timeout(budget)),
            ));
        }
        edits
    }

    fn header_of(&self, source: Source) -> crate::headers::HeaderName {
        match source {
            Source::GrpcTimeout => wire::GRPC_TIMEOUT.into(),
            Source::EnvoyExpected => wire::ENVOY_EXPECTED_TIMEOUT_MS.into(),
            Source::EnvoyUpstream => wire::ENVOY_UPSTREAM_TIMEOUT_MS.into(),
            Source::Absolute | Source::Default => self.config.header.clone().into(),
        }
    }

    /// Whether the budget forwarded for `deadline` has run out at `now`, so that the local
    /// router's timer may be what answered. The timer runs for the whole milliseconds forwarded
    /// from when the router got the request, so by ballast's clock it ends at the deadline less
    /// the offset, less up to a millisecond of rounding; Envoy's timers were measured firing up
    /// to 6 ms before that on a loaded machine, hence [`TIMER_SLACK`].
    pub fn budget_spent(&self, deadline: Deadline, now: Nanos) -> bool {
        let budget_end = deadline
            .at
            .saturating_sub(self.config.offset)
            .saturating_sub(MILLISECOND);
        now.saturating_add(TIMER_SLACK) >= budget_end
    }

    /// The response of a forwarded request whose budget is spent ([`Self::budget_spent`]): when
    /// it is the local router's timeout (a 504, or for gRPC grpc-status 14 UNAVAILABLE), count
    /// it and, for gRPC, say what happened: DEADLINE_EXCEEDED, not UNAVAILABLE, which a client
    /// would retry although its deadline is spent.
    pub fn on_response(&self, env: Env<'_>, response: ResponseFacts<'_>) -> Vec<(String, String)> {
        let unavailable = response.grpc && response.grpc_status == Some("14");
        if response.status != 504 && !unavailable {
            return Vec::new();
        }
        env.metrics.add(Metric::DeadlineUpstreamTimeouts, 1);
        if !unavailable {
            return Vec::new();
        }
        vec![
            (
                "grpc-status".to_string(),
                GrpcCode::DeadlineExceeded.code().to_string(),
            ),
            (
                "grpc-message".to_string(),
                "ballast: the deadline passed before the upstream answered".to_string(),
            ),
        ]
    }
}

/// What [`DeadlinePolicy::on_response`] looks at.
#[derive(Debug, Clone, Copy)]
pub struct ResponseFacts<'a> {
    /// Whether the request was gRPC.
    pub grpc: bool,
    /// `:status`.
    pub status: u16,
    /// `grpc-status` in the response headers (a trailers-only response).
    pub grpc_status: Option<&'a str>,
}

/// The reply to a request whose deadline is spent: 504, gRPC DEADLINE_EXCEEDED (as Envoy and
/// gRPC answer a request whose time ran out), no `retry-after`: a caller that has given up does
/// not retry.
pub fn spent(grpc: bool) -> LocalReply {
    LocalReply {
        grpc,
        status: 504,
        grpc_status: GrpcCode::DeadlineExceeded,
        headers: vec![("x-ballast-rejected", REJECTED_DEADLINE.to_string())],
        message: "ballast: the caller's deadline is spent".into(),
    }
}
