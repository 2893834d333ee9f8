//! The cost counters a benchmark reads: host calls per import and wasm operators executed.
//!
//! Why tested: `make bench` reports ballast's cost per request from these, and a counter that
//! miscounted (or counted nothing) would make every optimisation look like a win.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use ballast_mock_host::{Host, PluginModule};

const CONFIG: &str = r#"{"policy_sets": {"api": {"deadline": {}}}, "default_policy_set": "api"}"#;

fn host(module: &PluginModule) -> Host {
    let mut host = Host::builder(module)
        .workers(1)
        .plugin_config(CONFIG)
        .capture_logs(None)
        .build()
        .unwrap();
    assert!(host.start().unwrap().all_ok());
    host
}

fn request(host: &mut Host) {
    let mut stream = host.http_stream(0).unwrap();
    stream
        .request_headers(
            &[
                (":method", "GET"),
                (":path", "/"),
                (":authority", "a"),
                ("grpc-timeout", "1S"),
            ],
            true,
        )
        .unwrap();
    stream
        .response_headers(&[(":status", "200")], true)
        .unwrap();
    stream.finish().unwrap();
}

fn metered() -> PluginModule {
    let plain = common::ballast_plugin();
    let path = std::env::var_os("BALLAST_WASM")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/ballast.wasm")
        });
    let metered = PluginModule::load_metered(&path).unwrap();
    assert!(metered.metered() && !plain.metered());
    metered
}

#[test]
fn host_calls_are_counted_per_import_only_while_counting() {
    let mut host = host(&common::ballast_plugin());
    request(&mut host);
    assert!(
        host.host_calls().is_empty(),
        "nothing is counted before asked"
    );
    host.count_host_calls(true);
    request(&mut host);
    request(&mut host);
    let calls = host.host_calls();
    let of = |name: &str| {
        calls
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, c)| *c)
    };
    // The deadline stage reads the request's headers (all at once, for its grpc-timeout), and
    // the clock at every callback.
    assert_eq!(of("proxy_get_header_map_pairs"), 2, "{calls:?}");
    assert!(of("proxy_get_current_time_nanoseconds") >= 2, "{calls:?}");
    assert_eq!(of("proxy_set_shared_data"), 0, "{calls:?}");
    assert!(
        calls.windows(2).all(|w| w[0].1 >= w[1].1),
        "most called first: {calls:?}"
    );
    host.count_host_calls(false);
    request(&mut host);
    assert!(host.host_calls().is_empty());
}

#[test]
fn wasm_fuel_is_counted_exactly_for_metered_modules_only() {
    assert_eq!(host(&common::ballast_plugin()).wasm_fuel_used(), None);
    let module = metered();
    let mut used = Vec::new();
    for _ in 0..2 {
        let mut host = host(&module);
        let before = host.wasm_fuel_used().unwrap();
        request(&mut host);
        let one = host.wasm_fuel_used().unwrap() - before;
        request(&mut host);
        request(&mut host);
        let three = host.wasm_fuel_used().unwrap() - before;
        assert!(one > 100, "a request runs plugin code: {one}");
        assert!(
            three > 2 * one,
            "three requests cost more than two first ones: {three} vs {one}"
        );
        used.push((one, three));
    }
    assert_eq!(
        used[0], used[1],
        "the same requests cost the same on a fresh host"
    );
}
