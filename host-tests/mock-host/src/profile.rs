//! Host profiles: which proxy-wasm host the mock answers as.
//!
//! Why: a plugin that is right for Envoy can hang requests or trap on another host, and the
//! difference only shows where the hosts differ. [`HostProfile::Envoy`] (the default) is what
//! the rest of this crate documents. [`HostProfile::NgxWasmModule`] reproduces the documented
//! differences of Kong's ngx_wasm_module (`docs/PROXY_WASM.md`, `docs/METRICS.md`,
//! `src/common/proxy_wasm/ngx_proxy_wasm_host.c` and `ngx_proxy_wasm.c` at 3bed278):
//! - metrics are stored as `pw:<filter_name>:<name>` (the filter name is
//!   [`crate::HostBuilder::plugin_name`]); a prefixed name over 256 bytes, an unknown metric
//!   type or id, incrementing anything but a counter and recording a counter all trap;
//! - `proxy_set_effective_context` does nothing and returns OK; `proxy_continue_stream` (either
//!   side) resumes the request of the *current* call; resuming, or sending a local response,
//!   from a root context (on_tick, where ngx has no request) traps;
//! - a filter may pause only in request headers, request body and response body; pausing in
//!   response headers without a local response logs "local response expected but none
//!   produced" (a host warning the test can see with [`crate::Host::host_warnings`]);
//!   trailers callbacks are never called and `end_of_stream` is always false in headers (a
//!   response without a body still gets `on_response_body` with `end_of_stream`);
//! - shared data CAS must match exactly: a write with cas 0 succeeds only for a missing key,
//!   and a non-zero cas on a missing key is a mismatch;
//! - `proxy_set_tick_period_milliseconds` outside a root context, or with a non-zero period
//!   while one is set, traps ("tick_period already set");
//! - a second local response on a stream traps ("local response already stashed").

/// The host whose answers the mock gives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HostProfile {
    /// Envoy 1.40 (proxy-wasm-cpp-host): everything else in this crate.
    #[default]
    Envoy,
    /// Kong's ngx_wasm_module (Kong Gateway's proxy-wasm host).
    NgxWasmModule,
}

/// ngx_wasm_module's default `max_metric_name_length`.
const NGX_MAX_METRIC_NAME: usize = 256;

impl HostProfile {
    /// The name a metric is stored (and read back) under, or why the host traps instead.
    pub(crate) fn metric_name(self, filter_name: &str, name: &str) -> Result<String, String> {
        match self {
            HostProfile::Envoy => Ok(name.to_string()),
            HostProfile::NgxWasmModule => {
                if 4 + filter_name.len() + name.len() > NGX_MAX_METRIC_NAME {
                    return Err(format!("could not define metric: name \"{name}\" too long"));
                }
                Ok(format!("pw:{filter_name}:{name}"))
            }
        }
    }

    /// Whether a shared-data write with `cas` may replace what is stored (`stored`: the
    /// key's cas, `None` when the key is missing).
    pub(crate) fn cas_allows(self, stored: Option<u32>, cas: u32) -> bool {
        match (self, stored) {
            (HostProfile::Envoy, None) => true,
            (HostProfile::Envoy, Some(stored)) => cas == 0 || cas == stored,
            (HostProfile::NgxWasmModule, stored) => cas == stored.unwrap_or(0),
        }
    }

    /// Whether `proxy_set_effective_context` really switches the context host calls act on.
    pub(crate) fn switches_context(self) -> bool {
        self == HostProfile::Envoy
    }

    /// Whether a second non-zero tick period (while one is set) traps.
    pub(crate) fn tick_period_is_set_once(self) -> bool {
        self == HostProfile::NgxWasmModule
    }

    /// Whether the host calls the trailers callbacks.
    pub(crate) fn delivers_trailers(self) -> bool {
        self == HostProfile::Envoy
    }

    /// Whether headers callbacks get the real `end_of_stream` (ngx: always false).
    pub(crate) fn headers_carry_end_of_stream(self) -> bool {
        self == HostProfile::Envoy
    }

    /// Whether the plugin's metric calls are checked as ngx checks them (type and id, with a
    /// trap where Envoy returns a status).
    pub(crate) fn metrics_trap_on_misuse(self) -> bool {
        self == HostProfile::NgxWasmModule
    }

    /// Whether calls that need a request trap in a root context, and a second local response
    /// on a stream traps.
    pub(crate) fn request_calls_trap_outside_requests(self) -> bool {
        self == HostProfile::NgxWasmModule
    }
}

#[cfg(test)]
mod tests {
    use super::HostProfile;

    #[test]
    fn cas_rules_differ_only_where_documented() {
        // (stored, cas, envoy, ngx)
        let rows = [
            (None, 0, true, true),
            (None, 5, true, false),
            (Some(3), 0, true, false),
            (Some(3), 3, true, true),
            (Some(3), 4, false, false),
        ];
        for (stored, cas, envoy, ngx) in rows {
            assert_eq!(
                HostProfile::Envoy.cas_allows(stored, cas),
                envoy,
                "{stored:?} {cas}"
            );
            assert_eq!(
                HostProfile::NgxWasmModule.cas_allows(stored, cas),
                ngx,
                "{stored:?} {cas}"
            );
        }
    }

    #[test]
    fn ngx_prefixes_metric_names_and_bounds_their_length() {
        assert_eq!(
            HostProfile::NgxWasmModule.metric_name("ballast", "a_total"),
            Ok("pw:ballast:a_total".to_string())
        );
        assert_eq!(
            HostProfile::Envoy.metric_name("ballast", "a_total"),
            Ok("a_total".to_string())
        );
        let long = "m".repeat(250);
        assert!(HostProfile::NgxWasmModule
            .metric_name("ballast", &long)
            .is_err());
        assert!(HostProfile::Envoy.metric_name("ballast", &long).is_ok());
    }
}
