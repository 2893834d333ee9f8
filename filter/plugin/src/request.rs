//! The request as routing sees it: attributes fetched from the host on first use, then kept.
//!
//! Why lazy: each host call crosses the wasm boundary and costs measurable proxy throughput.
//! Routing asks for attributes rule by rule; a table that decides on the path never pays for the
//! authority, a header or the route-name property.

use crate::host::{header, property, timestamp_property, Map};
use ballast_policy::duration::Nanos;
use ballast_policy::routing::{host_of, path_without_query, RequestView};

/// Memoised request attributes for one `on_http_request_headers` call.
#[derive(Default)]
pub struct HostRequest {
    authority: Option<Option<String>>,
    path: Option<Option<String>>,
    method: Option<Option<String>>,
    route_name: Option<Option<String>>,
    source_address: Option<Option<String>>,
    peer_principal: Option<Option<String>>,
    headers: Vec<(String, Option<String>)>,
}

fn request_header(name: &str) -> Option<String> {
    header(Map::Request, name)
}

fn memo(slot: &mut Option<Option<String>>, fetch: impl FnOnce() -> Option<String>) -> Option<&str> {
    slot.get_or_insert_with(fetch).as_deref()
}

impl RequestView for HostRequest {
    fn authority(&mut self) -> Option<&str> {
        memo(&mut self.authority, || {
            request_header(":authority").map(|value| host_of(&value).to_string())
        })
    }

    fn path(&mut self) -> Option<&str> {
        memo(&mut self.path, || {
            request_header(":path").map(|value| path_without_query(&value).to_string())
        })
    }

    fn method(&mut self) -> Option<&str> {
        memo(&mut self.method, || request_header(":method"))
    }

    fn header(&mut self, name: &str) -> Option<&str> {
        let index = match self.headers.iter().position(|(n, _)| n == name) {
            Some(index) => index,
            None => {
                self.headers.push((name.to_string(), request_header(name)));
                self.headers.len() - 1
            }
        };
        self.headers
            .get(index)
            .and_then(|(_, value)| value.as_deref())
    }

    fn route_name(&mut self) -> Option<&str> {
        memo(&mut self.route_name, || property(&["xds", "route_name"]))
    }

    fn source_address(&mut self) -> Option<&str> {
        memo(&mut self.source_address, || {
            property(&["source", "address"])
        })
    }

    fn arrival(&mut self) -> Option<Nanos> {
        timestamp_property(&["request", "time"])
    }

    fn peer_principal(&mut self) -> Option<&str> {
        memo(&mut self.peer_principal, || {
            property(&["connection", "uri_san_peer_certificate"])
        })
    }
}
