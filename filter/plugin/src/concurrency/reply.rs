//! The limiter's own answers: over the limit (`reject_status`, gRPC UNAVAILABLE) or past the
//! caller's deadline (504, gRPC DEADLINE_EXCEEDED).
//!
//! Why apart from `mod.rs`: the shape of a refusal (status, headers, gRPC mapping, metrics) is
//! one decision, independent of when the limiter refuses.

use super::Limiter;
use proxy_wasm::hostcalls;
use proxy_wasm::types::GrpcStatusCode;

/// Why the limiter answers a request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// No slot, and the queue was full or the wait ran out.
    Limit,
    /// The caller's deadline would pass before the request could be served.
    Deadline,
}

impl Limiter {
    /// Sends the limiter's local reply. Over the limit: `reject_status` (gRPC: UNAVAILABLE,
    /// which clients may retry) with `retry-after`. Past the caller's deadline: 504 (gRPC:
    /// DEADLINE_EXCEEDED), as Envoy and gRPC answer a request whose time ran out, and no
    /// `retry-after`: a retry cannot help a caller that has given up.
    pub(super) fn reject(&self, grpc: bool, why: Refusal) {
        self.metrics.rejected.increment();
        let retry_after = self.config.retry_after_seconds.to_string();
        let (status, grpc_status, tag, message) = match why {
            Refusal::Limit => (
                self.config.reject_status,
                GrpcStatusCode::Unavailable,
                "concurrency",
                "ballast: concurrency limit reached",
            ),
            Refusal::Deadline => {
                self.metrics.deadline_drops.increment();
                (
                    504,
                    GrpcStatusCode::DeadlineExceeded,
                    "deadline",
                    "ballast: the caller's deadline passes before a concurrency slot frees",
                )
            }
        };
        let mut headers: Vec<(&str, &str)> = vec![("x-ballast-rejected", tag)];
        if why == Refusal::Limit && self.config.retry_after_seconds > 0 {
            headers.push(("retry-after", retry_after.as_str()));
        }
        if grpc {
            let metadata: Vec<(&str, &[u8])> =
                headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
            let _ = hostcalls::send_grpc_response(grpc_status, Some(message), metadata);
        } else {
            let body = format!("{message}\n");
            let _ =
                hostcalls::send_http_response(u32::from(status), headers, Some(body.as_bytes()));
        }
    }
}
