//! Public value types of the ABI (status codes, levels, map and buffer ids) and of the
//! inspection API (log entries, local responses, captured calls).
//!
//! The numeric values are those of the proxy-wasm ABI 0.2.1 specification, so a test can
//! compare a raw status returned by a WAT module with `Status::NotFound as i32`.

/// `proxy_status_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum Status {
    Ok = 0,
    NotFound = 1,
    BadArgument = 2,
    SerializationFailure = 3,
    ParseFailure = 4,
    InvalidMemoryAccess = 6,
    Empty = 7,
    CasMismatch = 8,
    InternalFailure = 10,
    Unimplemented = 12,
}

impl Status {
    pub(crate) const fn code(self) -> i32 {
        self as i32
    }
}

/// `proxy_log_level_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u32)]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

impl LogLevel {
    pub(crate) fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            0 => Self::Trace,
            1 => Self::Debug,
            2 => Self::Info,
            3 => Self::Warn,
            4 => Self::Error,
            5 => Self::Critical,
            _ => return None,
        })
    }
}

/// What the filter chain does after a phase was offered to the plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The plugin let the phase through (it was forwarded).
    Continue,
    /// The plugin paused the stream, or the phase was queued behind an earlier pause.
    Pause,
    /// The stream has ended (local response sent or stream reset); the phase was not
    /// delivered to the plugin, as Envoy would not deliver it.
    Closed,
}

/// `proxy_map_type_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum MapType {
    RequestHeaders = 0,
    RequestTrailers = 1,
    ResponseHeaders = 2,
    ResponseTrailers = 3,
    GrpcReceiveInitialMetadata = 4,
    GrpcReceiveTrailingMetadata = 5,
    HttpCallResponseHeaders = 6,
    HttpCallResponseTrailers = 7,
}

impl MapType {
    pub(crate) fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            0 => Self::RequestHeaders,
            1 => Self::RequestTrailers,
            2 => Self::ResponseHeaders,
            3 => Self::ResponseTrailers,
            4 => Self::GrpcReceiveInitialMetadata,
            5 => Self::GrpcReceiveTrailingMetadata,
            6 => Self::HttpCallResponseHeaders,
            7 => Self::HttpCallResponseTrailers,
            _ => return None,
        })
    }
}

/// `proxy_buffer_type_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum BufferType {
    RequestBody = 0,
    ResponseBody = 1,
    DownstreamData = 2,
    UpstreamData = 3,
    HttpCallResponseBody = 4,
    GrpcReceiveBuffer = 5,
    VmConfiguration = 6,
    PluginConfiguration = 7,
    CallData = 8,
}

impl BufferType {
    pub(crate) fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            0 => Self::RequestBody,
            1 => Self::ResponseBody,
            2 => Self::DownstreamData,
            3 => Self::UpstreamData,
            4 => Self::HttpCallResponseBody,
            5 => Self::GrpcReceiveBuffer,
            6 => Self::VmConfiguration,
            7 => Self::PluginConfiguration,
            8 => Self::CallData,
            _ => return None,
        })
    }
}

/// `proxy_stream_type_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamType {
    Request,
    Response,
    Downstream,
    Upstream,
}

impl StreamType {
    pub(crate) fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            0 => Self::Request,
            1 => Self::Response,
            2 => Self::Downstream,
            3 => Self::Upstream,
            _ => return None,
        })
    }
}

/// One captured log line (from `proxy_log`, or from stdout/stderr through WASI `fd_write`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub worker: usize,
    pub level: LogLevel,
    /// The context that was current (or effective) when the plugin logged; 0 = VM context.
    pub context_id: u32,
    pub message: String,
}

/// A `proxy_send_local_response` as Envoy received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    pub status_code: u32,
    /// Response code details, with whitespace replaced by `_` as Envoy does.
    pub details: String,
    pub body: Vec<u8>,
    /// The additional headers the plugin asked for (keys lower-cased).
    pub headers: Vec<(String, String)>,
    /// `None` when the plugin passed a value outside 0..=16 (the SDKs pass -1 for "none").
    pub grpc_status: Option<u32>,
}

/// Names an outstanding callout: the worker that made it and the token it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CalloutId {
    pub worker: usize,
    pub token: u32,
}

/// A captured `proxy_http_call`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCall {
    pub id: CalloutId,
    pub upstream: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
    pub timeout_ms: u32,
    /// The context that was current when the call was dispatched (the SDK routes the
    /// response back to it; Envoy always calls the root context).
    pub context_id: u32,
}

/// The test's answer to an http call. `HttpCallResponse::failure()` is what Envoy delivers
/// on a reset/timeout: no headers, no body, no trailers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpCallResponse {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
}

impl HttpCallResponse {
    /// A response with the given `:status`, extra headers and body.
    pub fn new(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Self {
        let mut all = vec![(":status".to_string(), status.to_string())];
        all.extend(
            headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_string())),
        );
        Self {
            headers: all,
            body: body.to_vec(),
            trailers: Vec::new(),
        }
    }

    /// What Envoy delivers when the call failed (timeout, reset, no healthy upstream).
    pub fn failure() -> Self {
        Self::default()
    }
}

/// A captured `proxy_grpc_call` or `proxy_grpc_stream`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcCall {
    pub id: CalloutId,
    pub upstream: String,
    pub service: String,
    pub method: String,
    pub initial_metadata: Vec<(String, String)>,
    /// The request message (unary) or the messages sent so far (stream).
    pub messages: Vec<Vec<u8>>,
    pub timeout_ms: u32,
    pub streaming: bool,
    pub closed: bool,
    pub cancelled: bool,
}

/// Outcome of starting one worker (VM start + plugin configure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerStart {
    pub worker: usize,
    /// `proxy_on_vm_start` returned true (or is not exported).
    pub vm_started: bool,
    /// `proxy_on_configure` returned true (or is not exported).
    pub configured: bool,
}

/// Outcome of `Host::start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartOutcome {
    pub workers: Vec<WorkerStart>,
    /// Logs written during start, all workers.
    pub logs: Vec<LogEntry>,
}

impl StartOutcome {
    /// Every worker started and accepted its configuration.
    pub fn all_ok(&self) -> bool {
        self.workers.iter().all(|w| w.vm_started && w.configured)
    }
}
