//! Header, trailer and metadata maps (`proxy_*_header_map_*`).
//!
//! Envoy's rules (extensions/common/wasm/context.cc):
//! - a map id above 7 is BAD_ARGUMENT;
//! - a map exists only while its phase holds it: request headers from `on_request_headers`
//!   until the plugin lets them through, http-call response maps during
//!   `on_http_call_response`, gRPC metadata during the matching gRPC callback;
//! - reading the pairs of an absent map gives OK with an empty map; reading one value of an
//!   absent map gives BAD_ARGUMENT (NOT_FOUND in `on_log`), a missing key NOT_FOUND;
//! - writing an absent map (and any write to maps 4-7, or in `on_log`) gives BAD_ARGUMENT;
//! - request (response) trailers can be added from the last body callback
//!   (`end_of_stream`), where Envoy creates them on demand.

use wasmtime::Linker;

use super::mem::{put_u32, return_scratch, slice, split, HostResult, C, INVALID_MEMORY, OK};
use crate::pairs::{parse_pairs, HeaderMap};
use crate::state::StreamState;
use crate::types::{MapType, Status};
use crate::worker::WorkerState;

const BAD_ARGUMENT: i32 = Status::BadArgument.code();
const NOT_FOUND: i32 = Status::NotFound.code();

/// The map a read sees, if it exists now.
fn const_map(st: &WorkerState, map: MapType) -> Option<&HeaderMap> {
    match map {
        MapType::GrpcReceiveInitialMetadata => return st.grpc_initial.as_ref(),
        MapType::GrpcReceiveTrailingMetadata => return st.grpc_trailing.as_ref(),
        MapType::HttpCallResponseHeaders => return st.http_response_map(false),
        MapType::HttpCallResponseTrailers => return st.http_response_map(true),
        _ => {}
    }
    let s = st.stream()?;
    let log = s.log_phase;
    match map {
        MapType::RequestHeaders if s.request.headers_live || (log && s.request.headers_seen) => {
            Some(&s.request.headers)
        }
        MapType::RequestTrailers if s.request.trailers_live && !log => Some(&s.request.trailers),
        MapType::ResponseHeaders if s.response.headers_live || (log && s.response.headers_seen) => {
            Some(&s.response.headers)
        }
        MapType::ResponseTrailers
            if s.response.trailers_live || (log && s.response.has_trailers) =>
        {
            Some(&s.response.trailers)
        }
        _ => None,
    }
}

/// The map a write changes, if it exists now.
fn mut_map(s: &mut StreamState, map: MapType) -> Option<&mut HeaderMap> {
    if s.log_phase {
        return None;
    }
    match map {
        MapType::RequestHeaders if s.request.headers_live => Some(&mut s.request.headers),
        MapType::RequestTrailers => {
            let d = &mut s.request;
            if !d.trailers_live && !d.has_trailers && d.body_live && d.end_of_stream {
                d.trailers_live = true;
                d.has_trailers = true;
                d.trailers.clear();
            }
            d.trailers_live.then_some(&mut d.trailers)
        }
        MapType::ResponseHeaders if s.response.headers_live => Some(&mut s.response.headers),
        MapType::ResponseTrailers => {
            let d = &mut s.response;
            if !d.trailers_live && !d.has_trailers && d.body_live && d.end_of_stream {
                d.trailers_live = true;
                d.has_trailers = true;
                d.trailers.clear();
            }
            d.trailers_live.then_some(&mut d.trailers)
        }
        _ => None,
    }
}

fn with_mut_map(st: &mut WorkerState, map: MapType, f: impl FnOnce(&mut HeaderMap)) -> i32 {
    match st.stream_mut().and_then(|s| mut_map(s, map)) {
        Some(m) => {
            f(m);
            OK
        }
        None => BAD_ARGUMENT,
    }
}

fn get_pairs(mut c: C<'_>, map: i32, ptr_ptr: i32, size_ptr: i32) -> HostResult {
    if let Some(status) = super::injected(&mut c, "proxy_get_header_map_pairs") {
        return Ok(status);
    }
    let Some(map) = MapType::from_raw(map as u32) else {
        return Ok(BAD_ARGUMENT);
    };
    let st = c.data_mut();
    let mut scratch = std::mem::take(&mut st.scratch);
    scratch.clear();
    if let Some(m) = const_map(st, map) {
        if m.len() > 0 {
            m.serialize_into(&mut scratch);
        }
    }
    c.data_mut().scratch = scratch;
    return_scratch(&mut c, ptr_ptr, size_ptr)
}

fn set_pairs(mut c: C<'_>, map: i32, ptr: i32, size: i32) -> HostResult {
    let Some(map) = MapType::from_raw(map as u32) else {
        return Ok(BAD_ARGUMENT);
    };
    let Some((mem, st)) = split(&mut c) else {
        return Ok(INVALID_MEMORY);
    };
    let Some(data) = slice(mem, ptr, size) else {
        return Ok(INVALID_MEMORY);
    };
    let pairs = parse_pairs(data);
    Ok(with_mut_map(st, map, |m| m.set_all(pairs)))
}

