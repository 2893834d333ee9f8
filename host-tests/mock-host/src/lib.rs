//! A mock proxy-wasm ABI 0.2.1 host with Envoy's semantics, built on wasmtime.
//!
//! Why: the ballast plugin must behave in Envoy exactly as in its tests. Envoy itself is
//! too slow and coarse to drive thousands of precise scenarios (chosen interleavings of
//! workers, virtual time, exact status codes), and the proxy-wasm Rust SDK panics on any
//! host answer it does not expect, so a mock that is "roughly" right hides or invents
//! crashes. This host runs the real `.wasm` in wasmtime and answers every host call the way
//! Envoy 1.40 does (status codes, map serialization, phase availability, deferred stream
//! control), with these test-only powers:
//! - a virtual clock shared by all workers, advanced by the test (ticks fire in order);
//! - N worker VMs sharing shared data, queues and metrics, driven in any interleaving;
//! - state-based inspection: headers after each phase, local replies, logs, metrics;
//! - another host's documented differences instead of Envoy's answers ([`HostProfile`]).
//!
//! ```no_run
//! use ballast_mock_host::{Action, Host, PluginModule};
//! # fn main() -> ballast_mock_host::Result<()> {
//! let module = PluginModule::load("target/wasm32-wasip1/release/ballast_fixture_plugin.wasm")?;
//! let mut host = Host::builder(&module).workers(2).plugin_config("{}").build()?;
//! assert!(host.start()?.all_ok());
//! let mut stream = host.http_stream(0)?;
//! let action = stream.request_headers(&[(":method", "GET"), (":path", "/"), (":authority", "x")], true)?;
//! assert_eq!(action, Action::Continue);
//! stream.response_headers(&[(":status", "200")], true)?;
//! stream.finish()?;
//! host.advance(std::time::Duration::from_secs(1))?;
//! # Ok(()) }
//! ```

mod abi;
mod clock;
mod error;
mod host;
mod inspect;
mod metrics;
mod module;
mod pairs;
mod profile;
mod properties;
mod roots;
mod shared;
mod state;
mod stream;
mod types;
mod worker;

pub use error::{Error, ErrorKind, Result};
pub use host::{Host, HostBuilder};
pub use inspect::GrpcResponse;
pub use metrics::{Histogram, MetricType};
pub use module::PluginModule;
pub use profile::HostProfile;
pub use properties::{wire_path, PropertyValue};
pub use shared::ForeignFunction;
pub use stream::{Stream, StreamId};
pub use types::{
    Action, BufferType, CalloutId, GrpcCall, HttpCall, HttpCallResponse, LocalResponse, LogEntry,
    LogLevel, MapType, StartOutcome, Status, StreamType, WorkerStart,
};
pub use wasmtime::Val;
