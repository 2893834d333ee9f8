//! `ballast-demo-upstream`: a small HTTP/1.1 + HTTP/2 (h2c) server on loopback that plays
//! the upstream behind Envoy in ballast's end-to-end tests, benchmarks and `make run`.
//!
//! It models a service with limited capacity, so concurrency-limit and load-shedding
//! tests are meaningful: at most `capacity` requests are served at once, the rest wait in
//! a FIFO queue (optionally bounded), each holds its slot for the service time, and a
//! seeded fraction of requests fails. Everything can be changed per request by headers
//! (see [Request headers](#request-headers)) or live through `/__demo/config`.
//!
//! # Request headers
//! - `x-demo-delay-ms: N` — service time of this request in ms (replaces the configured
//!   service time and jitter; `extra_latency_ms` is still added).
//! - `x-demo-status: N` — answer with this status (200..=599).
//! - `x-demo-fail-ratio: 0.x` — failure ratio for this request.
//! - `x-demo-grpc-status: N` — `grpc-status` of a failing gRPC request.
//!
//! Every ordinary answer is JSON `{"path", "query", "method", "headers", "served_by":
//! "demo-upstream", "status", "body_bytes"}`; `x-envoy-attempt-count` is echoed as
//! `x-demo-attempt`. Requests with `content-type: application/grpc*` get HTTP 200 with a
//! `grpc-status` trailer (14 for an injected 503).
//!
//! # Admin endpoints (not counted, bypass capacity)
//! `GET /__demo/health`, `GET /__demo/stats`, `POST /__demo/reset`,
//! `GET|POST /__demo/config`.
//!
//! # In-process use
//! ```no_run
//! use ballast_demo_upstream::{spawn, Settings, UpstreamConfig};
//! let up = spawn(UpstreamConfig {
//!     settings: Settings { capacity: 2, service_time_ms: 50, ..Settings::default() },
//!     ..UpstreamConfig::default()
//! })?;
//! println!("upstream at {}", up.addr());
//! # Ok::<(), ballast_demo_upstream::Error>(())
//! ```

mod admin;
mod app;
mod body;
mod config;
mod error;
mod gate;
mod handler;
mod rng;
mod server;
mod stats;

pub use app::Control;
pub use config::{check_loopback, ConfigPatch, Settings, UpstreamConfig};
pub use error::Error;
pub use rng::SplitMix64;
pub use server::{spawn, RunningUpstream, Upstream, SHUTDOWN_GRACE};
pub use stats::StatsSnapshot;
