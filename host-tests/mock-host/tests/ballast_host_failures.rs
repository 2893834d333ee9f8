//! The real plugin against a host that answers what it should not: every host function
//! ballast calls made to return every status the ABI defines (and one it does not), while
//! requests flow through every policy. The VM must never trap (a trap kills it: Envoy then
//! answers 503 to everything, or runs unprotected while it reloads), each request must still get
//! an outcome (forwarded, held, or answered), the unexpected statuses must be counted in
//! `ballast_host_errors_total`, and once the host behaves again so must the plugin.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use ballast_mock_host::{Action, ErrorKind, Host};
use std::time::Duration;

const CONFIG: &str = r#"{
  "priority": {"classes": ["critical", "normal", "sheddable"], "default": "normal"},
  "policy_sets": {"api": {
    "retry_budget": {}, "retry": {"max_retries_per_request": 3, "explain_header": "x-ballast-retry"},
    "concurrency": {"algorithm": "fixed", "initial_limit": 2, "queue": {"size": 4, "max_wait": "50ms"}},
    "deadline": {}, "shedding": {}}},
  "default_policy_set": "api"}"#;

/// Every host function ballast imports and calls at request time, on ticks or when logging.
const IMPORTS: &[&str] = &[
    "proxy_get_header_map_pairs",
    "proxy_get_header_map_value",
    "proxy_replace_header_map_value",
    "proxy_remove_header_map_value",
    "proxy_get_property",
    "proxy_get_shared_data",
    "proxy_set_shared_data",
    "proxy_get_current_time_nanoseconds",
    "proxy_send_local_response",
    "proxy_set_effective_context",
    "proxy_continue_stream",
    "proxy_increment_metric",
    "proxy_record_metric",
    "proxy_log",
];

/// NotFound, BadArgument, SerializationFailure, ParseFailure, Empty, CasMismatch,
/// InternalFailure, Unimplemented, and a number no ABI version defines.
const STATUSES: &[i32] = &[1, 2, 3, 4, 7, 8, 10, 12, 99];

fn host() -> Host {
    let mut host = Host::builder(&common::ballast_plugin())
        .workers(2)
        .plugin_config(CONFIG)
        .capture_logs(None)
        .recycle_finished_streams(true)
        .build()
        .unwrap();
    assert!(host.start().unwrap().all_ok());
    host
}

fn no_trap<T>(result: ballast_mock_host::Result<T>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(e) if *e.kind() == ErrorKind::Trap => panic!("{what}: the VM trapped: {e}"),
        Err(e) => panic!("{what}: {e}"),
    }
}

/// Six requests (more than the limit of 2, so some wait and are resumed from ticks), answered
/// in turn; returns how many got an outcome (forwarded and answered, or answered by ballast).
fn traffic(host: &mut Host, what: &str) -> usize {
    let mut ids = Vec::new();
    for i in 0..6 {
        let mut stream = no_trap(host.http_stream(i % 2), what);
        no_trap(
            stream.set_property("source.address", "127.0.0.1:4000"),
            what,
        );
        let priority = ["critical", "normal", "sheddable"][i % 3];
        let action = no_trap(
            stream.request_headers(
                &[
                    (":method", "GET"),
                    (":path", "/api"),
                    (":authority", "x"),
                    ("x-ballast-priority", priority),
                    ("grpc-timeout", "2S"),
                    ("x-envoy-attempt-count", "1"),
                ],
                true,
            ),
            what,
        );
        ids.push((stream.id(), action));
    }
    let mut outcomes = 0;
    for _ in 0..20 {
        no_trap(host.advance(Duration::from_millis(10)), what);
    }
    for (id, _) in ids {
        let mut stream = no_trap(host.stream(id), what);
        if stream.local_response().is_some() {
            outcomes += 1;
        } else if !stream.request_paused() {
            no_trap(
                stream
                    .response_headers(&[(":status", "503"), ("x-envoy-attempt-count", "4")], true),
                what,
            );
            outcomes += 1;
        }
        no_trap(stream.finish(), what);
    }
    outcomes
}

/// A misspelt name would make its rows vacuous (`fail_import` injects nothing for a function
/// the module does not import), so the table is checked against the module's real imports.
#[test]
fn the_table_names_only_host_functions_ballast_imports() {
    let module = common::ballast_plugin();
    let imported = module.host_functions();
    assert!(imported.windows(2).all(|w| w[0] < w[1]), "{imported:?}");
    assert!(imported.iter().all(|name| name.starts_with("proxy_")));
    for name in IMPORTS
        .iter()
        .chain(&["proxy_get_buffer_bytes", "proxy_define_metric"])
    {
        assert!(
            imported.iter().any(|i| i == name),
            "{name} is not imported by the plugin: {imported:?}"
        );
    }
}

#[test]
fn no_host_answer_traps_the_vm() {
    let mut host = host();
    let mut counted = 0;
    for import in IMPORTS {
        for &status in STATUSES {
            let what = format!("{import} -> {status}");
            host.fail_import(import, Some(status));
            let got = traffic(&mut host, &what);
            // Without the clock, the context switch or the resume, a waiter may stay held:
            // its client then gives up (finished above). Every other request has an outcome.
            let can_hold = matches!(
                *import,
                "proxy_get_current_time_nanoseconds"
                    | "proxy_set_effective_context"
                    | "proxy_continue_stream"
            );
            assert!(
                can_hold || got >= 2,
                "{what}: only {got} of 6 requests had an outcome"
            );
            host.fail_import(import, None);
            // The host behaves again: so does the plugin, at once.
            let recovered = traffic(&mut host, &format!("{what}, then recovered"));
            assert_eq!(recovered, 6, "{what}: not recovered");
        }
        counted = host.counter("ballast_host_errors_total").unwrap_or(0);
    }
    assert!(counted > 0, "unexpected statuses are counted");
    println!("ballast_host_errors_total after the table: {counted}");
}

#[test]
fn a_host_that_refuses_the_configuration_gets_a_refusal_not_a_trap() {
    for &status in STATUSES {
        let mut host = Host::builder(&common::ballast_plugin())
            .plugin_config(CONFIG)
            .build()
            .unwrap();
        host.fail_import("proxy_get_buffer_bytes", Some(status));
        let outcome = no_trap(host.start(), "start");
        let started = &outcome.workers[0];
        assert!(started.vm_started, "status {status}");
        if status == 1 {
            // NotFound: no configuration at all, which is the defaults (accepted).
            continue;
        }
        assert!(
            !started.configured,
            "status {status}: refused, not half-configured"
        );
    }
    // Metrics that cannot be defined leave a plugin that works, without them.
    let mut host = Host::builder(&common::ballast_plugin())
        .plugin_config(CONFIG)
        .build()
        .unwrap();
    host.fail_import("proxy_define_metric", Some(10));
    assert!(no_trap(host.start(), "start").all_ok());
    let mut stream = host.http_stream(0).unwrap();
    let action = no_trap(
        stream.request_headers(
            &[(":method", "GET"), (":path", "/"), (":authority", "x")],
            true,
        ),
        "request",
    );
    assert_eq!(action, Action::Continue);
}
