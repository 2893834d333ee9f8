//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod limiter;
pub mod raw_imports;

use std::path::PathBuf;

use ballast_mock_host::{Host, LogLevel, PluginModule, StartOutcome};

/// Where the fixture plugin is: `BALLAST_FIXTURE_WASM`, else the workspace's release build.
pub fn fixture_path() -> PathBuf {
    if let Ok(p) = std::env::var("BALLAST_FIXTURE_WASM") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/wasm32-wasip1/release/ballast_fixture_plugin.wasm")
}

/// The compiled fixture plugin (compiled once per test binary).
pub fn fixture() -> PluginModule {
    let path = fixture_path();
    if !path.exists() {
        panic!(
            "fixture plugin not found at {}: build it with \
             `cargo build --target wasm32-wasip1 --release -p ballast-fixture-plugin` \
             (or set BALLAST_FIXTURE_WASM)",
            path.display()
        );
    }
    PluginModule::load(&path).expect("load fixture plugin")
}

/// A started host running the fixture with `workers` VMs and plugin config `config`.
pub fn fixture_host(workers: usize, config: &str) -> Host {
    let mut host = Host::builder(&fixture())
        .workers(workers)
        .plugin_config(config)
        .root_id("fixture_root")
        .vm_id("fixture_vm")
        .build()
        .expect("build host");
    let outcome = host.start().expect("start");
    assert!(outcome.all_ok(), "start failed: {outcome:?}");
    host
}

/// Request headers for a fixture op.
pub fn req(op: &str) -> Vec<(&str, &str)> {
    vec![
        (":method", "GET"),
        (":path", "/a?q=1"),
        (":authority", "example.com"),
        (":scheme", "http"),
        ("x-fixture-op", op),
    ]
}

/// The real ballast plugin: `BALLAST_WASM`, else `target/ballast.wasm` (`make build`).
pub fn ballast_plugin() -> PluginModule {
    let path = std::env::var_os("BALLAST_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/ballast.wasm")
        });
    assert!(
        path.is_file(),
        "{} missing: run `make build`",
        path.display()
    );
    PluginModule::load(&path).unwrap()
}

/// xorshift64: small, seedable, good enough to pick operations; a failure reproduces from its
/// seed.
pub struct Rng(pub u64);

impl Rng {
    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// The error-level log lines a start wrote (a refused configuration writes one per worker).
pub fn start_errors(outcome: &StartOutcome) -> Vec<&str> {
    outcome
        .logs
        .iter()
        .filter(|l| l.level == LogLevel::Error)
        .map(|l| l.message.as_str())
        .collect()
}
