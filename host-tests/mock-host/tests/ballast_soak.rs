//! Soak: many requests through the real plugin with every policy on, over minutes of virtual
//! time (budget windows aging out, limiter windows and probes, throttling windows, admission
//! level ticks), on two workers: linear memory and shared data must stay flat after warm-up.
//!
//! Why: proxy-wasm never evicts a shared-data key, and a VM's memory only grows; a per-request
//! leak or a key per anything unbounded grows until the proxy is killed. Requests vary in
//! priority, deadline, method, attempt mark and outcome so that every path runs. The count is
//! `BALLAST_SOAK_REQUESTS` (default 100,000 in `make test`; the closing notes quote 1,000,000).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use ballast_mock_host::{Action, Host};
use common::Rng;
use std::time::Duration;

const CONFIG: &str = r#"{
  "priority": {"classes": ["critical", "normal", "sheddable"], "default": "normal"},
  "policy_sets": {"api": {
    "retry_budget": {}, "retry": {"max_retries_per_request": 3, "explain_header": "x-ballast-retry"},
    "concurrency": {"queue": {"size": 20, "max_wait": "20ms"}},
    "deadline": {"default": "2s"},
    "shedding": {"rate_limits": {"sheddable": {"per_second": 50, "burst": 10, "scope": "shared"}},
                 "throttle": {}}}},
  "default_policy_set": "api"}"#;

const PRIORITIES: [&str; 4] = ["critical", "normal", "sheddable", "bogus"];
const TIMEOUTS: [&str; 4] = ["50m", "2S", "1m", "junk"];

/// Sends request `i`; returns the stream to answer later, or `None` if the plugin answered it.
fn send(host: &mut Host, rng: &mut Rng, worker: usize) -> Option<ballast_mock_host::StreamId> {
    let priority = PRIORITIES[rng.below(4) as usize];
    let timeout = TIMEOUTS[rng.below(4) as usize];
    let method = if rng.below(5) == 0 { "POST" } else { "GET" };
    let attempt = if rng.below(10) == 0 { "2" } else { "1" };
    let mut stream = host.http_stream(worker).unwrap();
    stream
        .set_property("source.address", "127.0.0.1:40000")
        .unwrap();
    stream
        .set_property("upstream.address", "127.0.0.1:8081")
        .unwrap();
    let action = stream
        .request_headers(
            &[
                (":method", method),
                (":path", "/api/items"),
                (":authority", "shop"),
                ("x-ballast-priority", priority),
                ("grpc-timeout", timeout),
                ("x-envoy-attempt-count", attempt),
            ],
            true,
        )
        .unwrap();
    if stream.local_response().is_some() {
        stream.finish().unwrap();
        return None;
    }
    if action == Action::Pause {
        // Waiting in the queue: half the time the client gives up while it waits.
        if rng.below(2) == 0 {
            stream.finish().unwrap();
            return None;
        }
    }
    Some(stream.id())
}

fn answer(host: &mut Host, rng: &mut Rng, id: ballast_mock_host::StreamId) {
    let mut stream = host.stream(id).unwrap();
    if stream.local_response().is_none() && !stream.request_paused() {
        let (status, attempts) = match rng.below(10) {
            0 => ("503", "4"),
            1 => ("503", "1"),
            2 => ("500", "2"),
            _ => ("200", "1"),
        };
        stream
            .response_headers(
                &[(":status", status), ("x-envoy-attempt-count", attempts)],
                true,
            )
            .unwrap();
    }
    stream.finish().unwrap();
}

/// Runs `n` requests, three at a time, alternating workers, 10 ms of virtual time apart.
fn run(host: &mut Host, rng: &mut Rng, n: usize) {
    let mut sent = 0;
    while sent < n {
        let mut open = Vec::new();
        for k in 0..3 {
            if let Some(id) = send(host, rng, (sent + k) % 2) {
                open.push(id);
            }
        }
        sent += 3;
        host.advance(Duration::from_millis(10)).unwrap();
        // Answer in a varied order, so slots are held across each other's responses.
        while !open.is_empty() {
            let at = rng.below(open.len() as u64) as usize;
            let id = open.swap_remove(at);
            answer(host, rng, id);
        }
    }
}

#[test]
fn memory_and_shared_data_stay_flat_over_a_long_run() {
    let total: usize = std::env::var("BALLAST_SOAK_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let mut host = Host::builder(&common::ballast_plugin())
        .workers(2)
        .plugin_config(CONFIG)
        .capture_logs(None)
        .recycle_finished_streams(true)
        .build()
        .unwrap();
    assert!(host.start().unwrap().all_ok());
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // Warm-up: a fifth of the run (at 300 requests per virtual second, 67 s of 100,000):
    // long enough for every window (budget ttl 10 s, probes every 10 s) to fill.
    let warm_up = total / 5;
    run(&mut host, &mut rng, warm_up);
    let memory_after_warm_up = [host.memory_bytes(0).unwrap(), host.memory_bytes(1).unwrap()];
    let (keys_after_warm_up, bytes_after_warm_up) = host.shared_data_size();
    run(&mut host, &mut rng, total - warm_up);
    let memory_at_end = [host.memory_bytes(0).unwrap(), host.memory_bytes(1).unwrap()];
    let (keys_at_end, bytes_at_end) = host.shared_data_size();
    println!(
        "soak: {total} requests ({:.0} s virtual); linear memory per worker after warm-up {:?} \
         bytes, at the end {:?}; shared data {keys_after_warm_up} keys / {bytes_after_warm_up} \
         bytes after warm-up, {keys_at_end} / {bytes_at_end} at the end",
        host.elapsed().as_secs_f64(),
        memory_after_warm_up,
        memory_at_end
    );
    assert_eq!(memory_at_end, memory_after_warm_up, "linear memory grew");
    assert_eq!(keys_at_end, keys_after_warm_up, "shared-data keys grew");
    // Values are bounded records (budget buckets of the window, holders per VM): their size
    // moves with what the window holds, never with the number of requests.
    assert!(
        bytes_at_end <= bytes_after_warm_up + 512,
        "shared data grew from {bytes_after_warm_up} to {bytes_at_end} bytes"
    );
    let admitted: u64 = ["critical", "normal", "sheddable"]
        .iter()
        .map(|c| {
            host.counter(&format!(
                "ballast_class_admitted.policy_set=.=api;.;class=.={c};.;"
            ))
            .unwrap_or(0)
        })
        .sum();
    assert!(
        admitted > total as u64 / 2,
        "requests went through: {admitted}"
    );
}
