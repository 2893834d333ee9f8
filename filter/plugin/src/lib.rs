//! ballast as a proxy-wasm (ABI 0.2.1) HTTP filter.
//!
//! Why this crate is thin: every decision lives in `ballast-policy`, which is pure and tested on
//! its own. This crate only translates: it reads the plugin configuration and opens the policy
//! pipeline (`root`), hands each HTTP callback to it with the request attributes it asks for
//! (`http`, `request`), and performs the effects it returns. Every host call is in `host`;
//! metric handles in `metrics`.
//!
//! The ABI is ballast's own, both ways (`abi`): the imports, because the SDK's `hostcalls`
//! panic on any status they do not expect and its `String` conveniences `unwrap()` UTF-8
//! conversions, and a panic kills the VM; the entry points (`abi::exports`, dispatched by
//! `contexts`), because the SDK's dispatcher panics on a context id it does not know and costs
//! every callback of every request a hash-map lookup through trait objects. No proxy-wasm SDK
//! is linked.

mod abi;
mod contexts;
mod header_block;
mod host;
mod http;
mod logging;
mod metrics;
mod request;
mod root;
