//! ballast as a proxy-wasm (ABI 0.2.1) HTTP filter.
//!
//! Why this crate is thin: every decision lives in `ballast-policy`, which is pure and tested on
//! its own. This crate only translates: it reads the plugin configuration and opens the policy
//! pipeline (`root`), hands each HTTP callback to it with the request attributes it asks for
//! (`http`, `request`), and performs the effects it returns. Every host call is in `host`;
//! metric handles in `metrics`.
//!
//! Host calls go through `abi`, which declares the proxy-wasm imports itself: the SDK's
//! `hostcalls` panic on any status they do not expect and its `String` conveniences `unwrap()`
//! UTF-8 conversions, and a panic kills the VM. The SDK still provides the entry points and the
//! context traits.

mod abi;
mod header_block;
mod host;
mod http;
mod logging;
mod metrics;
mod request;
mod root;

/// The module's entry point: the host calls `_initialize` once per VM, which registers the root
/// context.
mod entry {
    proxy_wasm::main! {{
        crate::logging::init();
        proxy_wasm::set_root_context(|_context_id| -> Box<dyn proxy_wasm::traits::RootContext> {
            Box::new(crate::root::BallastRoot::default())
        });
    }}
}
