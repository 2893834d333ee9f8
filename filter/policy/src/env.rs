//! What a policy may touch besides its arguments: the process-wide store and its metrics.
//!
//! Why one small struct: policies that enforce across workers read and write shared state and
//! report numbers on almost every call; passing both as one value keeps signatures short and
//! makes it plain that nothing else (no clock, no host call) is reachable from a policy.

use crate::metrics::Telemetry;
use crate::store::SharedStore;

/// The shared store and metric sink of one policy set, as a policy call sees them.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    /// Process-wide state (proxy-wasm shared data in the plugin).
    pub store: &'a dyn SharedStore,
    /// The policy set's metrics and warnings.
    pub metrics: &'a dyn Telemetry,
}
