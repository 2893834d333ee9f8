//! The host side of proxy-wasm ABI 0.2.1: every `env.proxy_*` import, plus the WASI subset
//! Envoy provides. Each submodule documents the Envoy behaviour it reproduces; the status
//! codes were taken from Envoy's `extensions/common/wasm/context.cc` and
//! proxy-wasm-cpp-host's `src/exports.cc`, since the Rust SDK panics on codes it does not
//! expect, a mock that answers differently would hide or invent crashes.

mod buffers;
mod callouts;
mod general;
mod headers;
pub(crate) mod mem;
mod metrics;
mod properties;
mod shared;
mod wasi;

use wasmtime::Linker;

use crate::worker::WorkerState;

/// The status a test made `import` return instead of doing its work (`Host::fail_import`):
/// how a plugin is tested against a host that answers what it does not expect. Every import
/// a plugin may call asks this first, so it is also where calls are counted when a benchmark
/// asked for it (`Host::count_host_calls`): on a real host each one crosses the VM boundary.
pub(crate) fn injected(c: &mut mem::C<'_>, import: &'static str) -> Option<i32> {
    let shared = &mut c.data_mut().shared;
    if let Some(counts) = shared.host_calls.as_mut() {
        *counts.entry(import).or_insert(0) += 1;
    }
    // Most hosts inject nothing: skip hashing the name on every call of every import.
    if shared.injected_statuses.is_empty() {
        return None;
    }
    shared.injected_statuses.get(import).copied()
}

/// Registers every host function.
pub(crate) fn register(linker: &mut Linker<WorkerState>) -> wasmtime::Result<()> {
    general::register(linker)?;
    headers::register(linker)?;
    buffers::register(linker)?;
    properties::register(linker)?;
    shared::register(linker)?;
    metrics::register(linker)?;
    callouts::register(linker)?;
    wasi::register(linker)?;
    Ok(())
}
