//! The proxy-wasm host functions ballast calls, declared and called directly, so that no host
//! answer can panic.
//!
//! Why not the SDK's `hostcalls`: proxy-wasm 0.2.5 panics on every status it does not expect
//! (`panic!("unexpected status")` in each wrapper), and a panic kills the VM: with
//! `FAIL_CLOSED` Envoy then answers 503 to everything, with `FAIL_RELOAD` for a while. Its
//! declarations also return a Rust enum, and a status outside that enum (a newer host's, or a
//! buggy one's) is undefined behaviour before any `match` runs. Here every import returns a
//! plain `u32`, every status other than the documented ones becomes a [`HostError`], and every
//! unexpected one is counted ([`take_unexpected`], published as `ballast_host_errors_total`).
//!
//! The only `unsafe` code of the plugin is in this module: each call passes pointers to live
//! buffers of the stated length, and takes ownership of a buffer the host returns, which the
//! host allocated through [`exports::proxy_on_memory_allocate`] (a boxed slice of exactly that
//! size). Status codes and enum values are those of the proxy-wasm ABI 0.2.1 specification.
//! The entry points the host calls are in [`exports`].
#![allow(unsafe_code)]

pub mod exports;

use std::cell::Cell;
use std::ptr::{null, null_mut};

/// `proxy_status_t` values this layer gives meaning to.
const OK: u32 = 0;
const NOT_FOUND: u32 = 1;
const BAD_ARGUMENT: u32 = 2;
const CAS_MISMATCH: u32 = 8;

/// Header maps (`proxy_map_type_t`).
pub const REQUEST_HEADERS: u32 = 0;
/// Response headers.
pub const RESPONSE_HEADERS: u32 = 2;
/// `proxy_buffer_type_t` of the plugin configuration.
const PLUGIN_CONFIGURATION: u32 = 7;
/// `proxy_stream_type_t` of the request side.
const HTTP_REQUEST: u32 = 0;

/// A host call that did not do what was asked, with the status the host returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostError(pub u32);

impl HostError {
    /// A compare-and-swap write lost to another writer.
    pub fn is_cas_mismatch(self) -> bool {
        self.0 == CAS_MISMATCH
    }

    /// The host refused an argument (e.g. a context id that names no context).
    pub fn is_bad_argument(self) -> bool {
        self.0 == BAD_ARGUMENT
    }
}

thread_local! {
    /// Statuses no documented outcome of their call allows, since the last [`take_unexpected`].
    static UNEXPECTED: Cell<u64> = const { Cell::new(0) };
}

/// How many host calls returned a status their call does not document, since the last call.
pub fn take_unexpected() -> u64 {
    UNEXPECTED.with(|n| n.replace(0))
}

/// `Ok(())` for OK; an error for anything else, counted unless it is one of `expected`.
fn check(status: u32, expected: &[u32]) -> Result<(), HostError> {
    if status == OK {
        return Ok(());
    }
    if !expected.contains(&status) {
        UNEXPECTED.with(|n| n.set(n.get().saturating_add(1)));
    }
    Err(HostError(status))
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
    fn proxy_continue_stream(stream_type: u32) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
}

/// Takes a buffer the host returned (`None` for a null pointer).
fn owned(data: *mut u8, size: usize) -> Option<Vec<u8>> {
    if data.is_null() {
        return None;
    }
    // SAFETY: the host wrote `data` from `proxy_on_memory_allocate(size)`, which hands out a
    // boxed slice of exactly `size` bytes that nothing else owns.
    Some(unsafe { Vec::from_raw_parts(data, size, size) })
}

/// Writes a log line (levels 0 trace … 5 critical).
pub fn log(level: u32, message: &str) -> Result<(), HostError> {
    // SAFETY: a live buffer of the stated length.
    let status = unsafe { proxy_log(level, message.as_ptr(), message.len()) };
    check(status, &[])
}

/// The host's clock, nanoseconds since the Unix epoch.
pub fn current_time_nanos() -> Result<u64, HostError> {
    let mut time = 0u64;
    // SAFETY: a live u64 to write into.
    let status = unsafe { proxy_get_current_time_nanoseconds(&mut time) };
    check(status, &[]).map(|()| time)
}

/// Asks for `on_tick` every `period_ms` milliseconds (0: never).
pub fn set_tick_period_ms(period_ms: u32) -> Result<(), HostError> {
    // SAFETY: no pointers.
    let status = unsafe { proxy_set_tick_period_milliseconds(period_ms) };
    check(status, &[])
}

/// The plugin configuration's first `size` bytes (`None`: the host has none).
pub fn plugin_configuration(size: usize) -> Result<Option<Vec<u8>>, HostError> {
    let (mut data, mut len) = (null_mut(), 0usize);
    // SAFETY: live out-parameters; the returned buffer is taken by `owned`.
    let status =
        unsafe { proxy_get_buffer_bytes(PLUGIN_CONFIGURATION, 0, size, &mut data, &mut len) };
    match status {
        NOT_FOUND => Ok(None),
        _ => check(status, &[]).map(|()| owned(data, len)),
    }
}

/// A header of `map` as bytes (`None`: absent).
pub fn header(map: u32, name: &str) -> Result<Option<Vec<u8>>, HostError> {
    let (mut data, mut len) = (null_mut(), 0usize);
    // SAFETY: a live key buffer and live out-parameters; the result is taken by `owned`.
    let status =
        unsafe { proxy_get_header_map_value(map, name.as_ptr(), name.len(), &mut data, &mut len) };
    match status {
        NOT_FOUND => Ok(None),
        _ => check(status, &[]).map(|()| Some(owned(data, len).unwrap_or_default())),
    }
}