fn get_value(
    mut c: C<'_>,
    map: i32,
    kptr: i32,
    klen: i32,
    ptr_ptr: i32,
    size_ptr: i32,
) -> HostResult {
    if let Some(status) = super::injected(&mut c, "proxy_get_header_map_value") {
        return Ok(status);
    }
    let Some(map) = MapType::from_raw(map as u32) else {
        return Ok(BAD_ARGUMENT);
    };
    let Some((mem, st)) = split(&mut c) else {
        return Ok(INVALID_MEMORY);
    };
    let Some(key) = slice(mem, kptr, klen) else {
        return Ok(INVALID_MEMORY);
    };
    let mut scratch = std::mem::take(&mut st.scratch);
    scratch.clear();
    let status = match const_map(st, map) {
        None => {
            if st.stream().is_some_and(|s| s.log_phase) {
                NOT_FOUND
            } else {
                BAD_ARGUMENT
            }
        }
        Some(m) => match m.get(key) {
            Some(v) => {
                scratch.extend_from_slice(v);
                OK
            }
            None => NOT_FOUND,
        },
    };
    st.scratch = scratch;
    if status != OK {
        return Ok(status);
    }
    return_scratch(&mut c, ptr_ptr, size_ptr)
}

fn add_value(mut c: C<'_>, map: i32, kptr: i32, klen: i32, vptr: i32, vlen: i32) -> HostResult {
    let Some(map) = MapType::from_raw(map as u32) else {
        return Ok(BAD_ARGUMENT);
    };
    let Some((mem, st)) = split(&mut c) else {
        return Ok(INVALID_MEMORY);
    };
    let (Some(key), Some(value)) = (slice(mem, kptr, klen), slice(mem, vptr, vlen)) else {
        return Ok(INVALID_MEMORY);
    };
    Ok(with_mut_map(st, map, |m| m.add(key, value)))
}

fn replace_value(mut c: C<'_>, map: i32, kptr: i32, klen: i32, vptr: i32, vlen: i32) -> HostResult {
    if let Some(status) = super::injected(&mut c, "proxy_replace_header_map_value") {
        return Ok(status);
    }
    let Some(map) = MapType::from_raw(map as u32) else {
        return Ok(BAD_ARGUMENT);
    };
    let Some((mem, st)) = split(&mut c) else {
        return Ok(INVALID_MEMORY);
    };
    let (Some(key), Some(value)) = (slice(mem, kptr, klen), slice(mem, vptr, vlen)) else {
        return Ok(INVALID_MEMORY);
    };
    Ok(with_mut_map(st, map, |m| m.replace(key, value)))
}

fn remove_value(mut c: C<'_>, map: i32, kptr: i32, klen: i32) -> HostResult {
    if let Some(status) = super::injected(&mut c, "proxy_remove_header_map_value") {
        return Ok(status);
    }
    let Some(map) = MapType::from_raw(map as u32) else {
        return Ok(BAD_ARGUMENT);
    };
    let Some((mem, st)) = split(&mut c) else {
        return Ok(INVALID_MEMORY);
    };
    let Some(key) = slice(mem, kptr, klen) else {
        return Ok(INVALID_MEMORY);
    };
    Ok(with_mut_map(st, map, |m| m.remove(key)))
}

fn get_size(mut c: C<'_>, map: i32, result_ptr: i32) -> HostResult {
    let Some(map) = MapType::from_raw(map as u32) else {
        return Ok(BAD_ARGUMENT);
    };
    let Some((mem, st)) = split(&mut c) else {
        return Ok(INVALID_MEMORY);
    };
    // Envoy answers from the mutable map, so read-only maps are BAD_ARGUMENT here.
    let size = match st.stream_mut().and_then(|s| mut_map(s, map)) {
        Some(m) => m.byte_size(),
        None => return Ok(BAD_ARGUMENT),
    };
    if !put_u32(mem, result_ptr, u32::try_from(size).unwrap_or(u32::MAX)) {
        return Ok(INVALID_MEMORY);
    }
    Ok(OK)
}

pub(crate) fn register(l: &mut Linker<WorkerState>) -> wasmtime::Result<()> {
    l.func_wrap("env", "proxy_get_header_map_pairs", get_pairs)?;
    l.func_wrap("env", "proxy_set_header_map_pairs", set_pairs)?;
    l.func_wrap("env", "proxy_get_header_map_value", get_value)?;
    l.func_wrap("env", "proxy_add_header_map_value", add_value)?;
    l.func_wrap("env", "proxy_replace_header_map_value", replace_value)?;
    l.func_wrap("env", "proxy_remove_header_map_value", remove_value)?;
    l.func_wrap("env", "proxy_get_header_map_size", get_size)?;
    Ok(())
}
