//! The request as routing and the policies see it: its headers read once, in one host call,
//! when a stage first asks for one; properties fetched on first use, then kept.
//!
//! Why lazy: each host call crosses the wasm boundary and costs measurable proxy throughput.
//! A policy set that never looks at a header (routing by route name, a concurrency limit
//! alone) never pays for the header block, and a property is read only if a stage needs it.

use crate::header_block::HeaderBlock;
use crate::host::{property, timestamp_property, Map};
use ballast_policy::duration::Nanos;
use ballast_policy::routing::{host_of, path_without_query, RequestView};

/// Memoised request attributes for one `on_http_request_headers` call.
#[derive(Default)]
pub struct HostRequest {
    headers: Option<HeaderBlock>,
    route_name: Option<Option<String>>,
    source_address: Option<Option<String>>,
    peer_principal: Option<Option<String>>,
    arrival: Option<Option<Nanos>>,
}

fn memo(slot: &mut Option<Option<String>>, fetch: impl FnOnce() -> Option<String>) -> Option<&str> {
    slot.get_or_insert_with(fetch).as_deref()
}

impl HostRequest {
    fn headers(&mut self) -> &mut HeaderBlock {
        self.headers
            .get_or_insert_with(|| HeaderBlock::new(crate::host::header_pairs(Map::Request)))
    }
}

impl RequestView for HostRequest {
    fn authority(&mut self) -> Option<&str> {
        self.headers().get(":authority").map(host_of)
    }

    fn path(&mut self) -> Option<&str> {
        self.headers().get(":path").map(path_without_query)
    }

    fn method(&mut self) -> Option<&str> {
        self.headers().get(":method")
    }

    fn header(&mut self, name: &str) -> Option<&str> {
        self.headers().get(name)
    }

    fn route_name(&mut self) -> Option<&str> {
        memo(&mut self.route_name, || property("xds\0route_name"))
    }

    fn source_address(&mut self) -> Option<&str> {
        memo(&mut self.source_address, || property("source\0address"))
    }

    fn arrival(&mut self) -> Option<Nanos> {
        *self
            .arrival
            .get_or_insert_with(|| timestamp_property("request\0time"))
    }

    fn peer_principal(&mut self) -> Option<&str> {
        memo(&mut self.peer_principal, || {
            property("connection\0uri_san_peer_certificate")
        })
    }
}
