//! The ngx_wasm_module host profile at the ABI: a WAT module makes raw host calls, so each test
//! sees exactly where the profile answers differently from Envoy (and where both agree), one
//! row per call, and how each profile offers the response phases (end_of_stream, trailers, a
//! pause in response headers). What the real ballast plugin does under the profile is in
//! `host_profile_ngx.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use ballast_mock_host::{ErrorKind, Host, HostProfile, PluginModule, Status, Val};

mod common;
use common::raw_imports;

/// (import, wasm parameter types: `i` i32, `I` i64).
const IMPORTS: &[(&str, &str)] = &[
    ("proxy_set_effective_context", "i"),
    ("proxy_set_shared_data", "iiiii"),
    ("proxy_set_tick_period_milliseconds", "i"),
    ("proxy_define_metric", "iiii"),
    ("proxy_increment_metric", "iI"),
    ("proxy_record_metric", "iI"),
    ("proxy_continue_stream", "i"),
];

/// A module that re-exports every import above as `t_<import>`.
fn module() -> PluginModule {
    static M: std::sync::OnceLock<PluginModule> = std::sync::OnceLock::new();
    M.get_or_init(|| {
        let mut wat = String::from("(module\n");
        for (name, params) in IMPORTS {
            wat += &raw_imports::import("env", name, params);
        }
        wat += r#"  (memory (export "memory") 2)
  (func (export "malloc") (param i32) (result i32) i32.const 4096)
  (func (export "proxy_on_context_create") (param i32 i32))
  ;; Response callbacks record what they were offered: headers' end_of_stream, the last body
  ;; chunk's end_of_stream, trailers calls; response headers pause.
  (global $headers_eof (mut i32) (i32.const -1))
  (global $body_eof (mut i32) (i32.const -1))
  (global $trailers (mut i32) (i32.const 0))
  (global $pause (mut i32) (i32.const 0))
  (func (export "pause_response_headers") (param i32) local.get 0 global.set $pause)
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    local.get 2 global.set $headers_eof global.get $pause)
  (func (export "proxy_on_response_body") (param i32 i32 i32) (result i32)
    local.get 2 global.set $body_eof i32.const 0)
  (func (export "proxy_on_response_trailers") (param i32 i32) (result i32)
    global.get $trailers i32.const 1 i32.add global.set $trailers i32.const 0)
  (func (export "seen") (param i32) (result i32)
    local.get 0 i32.eqz if (result i32) global.get $headers_eof
    else local.get 0 i32.const 1 i32.eq if (result i32) global.get $body_eof
    else global.get $trailers end end)
"#;
        for (name, params) in IMPORTS {
            wat += &raw_imports::trampoline(name, params);
        }
        PluginModule::from_wat("profile.wat", &(wat + ")\n")).expect("compile WAT")
    })
    .clone()
}

fn host(profile: HostProfile) -> Host {
    let mut host = Host::builder(&module())
        .profile(profile)
        .plugin_name("f")
        .build()
        .unwrap();
    assert!(host.start().unwrap().all_ok());
    host
}

/// Calls `t_<import>` in the root context (1): the status, or the error if the host trapped.
fn call(host: &mut Host, import: &str, args: &[i64]) -> Result<i32, ballast_mock_host::Error> {
    let params = IMPORTS.iter().find(|(n, _)| *n == import).unwrap().1;
    let vals = raw_imports::values(args, params);
    host.call_raw(0, 1, &format!("t_{import}"), &vals)
        .map(|r| r[0].unwrap_i32())
}

fn trapped(result: Result<i32, ballast_mock_host::Error>, message: &str) {
    let err = result.expect_err("the host traps");
    assert_eq!(err.kind(), &ErrorKind::Trap, "{err}");
    assert!(err.message().contains(message), "{err}");
}

const OK: i32 = Status::Ok as i32;
const BAD: i32 = Status::BadArgument as i32;
const CAS: i32 = Status::CasMismatch as i32;
const KEY: u32 = 1024;

