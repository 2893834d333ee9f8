//! The limiter's own answers: over the limit or displaced from the queue (`reject_status`,
//! gRPC UNAVAILABLE) or past the caller's deadline (504, gRPC DEADLINE_EXCEEDED).
//!
//! Why apart from `mod.rs`: the shape of a refusal (status, headers, gRPC mapping, metrics) is
//! one decision, independent of when the limiter refuses.

use super::Limiter;
use crate::env::Env;
use crate::metrics::Metric;
use crate::reply::{GrpcCode, LocalReply};

/// Why the limiter answers a request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No slot, and the queue was full or the wait ran out.
    Limit,
    /// The caller's deadline would pass before the request could be served.
    Deadline,
    /// A more important request took its place in the full queue.
    Displaced,
}

impl Limiter {
    /// The limiter's local reply, counted. Over the limit: `reject_status` (gRPC: UNAVAILABLE,
    /// which clients may retry) with `retry-after`. Past the caller's deadline: 504 (gRPC:
    /// DEADLINE_EXCEEDED), as Envoy and gRPC answer a request whose time ran out, and no
    /// `retry-after`: a retry cannot help a caller that has given up.
    pub(super) fn refuse(&self, env: Env<'_>, grpc: bool, why: Refusal) -> LocalReply {
        env.metrics.add(Metric::ConcurrencyRejected, 1);
        if why != Refusal::Deadline {
            self.pressure_refused();
        }
        match why {
            Refusal::Limit | Refusal::Displaced => {
                let (reason, message) = if why == Refusal::Limit {
                    ("concurrency", "ballast: concurrency limit reached")
                } else {
                    (
                        "displaced",
                        "ballast: overloaded: a more important request took this one's place",
                    )
                };
                let mut headers = vec![("x-ballast-rejected", reason.to_string())];
                if self.config.retry_after_seconds > 0 {
                    headers.push(("retry-after", self.config.retry_after_seconds.to_string()));
                }
                LocalReply {
                    grpc,
                    status: self.config.reject_status,
                    grpc_status: GrpcCode::Unavailable,
                    headers,
                    message: message.into(),
                }
            }
            Refusal::Deadline => {
                env.metrics.add(Metric::ConcurrencyDeadlineDrops, 1);
                LocalReply {
                    grpc,
                    status: 504,
                    grpc_status: GrpcCode::DeadlineExceeded,
                    headers: vec![("x-ballast-rejected", "deadline".to_string())],
                    message:
                        "ballast: the caller's deadline passes before a concurrency slot frees"
                            .into(),
                }
            }
        }
    }
}
