//! Measures how many simulated requests per second the mock host drives through the
//! fixture plugin (headers in, response headers, finish), logs off and streams recycled.
//!
//! cargo build --target wasm32-wasip1 --release -p ballast-fixture-plugin
//! cargo run --release -p ballast-mock-host --example throughput [requests]

use std::time::Instant;

use ballast_mock_host::{Host, PluginModule};

fn main() -> ballast_mock_host::Result<()> {
    let path = std::env::var("BALLAST_FIXTURE_WASM").unwrap_or_else(|_| {
        format!(
            "{}/../../target/wasm32-wasip1/release/ballast_fixture_plugin.wasm",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let module = PluginModule::load(&path)?;
    let mut host = Host::builder(&module)
        .workers(2)
        .capture_logs(None)
        .recycle_finished_streams(true)
        .build()?;
    host.start()?;
    let headers = [(":method", "GET"), (":path", "/"), (":authority", "x")];
    let started = Instant::now();
    for i in 0..n {
        let mut s = host.http_stream(i % 2)?;
        s.request_headers(&headers, true)?;
        s.response_headers(&[(":status", "200")], true)?;
        s.finish()?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{n} requests in {secs:.3}s: {:.0} requests/s",
        n as f64 / secs
    );
    Ok(())
}
