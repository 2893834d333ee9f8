//! The functions the host calls: the proxy-wasm ABI 0.2.1 entry points, each handing its
//! arguments to [`crate::contexts`] and its answer back as the ABI's integer.
//!
//! Why not the SDK's dispatcher: it finds each context in hash maps and panics (killing the
//! VM) on a context id it does not know; its trait objects and maps cost wasm operators on every
//! callback of every request, and its code a share of the .wasm. Here an unknown id has a
//! defined answer (continue, done) and the lookup is one integer-keyed map. Only the entry
//! points ballast needs are exported; a host skips the ones a module does not export (it
//! treats a missing request-body callback as "continue", for example).

use crate::contexts;
use std::mem::MaybeUninit;

/// `proxy_action_t`: let the stream go on, or hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Action {
    /// Continue processing the stream.
    Continue = 0,
    /// Stop until the plugin resumes the stream (or has answered it).
    Pause = 1,
}

/// Marks the ABI version the module speaks (the host reads the export's name).
#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

#[cfg(target_os = "wasi")]
extern "C" {
    fn __wasm_call_ctors();
}

/// Called once when the VM starts: static constructors, then the logger and panic hook.
#[no_mangle]
pub extern "C" fn _initialize() {
    #[cfg(target_os = "wasi")]
    // SAFETY: the linker's constructor function, called once before any other export, as a
    // WASI reactor's own `_initialize` would.
    unsafe {
        __wasm_call_ctors();
    }
    crate::logging::init();
}

/// Memory the host fills for the plugin (a header value, shared data, the configuration): a
/// boxed slice of exactly `size` bytes, which [`super::owned`] takes back as a `Vec`.
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    let buffer: Box<[MaybeUninit<u8>]> = Box::new_uninit_slice(size);
    Box::into_raw(buffer).cast::<u8>()
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(context_id: u32, parent_context_id: u32) {
    contexts::create(context_id, parent_context_id);
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_context_id: u32, _vm_configuration_size: usize) -> bool {
    true
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(context_id: u32, plugin_configuration_size: usize) -> bool {
    contexts::configure(context_id, plugin_configuration_size)
}

#[no_mangle]
pub extern "C" fn proxy_on_tick(context_id: u32) {
    contexts::tick(context_id);
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(
    context_id: u32,
    _num_headers: usize,
    _end_of_stream: bool,
) -> Action {
    contexts::with_stream(context_id, |stream| stream.on_request_headers())
}

#[no_mangle]
pub extern "C" fn proxy_on_response_headers(
    context_id: u32,
    _num_headers: usize,
    end_of_stream: bool,
) -> Action {
    contexts::with_stream(context_id, |stream| {
        stream.on_response_headers(end_of_stream)
    })
}

#[no_mangle]
pub extern "C" fn proxy_on_response_body(
    context_id: u32,
    _body_size: usize,
    end_of_stream: bool,
) -> Action {
    contexts::with_stream(context_id, |stream| stream.on_response_body(end_of_stream))
}

#[no_mangle]
pub extern "C" fn proxy_on_response_trailers(context_id: u32, _num_trailers: usize) -> Action {
    contexts::with_stream(context_id, |stream| stream.on_response_trailers())
}

#[no_mangle]
pub extern "C" fn proxy_on_done(context_id: u32) -> bool {
    contexts::done(context_id)
}