#[test]
fn set_effective_context_is_a_no_op_that_accepts_any_id() {
    let mut envoy = host(HostProfile::Envoy);
    let mut ngx = host(HostProfile::NgxWasmModule);
    for id in [0xFFFF_FFFF_i64, 77] {
        assert_eq!(
            call(&mut envoy, "proxy_set_effective_context", &[id]).unwrap(),
            BAD
        );
        assert_eq!(
            call(&mut ngx, "proxy_set_effective_context", &[id]).unwrap(),
            OK
        );
    }
}

#[test]
fn shared_data_cas_must_match_exactly() {
    // (key, cas: None = the key's current cas, Envoy's status, ngx's status)
    let rows: [(&[u8], Option<u32>, i32, i32); 5] = [
        (b"k", Some(0), OK, OK),     // a missing key with cas 0: created by both
        (b"k", Some(0), OK, CAS),    // cas 0 on an existing key: Envoy overwrites
        (b"k", None, OK, OK),        // the current cas: both write
        (b"k", Some(999), CAS, CAS), // a stale cas: neither
        (b"new", Some(7), OK, CAS),  // a cas on a missing key: Envoy creates it
    ];
    for (profile, column) in [(HostProfile::Envoy, 0), (HostProfile::NgxWasmModule, 1)] {
        let mut h = host(profile);
        for (i, (key, cas, envoy, ngx)) in rows.iter().enumerate() {
            h.write_memory(0, KEY, key).unwrap();
            let cas = cas.unwrap_or_else(|| h.shared_data("k").unwrap().1);
            let args = [
                i64::from(KEY),
                key.len() as i64,
                i64::from(KEY),
                1,
                i64::from(cas),
            ];
            let status = call(&mut h, "proxy_set_shared_data", &args).unwrap();
            let expected = if column == 0 { *envoy } else { *ngx };
            assert_eq!(status, expected, "{profile:?} row {i}");
        }
    }
}

#[test]
fn a_second_non_zero_tick_period_traps() {
    let mut envoy = host(HostProfile::Envoy);
    for period in [10, 20, 0, 30] {
        assert_eq!(
            call(&mut envoy, "proxy_set_tick_period_milliseconds", &[period]).unwrap(),
            OK
        );
    }
    let mut ngx = host(HostProfile::NgxWasmModule);
    assert_eq!(
        call(&mut ngx, "proxy_set_tick_period_milliseconds", &[10]).unwrap(),
        OK
    );
    trapped(
        call(&mut ngx, "proxy_set_tick_period_milliseconds", &[20]),
        "tick_period already set",
    );
    // Cancelling first is allowed (on a fresh VM: the trap failed the old one).
    let mut ngx = host(HostProfile::NgxWasmModule);
    for period in [10, 0, 20] {
        assert_eq!(
            call(&mut ngx, "proxy_set_tick_period_milliseconds", &[period]).unwrap(),
            OK
        );
    }
    assert_eq!(
        ngx.tick_period(0),
        Some(std::time::Duration::from_millis(20))
    );
}

/// Defines a metric named `name` of `kind`; its id.
fn define(h: &mut Host, kind: i64, name: &str) -> i64 {
    h.write_memory(0, KEY, name.as_bytes()).unwrap();
    let args = [kind, i64::from(KEY), name.len() as i64, 512];
    assert_eq!(call(h, "proxy_define_metric", &args).unwrap(), OK);
    let id = h.read_memory(0, 512, 4).unwrap();
    i64::from(u32::from_le_bytes(id.try_into().unwrap()))
}

