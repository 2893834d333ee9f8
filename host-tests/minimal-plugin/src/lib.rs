//! The smallest useful proxy-wasm HTTP filter: it reads one request header and lets the request
//! go on. Nothing else.
//!
//! Why it exists: `make bench` compares ballast with it on the same Envoy and the same V8. What
//! this filter costs over "no filter" is the floor any wasm plugin pays (creating a context per
//! stream, crossing into the VM for each callback, one header read); what ballast costs over
//! this filter is ballast's own cost, the part ballast can do something about. It is built with
//! the same profile and `wasm-opt` flags as ballast, so the comparison is like for like.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(MinimalRoot) });
}}

/// Accepts any configuration and makes one [`ReadOneHeader`] per stream.
struct MinimalRoot;

impl Context for MinimalRoot {}

impl RootContext for MinimalRoot {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(ReadOneHeader))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Reads `x-request-id` (bytes, so a non-UTF-8 value cannot panic) and continues.
struct ReadOneHeader;

impl Context for ReadOneHeader {}

impl HttpContext for ReadOneHeader {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        // The value is read only to pay for the read, as a real plugin would; it changes nothing.
        let _value = self.get_http_request_header_bytes("x-request-id");
        Action::Continue
    }
}
