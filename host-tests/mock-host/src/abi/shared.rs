//! Shared data and shared queues.
//!
//! Shared data is one key-value store per vm_id, common to all workers: a get of a missing
//! key is NOT_FOUND, a set with a non-zero cas that differs from the stored one is
//! CAS_MISMATCH (cas 0 always writes), every write gets a fresh non-zero cas. (The
//! ngx_wasm_module profile's stricter rule is `HostProfile::cas_allows`.)
//!
//! Queues are named per vm_id. Registering from a stream context registers its root context
//! (the one that gets `proxy_on_queue_ready`); re-registering keeps the items and moves the
//! notifications to the latest registrant. Resolving an unknown queue is NOT_FOUND (an empty
//! vm_id means the caller's own), dequeuing an unknown token NOT_FOUND and an empty queue
//! EMPTY. Each enqueue posts one `proxy_on_queue_ready` to the registrant's worker, delivered
//! after the current host operation, as Envoy posts it to that worker's event loop.

use wasmtime::Linker;

use super::mem::{put_u32, return_scratch, slice, split, HostResult, C, INVALID_MEMORY, OK};
use crate::types::Status;
use crate::worker::WorkerState;

const NOT_FOUND: i32 = Status::NotFound.code();

fn get_data(
    mut c: C<'_>,
    kptr: i32,
    klen: i32,
    ptr_ptr: i32,
    size_ptr: i32,
    cas_ptr: i32,
) -> HostResult {
    if let Some(status) = super::injected(&mut c, "proxy_get_shared_data") {
        return Ok(status);
    }
    let Some((mem, st)) = split(&mut c) else {
        return Ok(INVALID_MEMORY);
    };
    let Some(key) = slice(mem, kptr, klen) else {
        return Ok(INVALID_MEMORY);
    };
    let mut scratch = std::mem::take(&mut st.scratch);
    scratch.clear();
    let cas = match st.shared.get_data(key) {
        Some((value, cas)) => {
            scratch.extend_from_slice(value);
            Some(cas)
        }
        None => None,
    };
    st.scratch = scratch;
    let Some(cas) = cas else {
        return Ok(NOT_FOUND);
    };
    let status = return_scratch(&mut c, ptr_ptr, size_ptr)?;
    if status != OK {
        return Ok(status);
    }
    let Some((mem, _)) = split(&mut c) else {
        return Ok(INVALID_MEMORY);
    };
    if !put_u32(mem, cas_ptr, cas) {
        return Ok(INVALID_MEMORY);
    }
    Ok(OK)
}

fn set_data(mut c: C<'_>, kptr: i32, klen: i32, vptr: i32, vlen: i32, cas: i32) -> HostResult {
    if let Some(status) = super::injected(&mut c, "proxy_set_shared_data") {
        return Ok(status);
    }
    let Some((mem, st)) = split(&mut c) else {
        return Ok(INVALID_MEMORY);
    };
    let (Some(key), Some(value)) = (slice(mem, kptr, klen), slice(mem, vptr, vlen)) else {
        return Ok(INVALID_MEMORY);
    };
    let profile = st.cfg.profile;
    Ok(st.shared.set_data(key, value, cas as u32, profile).code())
}

fn register_queue(mut c: C<'_>, nptr: i32, nlen: i32, token_ptr: i32) -> HostResult {
    let Some((mem, st)) = split(&mut c) else {
        return Ok(INVALID_MEMORY);
    };
    let Some(name) = slice(mem, nptr, nlen) else {
        return Ok(INVALID_MEMORY);
    };
    // onQueueReady is delivered to the root context, also for a stream's registration.
    let root = st.root_id;
    let worker = st.index;
    let vm_id = st.cfg.vm_id.clone();
    let token = st
        .shared
        .register_queue(vm_id.as_bytes(), name, worker, root);
    if !put_u32(mem, token_ptr, token) {
        return Ok(INVALID_MEMORY);
    }
    Ok(OK)
}

fn resolve_queue(
    mut c: C<'_>,
    vptr: i32,
    vlen: i32,
    nptr: i32,
    nlen: i32,
    token_ptr: i32,
) -> HostResult {
    let Some((mem, st)) = split(&mut c) else {
        return Ok(INVALID_MEMORY);
    };
    let (Some(vm_id), Some(name)) = (slice(mem, vptr, vlen), slice(mem, nptr, nlen)) else {
        return Ok(INVALID_MEMORY);
    };
    let vm_id = if vm_id.is_empty() {
        st.cfg.vm_id.as_bytes()
    } else {
        vm_id
    };
    let Some(token) = st.shared.resolve_queue(vm_id, name) else {
        return Ok(NOT_FOUND);
    };
    if !put_u32(mem, token_ptr, token) {
        return Ok(INVALID_MEMORY);
    }
    Ok(OK)
}

fn dequeue(mut c: C<'_>, token: i32, ptr_ptr: i32, size_ptr: i32) -> HostResult {
    let st = c.data_mut();
    match st.shared.dequeue(token as u32) {
        Err(status) => Ok(status.code()),
        Ok(item) => {
            st.scratch.clear();
            st.scratch.extend_from_slice(&item);
            return_scratch(&mut c, ptr_ptr, size_ptr)
        }
    }
}

fn enqueue(mut c: C<'_>, token: i32, ptr: i32, len: i32) -> HostResult {
    let Some((mem, st)) = split(&mut c) else {
        return Ok(INVALID_MEMORY);
    };
    let Some(value) = slice(mem, ptr, len) else {
        return Ok(INVALID_MEMORY);
    };
    Ok(st.shared.enqueue(token as u32, value).code())
}

pub(crate) fn register(l: &mut Linker<WorkerState>) -> wasmtime::Result<()> {
    l.func_wrap("env", "proxy_get_shared_data", get_data)?;
    l.func_wrap("env", "proxy_set_shared_data", set_data)?;
    l.func_wrap("env", "proxy_register_shared_queue", register_queue)?;
    l.func_wrap("env", "proxy_resolve_shared_queue", resolve_queue)?;
    l.func_wrap("env", "proxy_dequeue_shared_queue", dequeue)?;
    l.func_wrap("env", "proxy_enqueue_shared_queue", enqueue)?;
    Ok(())
}
