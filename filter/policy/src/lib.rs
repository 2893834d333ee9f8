//! ballast's resilience policies as pure logic.
//!
//! Why a separate crate: everything that decides what happens to a request lives here, with no
//! proxy-wasm dependency, no clock reads and no I/O. Time is an argument and every decision is a
//! returned value, so the same code is tested natively, under `wasm-bindgen-test` on
//! `wasm32-unknown-unknown`, and inside the real plugin through the mock host — and behaves the
//! same in all three. The plugin crate (`filter/plugin`) only translates between this crate and
//! the proxy-wasm host.
//!
//! The entry point is [`config::Config::from_json`], which turns the plugin configuration into a
//! validated [`config::Config`] (a policy that exists is a valid policy), and
//! [`routing::RouteTable`], which maps a request to its policy set.

#![forbid(unsafe_code)]

pub mod concurrency;
pub mod config;
pub mod deadline;
pub mod duration;
pub mod env;
pub mod headers;
pub mod metrics;
pub mod numeric;
pub mod pipeline;
pub mod reply;
pub mod retry;
pub mod routing;
pub mod shedding;
pub mod store;
pub mod trust;

#[cfg(test)]
mod test_support;
