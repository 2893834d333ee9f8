//! Read-modify-write of proxy-wasm shared data with compare-and-swap.
//!
//! Why: Envoy runs one VM per worker thread; state that must be one per process (a retry
//! budget, a concurrency limit) lives in shared data, and concurrent updates from several
//! workers are serialised by CAS. Retries of a lost race are bounded so a request never spins;
//! when they run out the caller gets [`Update::Contended`] and decides (and counts) what to do.

use proxy_wasm::hostcalls;
use proxy_wasm::types::Status;

/// Attempts of one read-modify-write before giving up.
pub const MAX_CAS_ATTEMPTS: u32 = 8;

/// Result of [`update`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update<T> {
    /// The new value was stored; `T` is what the closure returned with it.
    Stored(T),
    /// Every attempt lost a CAS race.
    Contended,
    /// The host refused the operation (not expected from Envoy).
    Failed,
}

/// Applies `change` to the current bytes of `key` (`None` when absent) and stores the result
/// with CAS, retrying up to [`MAX_CAS_ATTEMPTS`] times. `change` may run more than once.
pub fn update<T>(key: &str, mut change: impl FnMut(Option<&[u8]>) -> (Vec<u8>, T)) -> Update<T> {
    for _ in 0..MAX_CAS_ATTEMPTS {
        let (current, cas) = match hostcalls::get_shared_data(key) {
            Ok(found) => found,
            Err(_) => return Update::Failed,
        };
        let (next, out) = change(current.as_deref());
        // A missing key has no CAS; Envoy then stores unconditionally. Keys are created once
        // in on_configure, so this only happens on the first write of a fresh process.
        match hostcalls::set_shared_data(key, Some(&next), cas) {
            Ok(()) => return Update::Stored(out),
            Err(Status::CasMismatch) => continue,
            Err(_) => return Update::Failed,
        }
    }
    Update::Contended
}

/// Reads the current bytes of `key`.
pub fn read(key: &str) -> Option<Vec<u8>> {
    hostcalls::get_shared_data(key)
        .ok()
        .and_then(|(value, _)| value)
}

/// Creates `key` with `initial` if it does not exist yet (first VM of the process wins).
pub fn ensure(key: &str, initial: &[u8]) {
    if let Ok((None, None)) = hostcalls::get_shared_data(key) {
        let _ = hostcalls::set_shared_data(key, Some(initial), None);
    }
}
