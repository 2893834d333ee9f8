//! Every host call the plugin makes, in one place: the clock, shared data, headers and
//! properties as bytes, local replies, resuming paused streams.
//!
//! Why one module: the policy crate decides and the rest of the plugin only routes its
//! decisions here; what crosses the wasm boundary (and what it costs) is visible in one file.
//! Header and property values are read as bytes: the SDK's `String` getters `unwrap()` UTF-8
//! conversions, so one header with a non-UTF-8 byte would panic and kill the VM.

use ballast_policy::duration::Nanos;
use ballast_policy::headers::HeaderEdit;
use ballast_policy::pipeline::{ResponseView, Resume};
use ballast_policy::reply::LocalReply;
use ballast_policy::store::{Cas, SharedStore, StoreError, Versioned};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{GrpcStatusCode, MapType, Status};

/// The host's clock in nanoseconds since the Unix epoch (0 if the host cannot tell).
pub fn now() -> Nanos {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| u64::try_from(d.as_nanos()).ok())
        .unwrap_or(0)
}

/// Proxy-wasm shared data: one process-wide map, with a CAS token per key.
pub struct HostStore;

impl SharedStore for HostStore {
    fn get(&self, key: &str) -> Result<Versioned, StoreError> {
        match hostcalls::get_shared_data(key) {
            Ok((value, cas)) => Ok(Versioned { value, cas }),
            Err(_) => Err(StoreError::Failed),
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<Cas>) -> Result<(), StoreError> {
        match hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Ok(()),
            Err(Status::CasMismatch) => Err(StoreError::Mismatch),
            Err(_) => Err(StoreError::Failed),
        }
    }
}

/// Reads a header of `map` as text; non-UTF-8 bytes become U+FFFD instead of failing (HTTP
/// allows obs-text in values).
pub fn header(map: MapType, name: &str) -> Option<String> {
    match hostcalls::get_map_value_bytes(map, name) {
        Ok(Some(bytes)) => Some(String::from_utf8_lossy(&bytes).into_owned()),
        Ok(None) | Err(_) => None,
    }
}

/// Sets or removes headers of `map`; a failure only loses that edit.
pub fn edit_headers(map: MapType, edits: &[HeaderEdit]) {
    for (name, value) in edits {
        let _ = hostcalls::set_map_value(map, name, value.as_deref());
    }
}

/// Reads a timestamp property (Envoy serialises one as 8 bytes: little-endian signed
/// nanoseconds since the Unix epoch); `None` when absent or of another shape.
pub fn timestamp_property(path: &[&str]) -> Option<Nanos> {
    match hostcalls::get_property(path.to_vec()) {
        Ok(Some(bytes)) => {
            let bytes: [u8; 8] = bytes.as_slice().try_into().ok()?;
            u64::try_from(i64::from_le_bytes(bytes)).ok()
        }
        Ok(None) | Err(_) => None,
    }
}

/// Reads a property as text (`None` when absent or not available in this phase).
pub fn property(path: &[&str]) -> Option<String> {
    match hostcalls::get_property(path.to_vec()) {
        Ok(Some(bytes)) => Some(String::from_utf8_lossy(&bytes).into_owned()),
        Ok(None) | Err(_) => None,
    }
}

/// The current response, read header by header.
pub struct HostResponse;

impl ResponseView for HostResponse {
    fn header(&mut self, name: &str) -> Option<String> {
        header(MapType::HttpResponseHeaders, name)
    }

    fn upstream_address(&mut self) -> Option<String> {
        property(&["upstream", "address"])
    }

    fn upstream_principal(&mut self) -> Option<String> {
        property(&["upstream", "uri_san_peer_certificate"])
    }

    fn downstream_address(&mut self) -> Option<String> {
        property(&["source", "address"])
    }

    fn downstream_principal(&mut self) -> Option<String> {
        property(&["connection", "uri_san_peer_certificate"])
    }
}

/// Sends a policy's local reply on the current stream: trailers-only gRPC for gRPC requests,
/// else a plain response whose body is the message.
pub fn send_reply(reply: &LocalReply) {
    let headers: Vec<(&str, &str)> = reply
        .headers
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    if reply.grpc {
        let metadata: Vec<(&str, &[u8])> =
            headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
        let _ = hostcalls::send_grpc_response(grpc_code(reply), Some(&reply.message), metadata);
    } else {
        let body = reply.body();
        let _ =
            hostcalls::send_http_response(u32::from(reply.status), headers, Some(body.as_bytes()));
    }
}

fn grpc_code(reply: &LocalReply) -> GrpcStatusCode {
    use ballast_policy::reply::GrpcCode;
    match reply.grpc_status {
        GrpcCode::InvalidArgument => GrpcStatusCode::InvalidArgument,
        GrpcCode::DeadlineExceeded => GrpcStatusCode::DeadlineExceeded,
        GrpcCode::ResourceExhausted => GrpcStatusCode::ResourceExhausted,
        GrpcCode::Unavailable => GrpcStatusCode::Unavailable,
    }
}

/// Makes `stream` the current context (for a reply or a resume); whether it still exists.
pub fn switch_to(stream: u32) -> bool {
    hostcalls::set_effective_context(stream).is_ok()
}

/// Resumes a paused request after editing its headers (the host applies header calls to the
/// effective context, so they reach the paused stream's request). Leaves it the effective
/// context.
pub fn resume(resume: &Resume) {
    if switch_to(resume.stream) {
        edit_headers(MapType::HttpRequestHeaders, &resume.headers);
        let _ = hostcalls::resume_http_request();
    }
}
