//! `proxy_get_property` / `proxy_set_property` (see `crate::properties` for the scoping and
//! encoding rules). Lookup order for a stream attribute: the stream's test overrides, the
//! host's stream defaults, then values Envoy derives from the stream itself
//! (`request.time`, `request.path`, `request.method`, `request.host`, `request.scheme`,
//! `request.url_path`, `request.id`, `request.useragent`, `request.referer`,
//! `request.headers`, `response.code`, `response.headers`).

use wasmtime::Linker;

use super::mem::{return_scratch, slice, split, HostResult, C, INVALID_MEMORY, OK};
use crate::pairs::HeaderMap;
use crate::properties::{first_segment, is_global, is_reserved};
use crate::state::StreamState;
use crate::types::Status;
use crate::worker::WorkerState;

const NOT_FOUND: i32 = Status::NotFound.code();

fn header_value(map: &HeaderMap, key: &[u8], out: &mut Vec<u8>) -> bool {
    match map.get(key) {
        Some(v) => {
            out.extend_from_slice(v);
            true
        }
        None => false,
    }
}

/// Attributes Envoy computes from the stream.
fn derived(s: &StreamState, path: &[u8], out: &mut Vec<u8>) -> bool {
    let req = &s.request.headers;
    match path {
        b"request\0time" => {
            out.extend_from_slice(
                &i64::try_from(s.start_unix_ns)
                    .unwrap_or(i64::MAX)
                    .to_le_bytes(),
            );
            true
        }
        b"request\0path" => header_value(req, b":path", out),
        b"request\0url_path" => match req.get(b":path") {
            Some(p) => {
                let end = p.iter().position(|b| *b == b'?').unwrap_or(p.len());
                out.extend_from_slice(&p[..end]);
                true
            }
            None => false,
        },
        b"request\0host" => header_value(req, b":authority", out),
        b"request\0method" => header_value(req, b":method", out),
        b"request\0scheme" => header_value(req, b":scheme", out),
        b"request\0id" => header_value(req, b"x-request-id", out),
        b"request\0useragent" => header_value(req, b"user-agent", out),
        b"request\0referer" => header_value(req, b"referer", out),
        b"request\0headers" if s.request.headers_seen => {
            req.serialize_into(out);
            true
        }
        b"response\0code" => match s.response_code {
            Some(code) => {
                out.extend_from_slice(&i64::from(code).to_le_bytes());
                true
            }
            None => false,
        },
        b"response\0headers" if s.response.headers_seen => {
            s.response.headers.serialize_into(out);
            true
        }
        _ => false,
    }
}

fn lookup(st: &WorkerState, path: &[u8], out: &mut Vec<u8>) -> bool {
    let root = first_segment(path);
    let stream = st.stream();
    if let Some(v) = stream.and_then(|s| s.properties.get(path)) {
        out.extend_from_slice(v);
        return true;
    }
    if is_global(root) {
        if let Some(v) = st.cfg.global_properties.get(path) {
            out.extend_from_slice(v);
            return true;
        }
        let builtin = match path {
            b"plugin_name" => &st.cfg.plugin_name,
            b"plugin_root_id" => &st.cfg.root_id,
            b"plugin_vm_id" => &st.cfg.vm_id,
            _ => return false,
        };
        out.extend_from_slice(builtin.as_bytes());
        return true;
    }
    let Some(s) = stream else {
        return false;
    };
    if is_reserved(root) {
        if let Some(v) = st.cfg.stream_properties.get(path) {
            out.extend_from_slice(v);
            return true;
        }
        return derived(s, path, out);
    }
    // Filter state written by proxy_set_property, found by the first segment only.
    match s.filter_state.get(root) {
        Some(v) if root.len() == path.len() => {
            out.extend_from_slice(v);
            true
        }
        _ => false,
    }
}

fn get_property(mut c: C<'_>, ptr: i32, len: i32, ptr_ptr: i32, size_ptr: i32) -> HostResult {
    if let Some(status) = super::injected(&mut c, "proxy_get_property") {
        return Ok(status);
    }
    let Some((mem, st)) = split(&mut c) else {
        return Ok(INVALID_MEMORY);
    };
    let Some(path) = slice(mem, ptr, len) else {
        return Ok(INVALID_MEMORY);
    };
    let mut scratch = std::mem::take(&mut st.scratch);
    scratch.clear();
    let found = lookup(st, path, &mut scratch);
    st.scratch = scratch;
    if !found {
        return Ok(NOT_FOUND);
    }
    return_scratch(&mut c, ptr_ptr, size_ptr)
}

fn set_property(mut c: C<'_>, ptr: i32, len: i32, vptr: i32, vlen: i32) -> HostResult {
    let Some((mem, st)) = split(&mut c) else {
        return Ok(INVALID_MEMORY);
    };
    let (Some(path), Some(value)) = (slice(mem, ptr, len), slice(mem, vptr, vlen)) else {
        return Ok(INVALID_MEMORY);
    };
    match st.stream_mut() {
        Some(s) => {
            s.filter_state.set_raw(path, value);
            Ok(OK)
        }
        None => Ok(NOT_FOUND),
    }
}

pub(crate) fn register(l: &mut Linker<WorkerState>) -> wasmtime::Result<()> {
    l.func_wrap("env", "proxy_get_property", get_property)?;
    l.func_wrap("env", "proxy_set_property", set_property)?;
    Ok(())
}
