//! Every host call the plugin makes, in one place: the clock, shared data, headers and
//! properties as bytes, local replies, resuming paused streams.
//!
//! Why one module: the policy crate decides and the rest of the plugin only routes its
//! decisions here; what crosses the wasm boundary (and what it costs) is visible in one file.
//! Every call goes through [`crate::abi`] (no status can panic) and a failed call has a
//! defined outcome here: an absent value, a lost edit, a store error the policies count.
//! Header and property values are read as bytes: one header with a non-UTF-8 byte must not
//! fail a request.

use crate::abi;
use ballast_policy::duration::Nanos;
use ballast_policy::headers::HeaderEdit;
use ballast_policy::pipeline::{ResponseView, Resume};
use ballast_policy::reply::LocalReply;
use ballast_policy::store::{Cas, SharedStore, StoreError, Versioned};

/// A header map: the request's or the response's headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Map {
    /// Request headers.
    Request,
    /// Response headers.
    Response,
}

impl Map {
    fn abi(self) -> u32 {
        match self {
            Map::Request => abi::REQUEST_HEADERS,
            Map::Response => abi::RESPONSE_HEADERS,
        }
    }
}

/// The host's clock in nanoseconds since the Unix epoch (0 if the host cannot tell).
pub fn now() -> Nanos {
    abi::current_time_nanos().unwrap_or(0)
}

/// Proxy-wasm shared data: one process-wide map, with a CAS token per key.
pub struct HostStore;

impl SharedStore for HostStore {
    fn get(&self, key: &str) -> Result<Versioned, StoreError> {
        match abi::shared_data(key) {
            Ok(Some((value, cas))) => Ok(Versioned {
                value: Some(value),
                cas: Some(cas),
            }),
            Ok(None) => Ok(Versioned {
                value: None,
                cas: None,
            }),
            Err(_) => Err(StoreError::Failed),
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<Cas>) -> Result<(), StoreError> {
        match abi::set_shared_data(key, value, cas) {
            Ok(()) => Ok(()),
            Err(e) if e.is_cas_mismatch() => Err(StoreError::Mismatch),
            Err(_) => Err(StoreError::Failed),
        }
    }
}

/// Reads a header of `map` as text; non-UTF-8 bytes become U+FFFD instead of failing (HTTP
/// allows obs-text in values). A host error reads as an absent header.
pub fn header(map: Map, name: &str) -> Option<String> {
    match abi::header(map.abi(), name) {
        Ok(Some(bytes)) => Some(text(bytes)),
        Ok(None) | Err(_) => None,
    }
}

/// Bytes as text, without a copy when they are UTF-8 already.
fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes)
        .unwrap_or_else(|invalid| String::from_utf8_lossy(invalid.as_bytes()).into_owned())
}

/// Every header of `map`, serialised (`None`: empty, or the host could not say: every header
/// then reads as absent, as a failed single read would).
pub fn header_pairs(map: Map) -> Option<Vec<u8>> {
    abi::header_pairs(map.abi()).ok().flatten()
}

/// Sets or removes headers of `map`; a failure only loses that edit.
pub fn edit_headers(map: Map, edits: &[HeaderEdit]) {
    for (name, value) in edits {
        let _ = match value {
            Some(value) => abi::set_header(map.abi(), name, value),
            None => abi::remove_header(map.abi(), name),
        };
    }
}

/// Reads a timestamp property (Envoy serialises one as 8 bytes: little-endian signed
/// nanoseconds since the Unix epoch); `None` when absent or of another shape. `path` is the
/// property's path with its parts joined by NUL, as the ABI takes it (`"request\0time"`).
pub fn timestamp_property(path: &str) -> Option<Nanos> {
    let bytes = abi::property(path).ok()??;
    let bytes: [u8; 8] = bytes.as_slice().try_into().ok()?;
    u64::try_from(i64::from_le_bytes(bytes)).ok()
}

/// Reads a property as text (`None` when absent or not available in this phase). `path` is
/// joined by NUL, as for [`timestamp_property`].
pub fn property(path: &str) -> Option<String> {
    abi::property(path).ok()?.map(text)
}

/// The current response, read header by header.
pub struct HostResponse;

impl ResponseView for HostResponse {
    fn header(&mut self, name: &str) -> Option<String> {
        header(Map::Response, name)
    }

    fn upstream_address(&mut self) -> Option<String> {
        property("upstream\0address")
    }

    fn upstream_principal(&mut self) -> Option<String> {
        property("upstream\0uri_san_peer_certificate")
    }

    fn downstream_address(&mut self) -> Option<String> {
        property("source\0address")
    }

    fn downstream_principal(&mut self) -> Option<String> {
        property("connection\0uri_san_peer_certificate")
    }
}

/// Sends a policy's local reply on the current stream: trailers-only gRPC for gRPC requests,
/// else a plain response whose body is the message. A refused reply leaves the stream as it is.
pub fn send_reply(reply: &LocalReply) {
    let headers: Vec<(&str, &[u8])> = reply
        .headers
        .iter()
        .map(|(name, value)| (*name, value.as_bytes()))
        .collect();
    if reply.grpc {
        let _ = abi::send_local_response(200, reply.message.as_bytes(), &headers, grpc_code(reply));
    } else {
        let body = reply.body();
        let _ = abi::send_local_response(u32::from(reply.status), body.as_bytes(), &headers, -1);
    }
}

/// The gRPC status number of a reply.
fn grpc_code(reply: &LocalReply) -> i32 {
    use ballast_policy::reply::GrpcCode;
    match reply.grpc_status {
        GrpcCode::InvalidArgument => 3,
        GrpcCode::DeadlineExceeded => 4,
        GrpcCode::ResourceExhausted => 8,
        GrpcCode::Unavailable => 14,
    }
}

/// Whether the host can make another context the one its calls act on, which resuming a
/// waiter from a tick or from another stream needs. A host that switches refuses an id that
/// names no context (Envoy: BAD_ARGUMENT); ngx_wasm_module and APISIX accept any id and do
/// nothing, MOSN does not implement the call.
pub fn switches_contexts() -> bool {
    matches!(abi::set_effective_context(u32::MAX), Err(e) if e.is_bad_argument())
}

/// Makes `stream` the current context (for a reply or a resume); whether it still exists.
pub fn switch_to(stream: u32) -> bool {
    abi::set_effective_context(stream).is_ok()
}

/// Resumes a paused request after editing its headers (the host applies header calls to the
/// effective context, so they reach the paused stream's request). Leaves it the effective
/// context.
pub fn resume(resume: &Resume) {
    if switch_to(resume.stream) {
        edit_headers(Map::Request, &resume.headers);
        let _ = abi::continue_request();
    }
}
