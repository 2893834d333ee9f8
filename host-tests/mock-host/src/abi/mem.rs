//! Guest-memory helpers shared by the host functions.
//!
//! Pointers and sizes arrive as wasm32 `i32` and are reinterpreted as `u32`. A range outside
//! the guest memory yields `INVALID_MEMORY_ACCESS`, as in proxy-wasm-cpp-host. Data handed
//! back to the plugin is staged in the worker's reusable `scratch` buffer, then copied into
//! memory the plugin allocates through its `malloc`/`proxy_on_memory_allocate` export.

use wasmtime::Caller;

use crate::types::Status;
use crate::worker::WorkerState;

pub(crate) type C<'a> = Caller<'a, WorkerState>;

/// Result of a host function: a status code, or a trap from a nested call (malloc).
pub(crate) type HostResult = wasmtime::Result<i32>;

pub(crate) const OK: i32 = Status::Ok.code();
pub(crate) const INVALID_MEMORY: i32 = Status::InvalidMemoryAccess.code();

pub(crate) fn range(ptr: i32, len: i32) -> Option<std::ops::Range<usize>> {
    let start = usize::try_from(ptr as u32).ok()?;
    let len = usize::try_from(len as u32).ok()?;
    Some(start..start.checked_add(len)?)
}

pub(crate) fn slice(mem: &[u8], ptr: i32, len: i32) -> Option<&[u8]> {
    mem.get(range(ptr, len)?)
}

pub(crate) fn put_bytes(mem: &mut [u8], ptr: i32, bytes: &[u8]) -> bool {
    let Ok(len) = i32::try_from(bytes.len()) else {
        return false;
    };
    match range(ptr, len).and_then(|r| mem.get_mut(r)) {
        Some(dst) => {
            dst.copy_from_slice(bytes);
            true
        }
        None => false,
    }
}

pub(crate) fn put_u32(mem: &mut [u8], ptr: i32, value: u32) -> bool {
    put_bytes(mem, ptr, &value.to_le_bytes())
}

pub(crate) fn put_u64(mem: &mut [u8], ptr: i32, value: u64) -> bool {
    put_bytes(mem, ptr, &value.to_le_bytes())
}

/// Splits the caller into guest memory and worker state.
pub(crate) fn split<'a>(c: &'a mut C<'_>) -> Option<(&'a mut [u8], &'a mut WorkerState)> {
    let memory = c.data().memory?;
    Some(memory.data_and_store_mut(c))
}

/// Hands `scratch` to the plugin: allocates guest memory for it and writes the pointer and
/// size. Empty data is returned as a null pointer with size 0, as Envoy's
/// `copyToPointerSize` does.
pub(crate) fn return_scratch(c: &mut C<'_>, ptr_ptr: i32, size_ptr: i32) -> HostResult {
    let len = c.data().scratch.len();
    let mut addr: i32 = 0;
    if len > 0 {
        // An `Arc` clone: cheap, unlike cloning the `TypedFunc` itself.
        let Some(malloc) = c.data().malloc.clone() else {
            return Ok(INVALID_MEMORY);
        };
        let Ok(size) = i32::try_from(len) else {
            return Ok(INVALID_MEMORY);
        };
        addr = malloc.call(&mut *c, size)?;
        if addr == 0 {
            return Ok(INVALID_MEMORY);
        }
    }
    let Some((mem, st)) = split(c) else {
        return Ok(INVALID_MEMORY);
    };
    if len > 0 && !put_bytes(mem, addr, &st.scratch) {
        return Ok(INVALID_MEMORY);
    }
    let size = u32::try_from(len).unwrap_or(u32::MAX);
    if !put_u32(mem, ptr_ptr, addr as u32) || !put_u32(mem, size_ptr, size) {
        return Ok(INVALID_MEMORY);
    }
    Ok(OK)
}