/// Every header of `map` in the ABI's serialised form (`None`: the map is empty).
pub fn header_pairs(map: u32) -> Result<Option<Vec<u8>>, HostError> {
    let (mut data, mut len) = (null_mut(), 0usize);
    // SAFETY: live out-parameters; the result is taken by `owned`.
    let status = unsafe { proxy_get_header_map_pairs(map, &mut data, &mut len) };
    match status {
        NOT_FOUND => Ok(None),
        _ => check(status, &[]).map(|()| owned(data, len)),
    }
}

/// Sets (replaces) a header of `map`.
pub fn set_header(map: u32, name: &str, value: &str) -> Result<(), HostError> {
    // SAFETY: live key and value buffers of the stated lengths.
    let status = unsafe {
        proxy_replace_header_map_value(map, name.as_ptr(), name.len(), value.as_ptr(), value.len())
    };
    check(status, &[])
}

/// Removes a header of `map`.
pub fn remove_header(map: u32, name: &str) -> Result<(), HostError> {
    // SAFETY: a live key buffer of the stated length.
    let status = unsafe { proxy_remove_header_map_value(map, name.as_ptr(), name.len()) };
    check(status, &[])
}

/// A property by path, its parts joined by NUL (`None`: absent or not available in this
/// phase).
pub fn property(path: &str) -> Result<Option<Vec<u8>>, HostError> {
    let (mut data, mut len) = (null_mut(), 0usize);
    // SAFETY: a live path buffer and live out-parameters; the result is taken by `owned`.
    let status = unsafe { proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut len) };
    match status {
        NOT_FOUND => Ok(None),
        _ => check(status, &[]).map(|()| owned(data, len)),
    }
}

/// A shared-data value and its CAS token (`None`: no such key).
pub fn shared_data(key: &str) -> Result<Option<(Vec<u8>, u32)>, HostError> {
    let (mut data, mut len, mut cas) = (null_mut(), 0usize, 0u32);
    // SAFETY: a live key buffer and live out-parameters; the value is taken by `owned`.
    let status =
        unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut len, &mut cas) };
    match status {
        NOT_FOUND => Ok(None),
        _ => check(status, &[]).map(|()| Some((owned(data, len).unwrap_or_default(), cas))),
    }
}

/// Writes a shared-data value; with `cas`, only if the key is still at that version (a lost
/// race is [`HostError::is_cas_mismatch`]).
pub fn set_shared_data(key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError> {
    // SAFETY: live key and value buffers of the stated lengths.
    let status = unsafe {
        proxy_set_shared_data(
            key.as_ptr(),
            key.len(),
            value.as_ptr(),
            value.len(),
            cas.unwrap_or(0),
        )
    };
    check(status, &[CAS_MISMATCH])
}

/// Serialises a header map the way the ABI reads one: a count, each name's and value's
/// length, then each name and value followed by a NUL.
fn serialize_map(pairs: &[(&str, &[u8])]) -> Vec<u8> {
    let size = 4 + pairs
        .iter()
        .map(|(k, v)| k.len() + v.len() + 10)
        .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    let length = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    out.extend_from_slice(&length(pairs.len()));
    for (name, value) in pairs {
        out.extend_from_slice(&length(name.len()));
        out.extend_from_slice(&length(value.len()));
    }
    for (name, value) in pairs {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(value);
        out.push(0);
    }
    out
}

/// Answers the current stream locally: `grpc_status` −1 for a plain HTTP reply, else a gRPC
/// status (the body is then the gRPC message).
pub fn send_local_response(
    status_code: u32,
    body: &[u8],
    headers: &[(&str, &[u8])],
    grpc_status: i32,
) -> Result<(), HostError> {
    let map = serialize_map(headers);
    // SAFETY: live body and header buffers of the stated lengths; no details (null, 0).
    let status = unsafe {
        proxy_send_local_response(
            status_code,
            null(),
            0,
            body.as_ptr(),
            body.len(),
            map.as_ptr(),
            map.len(),
            grpc_status,
        )
    };
    check(status, &[])
}

/// Makes `context_id` the context later calls act on (`BadArgument`: it is gone).
pub fn set_effective_context(context_id: u32) -> Result<(), HostError> {
    // SAFETY: no pointers.
    let status = unsafe { proxy_set_effective_context(context_id) };
    check(status, &[BAD_ARGUMENT])
}

/// Resumes the effective context's paused request.
pub fn continue_request() -> Result<(), HostError> {
    // SAFETY: no pointers.
    let status = unsafe { proxy_continue_stream(HTTP_REQUEST) };
    check(status, &[BAD_ARGUMENT, NOT_FOUND])
}

/// Defines a metric (0 counter, 1 gauge, 2 histogram); returns its id.
pub fn define_metric(kind: u32, name: &str) -> Result<u32, HostError> {
    let mut id = 0u32;
    // SAFETY: a live name buffer and a live out-parameter.
    let status = unsafe { proxy_define_metric(kind, name.as_ptr(), name.len(), &mut id) };
    check(status, &[BAD_ARGUMENT]).map(|()| id)
}

/// Adds `offset` to a counter.
pub fn increment_metric(id: u32, offset: i64) -> Result<(), HostError> {
    // SAFETY: no pointers.
    let status = unsafe { proxy_increment_metric(id, offset) };
    check(status, &[NOT_FOUND, BAD_ARGUMENT])
}

/// Sets a gauge or records a histogram value.
pub fn record_metric(id: u32, value: u64) -> Result<(), HostError> {
    // SAFETY: no pointers.
    let status = unsafe { proxy_record_metric(id, value) };
    check(status, &[NOT_FOUND, BAD_ARGUMENT])
}
