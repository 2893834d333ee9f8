//! Drives real Envoy 1.40 with the real ballast .wasm, on loopback only.
//!
//! Why real Envoy and not only the mock host: the things that matter most in production —
//! that Envoy accepts the plugin, refuses a bad configuration, aggregates metrics across workers
//! and honours the headers the plugin sets — are Envoy's behaviour, which no mock can prove.
//!
//! Every test starts its own Envoy on free ports with `--disable-hot-restart` (no shared-memory
//! clash between parallel tests), and every process is killed when its handle drops. Requests
//! go to 127.0.0.1 only, are bounded in count, and every wait has a timeout.

pub mod chain;
pub mod client;
pub mod envoy;
pub mod grpc;
pub mod hops;
pub mod load;
pub mod paced;
pub mod paths;
pub mod prometheus;
pub mod skipped;
pub mod upstreams;

pub use client::{get, request, Response};
pub use envoy::{Envoy, EnvoyConfig};