#[test]
fn metrics_are_stored_with_the_filter_prefix_and_misuse_traps() {
    let mut envoy = host(HostProfile::Envoy);
    let mut ngx = host(HostProfile::NgxWasmModule);
    for h in [&mut envoy, &mut ngx] {
        let counter = define(h, 0, "hits");
        assert_eq!(
            call(h, "proxy_increment_metric", &[counter, 3]).unwrap(),
            OK
        );
    }
    assert_eq!(envoy.counter("hits"), Some(3));
    assert_eq!(ngx.counter("pw:f:hits"), Some(3), "{:?}", ngx.metrics());
    assert_eq!(ngx.counter("hits"), None, "only the stored name reads back");

    // Incrementing a gauge: Envoy adds, ngx traps.
    let gauge = define(&mut envoy, 1, "level");
    assert_eq!(
        call(&mut envoy, "proxy_increment_metric", &[gauge, 1]).unwrap(),
        OK
    );
    let gauge = define(&mut ngx, 1, "level");
    trapped(
        call(&mut ngx, "proxy_increment_metric", &[gauge, 1]),
        "not a counter",
    );

    // Recording a counter: Envoy adds, ngx traps.
    let mut ngx = host(HostProfile::NgxWasmModule);
    let counter = define(&mut ngx, 0, "hits");
    trapped(
        call(&mut ngx, "proxy_record_metric", &[counter, 5]),
        "is a counter",
    );

    // A prefixed name over 256 bytes traps at definition; Envoy takes it.
    let long = "m".repeat(252);
    define(&mut envoy, 0, &long);
    let mut ngx = host(HostProfile::NgxWasmModule);
    ngx.write_memory(0, KEY, long.as_bytes()).unwrap();
    let args = [0, i64::from(KEY), long.len() as i64, 512];
    trapped(call(&mut ngx, "proxy_define_metric", &args), "too long");
}

#[test]
fn continuing_a_stream_from_a_root_context_traps() {
    let mut envoy = host(HostProfile::Envoy);
    assert_eq!(call(&mut envoy, "proxy_continue_stream", &[0]).unwrap(), OK);
    let mut ngx = host(HostProfile::NgxWasmModule);
    trapped(
        call(&mut ngx, "proxy_continue_stream", &[0]),
        "root context",
    );
}

/// What the response callbacks saw: (headers' end_of_stream, last body end_of_stream, trailers
/// calls); -1 for a callback never called.
fn seen(h: &mut Host) -> [i32; 3] {
    [0, 1, 2].map(|i| h.call_raw(0, 1, "seen", &[Val::I32(i)]).unwrap()[0].unwrap_i32())
}

#[test]
fn response_phases_as_ngx_offers_them() {
    let request = [(":method", "GET"), (":path", "/"), (":authority", "x")];
    for profile in [HostProfile::Envoy, HostProfile::NgxWasmModule] {
        let ngx = profile == HostProfile::NgxWasmModule;
        // A response without a body.
        let mut h = host(profile);
        let mut stream = h.http_stream(0).unwrap();
        stream.request_headers(&request, true).unwrap();
        stream
            .response_headers(&[(":status", "200")], true)
            .unwrap();
        let expected = if ngx { [0, 1, 0] } else { [1, -1, 0] };
        assert_eq!(
            seen(&mut h),
            expected,
            "{profile:?}: the end as a last empty chunk on ngx"
        );
        // A body, then trailers.
        let mut h = host(profile);
        let mut stream = h.http_stream(0).unwrap();
        stream.request_headers(&request, true).unwrap();
        stream
            .response_headers(&[(":status", "200")], false)
            .unwrap();
        stream.response_body(b"x", false).unwrap();
        stream.response_trailers(&[("t", "1")]).unwrap();
        let expected = if ngx { [0, 1, 0] } else { [0, 0, 1] };
        assert_eq!(
            seen(&mut h),
            expected,
            "{profile:?}: no trailers callback on ngx"
        );
        // Response headers paused without a local response: ngx warns.
        let mut h = host(profile);
        h.call_raw(0, 1, "pause_response_headers", &[Val::I32(1)])
            .unwrap();
        let mut stream = h.http_stream(0).unwrap();
        stream.request_headers(&request, true).unwrap();
        stream
            .response_headers(&[(":status", "200")], false)
            .unwrap();
        let warnings = h.host_warnings();
        assert_eq!(
            warnings.len(),
            usize::from(ngx),
            "{profile:?}: {warnings:?}"
        );
        assert!(warnings
            .iter()
            .all(|w| w.contains("local response expected but none produced")));
    }
}
