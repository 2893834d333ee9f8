//! Helpers for the concurrency-limiter tests: a host running the real plugin with a fixed
//! limit of 4, and one-line ways to open, answer and measure streams.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ballast_mock_host::{Action, Host, PluginModule, StreamId};

pub fn plugin() -> PluginModule {
    super::ballast_plugin()
}

/// A started host running the real plugin on `workers` VMs with plugin configuration `config`.
pub fn started(workers: usize, config: &str) -> Host {
    let mut host = Host::builder(&plugin())
        .workers(workers)
        .plugin_config(config)
        // Inside TRUSTED (the configs below trust it): deadline hints are believed.
        .property("source.address", "10.1.2.3:40000")
        .build()
        .unwrap();
    assert!(host.start().unwrap().all_ok(), "{:?}", host.logs());
    host
}

/// A fixed limit of 4 with the given `queue` section.
pub fn host(workers: usize, queue: &str) -> Host {
    started(
        workers,
        &format!(
            r#"{{{TRUSTED}, "policy_sets": {{"api": {{"concurrency": {{"algorithm": "fixed", "initial_limit": 4, "queue": {queue}}}}}}},
            "default_policy_set": "api"}}"#
        ),
    )
}

/// The `trusted_peers` entry for the streams' source address, so their deadlines count.
pub const TRUSTED: &str = r#""trusted_peers": {"source_cidrs": ["10.0.0.0/8"]}"#;

pub const GET: [(&str, &str); 3] = [(":method", "GET"), (":path", "/a"), (":authority", "x")];

pub fn open(host: &mut Host, worker: usize, headers: &[(&str, &str)]) -> (StreamId, Action) {
    let mut stream = host.http_stream(worker).unwrap();
    let action = stream.request_headers(headers, true).unwrap();
    (stream.id(), action)
}

pub fn respond(host: &mut Host, id: StreamId) {
    let mut stream = host.stream(id).unwrap();
    stream
        .response_headers(&[(":status", "200")], true)
        .unwrap();
    stream.finish().unwrap();
}

pub fn gauge(host: &Host, name: &str) -> u64 {
    host.gauge(&format!("ballast_concurrency_{name}.policy_set=.=api;.;"))
        .unwrap()
}

pub fn counter(host: &Host, name: &str) -> u64 {
    host.counter(&format!("ballast_concurrency_{name}.policy_set=.=api;.;"))
        .unwrap()
}
