//! A response ballast sends itself instead of forwarding the request.
//!
//! Why one value for every policy: a refusal's shape (status, gRPC status, headers, body) is a
//! policy decision that clients and dashboards depend on; policies build a [`LocalReply`] and
//! the plugin only sends it, as a plain HTTP response or, for gRPC requests, as a trailers-only
//! response with `grpc-status` and `grpc-message`.

/// gRPC status codes ballast answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrpcCode {
    /// 3: the request is malformed (a deadline header that does not parse).
    InvalidArgument,
    /// 4: the caller's deadline passed (or would before an answer).
    DeadlineExceeded,
    /// 8: a rate limit.
    ResourceExhausted,
    /// 14: overloaded; the client may retry.
    Unavailable,
}

impl GrpcCode {
    /// The wire value.
    pub fn code(self) -> u32 {
        match self {
            GrpcCode::InvalidArgument => 3,
            GrpcCode::DeadlineExceeded => 4,
            GrpcCode::ResourceExhausted => 8,
            GrpcCode::Unavailable => 14,
        }
    }
}

/// A local reply, for HTTP and for gRPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    /// Whether the request is gRPC (`content-type: application/grpc*`): then it is answered with
    /// `grpc_status` and `message` as grpc-message, in a trailers-only response.
    pub grpc: bool,
    /// HTTP status of the plain response.
    pub status: u16,
    /// The gRPC status of the gRPC response.
    pub grpc_status: GrpcCode,
    /// Headers of either shape (e.g. `x-ballast-rejected`, `retry-after`).
    pub headers: Vec<(&'static str, String)>,
    /// One line: the plain response's body (with a newline), the gRPC response's grpc-message.
    pub message: std::borrow::Cow<'static, str>,
}

impl LocalReply {
    /// Whether it answers a spent deadline (504, DEADLINE_EXCEEDED).
    pub fn is_deadline(&self) -> bool {
        self.grpc_status == GrpcCode::DeadlineExceeded
    }

    /// The plain response's body.
    pub fn body(&self) -> String {
        format!("{}\n", self.message)
    }
}

/// Whether a request's `content-type` makes it gRPC.
pub fn is_grpc(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| ct.starts_with("application/grpc"))
}
