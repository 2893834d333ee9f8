//! ballast as a proxy-wasm (ABI 0.2.1) HTTP filter.
//!
//! Why this crate is thin: every decision lives in `ballast-policy`, which is pure and tested on
//! its own. This crate only translates: it reads the plugin configuration and opens the policy
//! pipeline (`root`), hands each HTTP callback to it with the request attributes it asks for
//! (`http`, `request`), and performs the effects it returns. Every host call is in `host`;
//! metric handles in `metrics`.
//!
//! Host calls go through `proxy_wasm::hostcalls` with bytes, never the SDK's `String`
//! conveniences: those `unwrap()` UTF-8 conversions, so one header with a non-UTF-8 byte would
//! panic and kill the VM.

mod host;
mod http;
mod metrics;
mod request;
mod root;

/// The module's entry point: the host calls `_initialize` once per VM, which registers the root
/// context.
mod entry {
    proxy_wasm::main! {{
        proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
        proxy_wasm::set_root_context(|_context_id| -> Box<dyn proxy_wasm::traits::RootContext> {
            Box::new(crate::root::BallastRoot::default())
        });
    }}
}
