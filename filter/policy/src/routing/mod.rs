//! Maps a request to its policy set.
//!
//! Why inside the plugin: Envoy has no per-route configuration for wasm filters, so one VM
//! serves every route of a listener. ballast therefore carries an ordered rule list (authority,
//! path, method, headers, Envoy's `xds.route_name`) and picks the policy set itself.
//!
//! Host calls are the dominant cost of a wasm filter, so the table asks the [`RequestView`] for
//! each attribute only when a rule actually needs it, in rule order; the plugin memoises what it
//! has fetched. A table whose first rule matches on path never reads the authority.

mod matchers;
pub mod regex;
mod table;

pub(crate) use matchers::compile_anchored;
pub use matchers::{HeaderCondition, HeaderMatch, StringMatch, StringMatcher};
pub use table::{Route, RouteMatch, RouteTable, Routed};

/// Lazy access to the request attributes routing may need. Implementations fetch from the
/// host on first use and remember the answer; `None` means absent.
pub trait RequestView {
    /// Host part of `:authority` (port removed), as sent.
    fn authority(&mut self) -> Option<&str>;
    /// `:path` without the query string.
    fn path(&mut self) -> Option<&str>;
    /// `:method`.
    fn method(&mut self) -> Option<&str>;
    /// A request header by lower-case name.
    fn header(&mut self, name: &str) -> Option<&str>;
    /// Envoy's `xds.route_name` property (the name of the route Envoy selected).
    fn route_name(&mut self) -> Option<&str>;
    /// The peer's address (`source.address`), for trust decisions.
    fn source_address(&mut self) -> Option<&str> {
        None
    }
    /// When the proxy received the request (Envoy's `request.time`), for deadlines.
    fn arrival(&mut self) -> Option<crate::duration::Nanos> {
        None
    }
    /// The URI SAN of the peer's certificate (e.g. a SPIFFE ID), for trust decisions.
    fn peer_principal(&mut self) -> Option<&str> {
        None
    }
}

/// Removes the port from an authority (`example.com:8080` → `example.com`,
/// `[::1]:80` → `[::1]`).
pub fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => authority.get(..=end).unwrap_or(authority),
            None => authority,
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// Removes the query string (and fragment) from a `:path`.
pub fn path_without_query(path: &str) -> &str {
    match path.find(['?', '#']) {
        Some(end) => path.get(..end).unwrap_or(path),
        None => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::test;

    #[test]
    fn strips_ports_and_queries() {
        assert_eq!(host_of("example.com:8080"), "example.com");
        assert_eq!(host_of("example.com"), "example.com");
        assert_eq!(host_of("[::1]:80"), "[::1]");
        assert_eq!(host_of("[::1]"), "[::1]");
        assert_eq!(host_of("host:"), "host:");
        assert_eq!(path_without_query("/a/b?x=1"), "/a/b");
        assert_eq!(path_without_query("/a#frag"), "/a");
        assert_eq!(path_without_query("/a"), "/a");
    }
}
