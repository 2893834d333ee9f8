//! Buffers (`proxy_get_buffer_bytes`, `proxy_get_buffer_status`, `proxy_set_buffer_bytes`).
//!
//! Envoy's rules:
//! - a buffer id above 8 is BAD_ARGUMENT;
//! - the plugin configuration exists only during `proxy_on_configure`, the http-call
//!   response body only during `proxy_on_http_call_response` (NOT_FOUND otherwise); the
//!   request/response body outside its callback reads as empty (OK, null, 0);
//! - reads are clamped to the buffer (`start` past the end reads nothing);
//! - writes only change a live request/response body: `start == 0` drains `size` bytes
//!   from the front and prepends the data (so `(0, len, data)` replaces everything and
//!   `(0, 0, data)` prepends), `start >= len` appends, anything else is BAD_ARGUMENT; every
//!   other buffer is read-only (BAD_ARGUMENT).

use wasmtime::Linker;

use super::mem::{put_u32, return_scratch, slice, split, HostResult, C, INVALID_MEMORY, OK};
use crate::state::Side;
use crate::types::{BufferType, Status};
use crate::worker::WorkerState;

const BAD_ARGUMENT: i32 = Status::BadArgument.code();
const NOT_FOUND: i32 = Status::NotFound.code();

/// The bytes a read of this buffer sees, or `None` for NOT_FOUND.
fn read_view(st: &WorkerState, buffer: BufferType) -> Option<&[u8]> {
    const EMPTY: &[u8] = &[];
    match buffer {
        BufferType::RequestBody | BufferType::ResponseBody => {
            let side = if buffer == BufferType::RequestBody {
                Side::Request
            } else {
                Side::Response
            };
            Some(match st.stream().map(|s| s.dir(side)) {
                Some(d) if d.body_live => d.body.as_slice(),
                _ => EMPTY,
            })
        }
        BufferType::DownstreamData | BufferType::UpstreamData => Some(EMPTY),
        BufferType::HttpCallResponseBody => st.http_response.as_ref().map(|r| r.body.as_slice()),
        BufferType::GrpcReceiveBuffer => Some(st.grpc_message.as_deref().unwrap_or(EMPTY)),
        BufferType::VmConfiguration => Some(st.cfg.vm_config.as_slice()),
        BufferType::PluginConfiguration => {
            st.in_configure.then_some(st.cfg.plugin_config.as_slice())
        }
        BufferType::CallData => Some(st.call_data.as_slice()),
    }
}

fn get_bytes(
    mut c: C<'_>,
    buffer: i32,
    start: i32,
    max: i32,
    ptr_ptr: i32,
    size_ptr: i32,
) -> HostResult {
    if let Some(status) = super::injected(&mut c, "proxy_get_buffer_bytes") {
        return Ok(status);
    }
    let Some(buffer) = BufferType::from_raw(buffer as u32) else {
        return Ok(BAD_ARGUMENT);
    };
    let st = c.data_mut();
    let mut scratch = std::mem::take(&mut st.scratch);
    scratch.clear();
    let found = match read_view(st, buffer) {
        None => false,
        Some(view) => {
            let start = start as u32 as usize;
            let max = max as u32 as usize;
            if start < view.len() {
                let end = view.len().min(start.saturating_add(max));
                scratch.extend_from_slice(&view[start..end]);
            }
            true
        }
    };
    c.data_mut().scratch = scratch;
    if !found {
        return Ok(NOT_FOUND);
    }
    return_scratch(&mut c, ptr_ptr, size_ptr)
}

fn get_status(mut c: C<'_>, buffer: i32, len_ptr: i32, flags_ptr: i32) -> HostResult {
    let Some(buffer) = BufferType::from_raw(buffer as u32) else {
        return Ok(BAD_ARGUMENT);
    };
    let Some((mem, st)) = split(&mut c) else {
        return Ok(INVALID_MEMORY);
    };
    let Some(len) = read_view(st, buffer).map(<[u8]>::len) else {
        return Ok(NOT_FOUND);
    };
    if !put_u32(mem, len_ptr, u32::try_from(len).unwrap_or(u32::MAX)) || !put_u32(mem, flags_ptr, 0)
    {
        return Ok(INVALID_MEMORY);
    }
    Ok(OK)
}

fn set_bytes(mut c: C<'_>, buffer: i32, start: i32, size: i32, ptr: i32, len: i32) -> HostResult {
    let Some(buffer) = BufferType::from_raw(buffer as u32) else {
        return Ok(BAD_ARGUMENT);
    };
    let Some((mem, st)) = split(&mut c) else {
        return Ok(INVALID_MEMORY);
    };
    if read_view(st, buffer).is_none() {
        return Ok(NOT_FOUND);
    }
    let Some(data) = slice(mem, ptr, len) else {
        return Ok(INVALID_MEMORY);
    };
    let side = match buffer {
        BufferType::RequestBody => Side::Request,
        BufferType::ResponseBody => Side::Response,
        _ => return Ok(BAD_ARGUMENT),
    };
    let Some(dir) = st.stream_mut().map(|s| s.dir_mut(side)) else {
        return Ok(BAD_ARGUMENT);
    };
    if !dir.body_live {
        return Ok(BAD_ARGUMENT);
    }
    let start = start as u32 as usize;
    let size = size as u32 as usize;
    let body = &mut dir.body;
    if start == 0 {
        let drain = size.min(body.len());
        body.splice(..drain, data.iter().copied());
    } else if start >= body.len() {
        body.extend_from_slice(data);
    } else {
        return Ok(BAD_ARGUMENT);
    }
    Ok(OK)
}

/// Envoy's legacy `proxy_get_configuration`: the plugin configuration during
/// `on_configure`, the VM configuration otherwise.
fn get_configuration(mut c: C<'_>, ptr_ptr: i32, size_ptr: i32) -> HostResult {
    let st = c.data_mut();
    let mut scratch = std::mem::take(&mut st.scratch);
    scratch.clear();
    if st.in_configure {
        scratch.extend_from_slice(&st.cfg.plugin_config);
    } else {
        scratch.extend_from_slice(&st.cfg.vm_config);
    }
    st.scratch = scratch;
    return_scratch(&mut c, ptr_ptr, size_ptr)
}

pub(crate) fn register(l: &mut Linker<WorkerState>) -> wasmtime::Result<()> {
    l.func_wrap("env", "proxy_get_buffer_bytes", get_bytes)?;
    l.func_wrap("env", "proxy_get_buffer_status", get_status)?;
    l.func_wrap("env", "proxy_set_buffer_bytes", set_bytes)?;
    l.func_wrap("env", "proxy_get_configuration", get_configuration)?;
    Ok(())
}
