//! SDK-level fidelity tests: the fixture plugin drives host functions through the real
//! proxy-wasm Rust SDK 0.2.5, which panics on any status code it does not expect.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use ballast_mock_host::{Action, ErrorKind, Host, HttpCallResponse, LogLevel, StreamType};
use common::{fixture, fixture_host, req};

fn with(
    mut headers: Vec<(&'static str, &'static str)>,
    extra: &[(&'static str, &'static str)],
) -> Vec<(&'static str, &'static str)> {
    headers.extend_from_slice(extra);
    headers
}

#[test]
fn start_reports_configuration_and_arms_ticks() {
    let host = fixture_host(2, "tick_ms=100");
    assert!(host.logged("configured: tick_ms=100"));
    assert!(host.logged("vm started"));
    assert_eq!(host.tick_period(0), Some(Duration::from_millis(100)));
    assert_eq!(host.tick_period(1), Some(Duration::from_millis(100)));

    let mut rejecting = Host::builder(&fixture())
        .plugin_config("reject")
        .build()
        .unwrap();
    let outcome = rejecting.start().unwrap();
    assert!(outcome.workers[0].vm_started);
    assert!(!outcome.workers[0].configured);
    assert!(!outcome.all_ok());
}

#[test]
fn plain_request_passes_and_maps_are_lower_cased() {
    let mut host = fixture_host(1, "");
    let mut s = host.http_stream(0).unwrap();
    assert_eq!(s.id().context_id, 2, "root is 1, first stream 2");
    let action = s
        .request_headers(&with(req(""), &[("X-Mixed-Case", "V")]), true)
        .unwrap();
    assert_eq!(action, Action::Continue);
    assert_eq!(s.request_header("x-fixture-seen").as_deref(), Some("2"));
    assert!(s
        .request_headers_now()
        .iter()
        .any(|(k, v)| k == "x-mixed-case" && v == "V"));
    assert_eq!(
        s.request_headers_now()[0].0,
        ":method",
        "pseudo headers stay first"
    );
    assert_eq!(
        s.response_headers(&[(":status", "200")], true).unwrap(),
        Action::Continue
    );
    assert_eq!(s.response_header("x-fixture-resp").as_deref(), Some("none"));
    s.finish().unwrap();
    assert!(
        host.logged("log phase 2: status 200"),
        "on_log reads the response headers"
    );
}

#[test]
fn paused_request_resumes_from_tick_with_body_kept() {
    let mut host = fixture_host(1, "tick_ms=50");
    let mut s = host.http_stream(0).unwrap();
    assert_eq!(
        s.request_headers(&req("pause"), false).unwrap(),
        Action::Pause
    );
    assert_eq!(
        s.request_body(b"hello", true).unwrap(),
        Action::Pause,
        "held behind the pause"
    );
    assert!(s.request_body_forwarded().is_empty());
    assert_eq!(s.request_body_held(), b"hello");
    let id = s.id();
    host.advance(Duration::from_millis(49)).unwrap();
    assert!(host.stream(id).unwrap().request_paused());
    host.advance(Duration::from_millis(1)).unwrap();
    let s = host.stream(id).unwrap();
    assert!(!s.request_paused());
    assert_eq!(
        s.request_body_forwarded(),
        b"HELLO",
        "body delivered after resume, rewritten"
    );
    assert!(host.logged("resumed 2"));
    assert!(host.logged("body seen: hello"));
}

/// Ticks the fixture has logged so far, all workers.
fn ticks(host: &Host) -> usize {
    host.logs()
        .iter()
        .filter(|l| l.message.starts_with("tick "))
        .count()
}

#[test]
fn ticks_follow_the_virtual_clock_on_every_worker() {
    let mut host = fixture_host(2, "tick_ms=100");
    host.advance(Duration::from_millis(99)).unwrap();
    assert_eq!(ticks(&host), 0);
    host.advance(Duration::from_millis(1)).unwrap();
    assert_eq!(ticks(&host), 2);
    host.advance(Duration::from_millis(950)).unwrap();
    assert_eq!(ticks(&host), 20);
    assert_eq!(host.elapsed(), Duration::from_millis(1050));
    // Time order across workers: worker 0 then worker 1 at each instant.
    let order: Vec<usize> = host
        .logs()
        .iter()
        .filter(|l| l.message.starts_with("tick "))
        .map(|l| l.worker)
        .collect();
    assert_eq!(&order[..4], &[0, 1, 0, 1]);
}

#[test]
fn local_reply_stops_the_stream_and_runs_through_the_encoder() {
    let mut host = fixture_host(1, "");
    let mut s = host.http_stream(0).unwrap();
    assert_eq!(
        s.request_headers(&req("local-reply"), false).unwrap(),
        Action::Closed
    );
    let reply = s.local_response().expect("local reply");
    assert_eq!(reply.status_code, 429);
    assert_eq!(reply.body, b"slow down");
    assert_eq!(
        reply.headers,
        vec![("x-reason".to_string(), "fixture".to_string())]
    );
    assert_eq!(reply.grpc_status, None);
    assert_eq!(s.response_header(":status").as_deref(), Some("429"));
    assert_eq!(
        s.response_header("x-fixture-resp").as_deref(),
        Some("local-reply")
    );
    assert_eq!(s.response_body_forwarded(), b"slow down");
    assert_eq!(s.request_body(b"late", true).unwrap(), Action::Closed);
    assert_eq!(
        s.response_headers(&[(":status", "200")], true).unwrap(),
        Action::Closed
    );
    s.finish().unwrap();
    assert!(host.logged("log phase 2: status 429"));
}

#[test]
fn close_resets_the_stream() {
    let mut host = fixture_host(1, "");
    let mut s = host.http_stream(0).unwrap();
    assert_eq!(
        s.request_headers(&req("close"), true).unwrap(),
        Action::Closed
    );
    assert_eq!(s.reset_by_plugin(), Some(StreamType::Request));
    assert!(s.local_response().is_none());
}

#[test]
fn metrics_aggregate_across_workers_with_envoy_error_codes() {
    let mut host = fixture_host(2, "");
    let mut a = host.http_stream(0).unwrap();
    a.request_headers(&with(req("metric"), &[("x-fixture-value", "5")]), true)
        .unwrap();
    let first = a.request_header("x-fixture-metric").unwrap();
    let mut b = host.http_stream(1).unwrap();
    b.request_headers(&with(req("metric"), &[("x-fixture-value", "7")]), true)
        .unwrap();
    let second = b.request_header("x-fixture-metric").unwrap();
    for part in [
        "inc=Ok(())",
        "gauge=Ok(())",
        "record=Ok(())",
        "inc_hist=Err(BadArgument)",
        "inc_zero=Err(BadArgument)",
        "get_hist=Err(BadArgument)",
        "get_unknown=Err(NotFound)",
    ] {
        assert!(first.contains(part), "{part} in {first}");
    }
    assert!(first.contains("count=Ok(1)"), "{first}");
    assert!(
        second.contains("count=Ok(2)"),
        "one stat for both workers: {second}"
    );
    assert_eq!(host.counter("fixture_requests"), Some(2));
    assert_eq!(host.gauge("fixture_active"), Some(2));
    let h = host.histogram("fixture_latency").unwrap();
    assert_eq!((h.count, h.sum, h.samples), (2, 12, vec![5, 7]));
}

#[test]
fn two_workers_share_data_and_cas_conflicts_follow_the_interleaving() {
    let mut host = fixture_host(2, "");
    let a = {
        let mut s = host.http_stream(0).unwrap();
        s.request_headers(&req("shared-cas"), true).unwrap();
        s.id()
    };
    let b = {
        let mut s = host.http_stream(1).unwrap();
        s.request_headers(&req("shared-cas"), true).unwrap();
        s.id()
    };
    // Both read "missing" (cas none); A writes first, B's unconditional write also wins.
    host.stream(a)
        .unwrap()
        .response_headers(&[(":status", "200")], true)
        .unwrap();
    assert_eq!(
        host.stream(a)
            .unwrap()
            .response_header("x-fixture-cas-result")
            .as_deref(),
        Some("ok")
    );
    let (value, cas_a) = host.shared_data("k").unwrap();
    assert_eq!(value, b"1");
    assert_ne!(cas_a, 0);

    // Now both read cas_a, A writes, B's write with the stale cas is a CAS mismatch.
    let c = {
        let mut s = host.http_stream(0).unwrap();
        s.request_headers(&req("shared-cas"), true).unwrap();
        s.id()
    };
    let d = {
        let mut s = host.http_stream(1).unwrap();
        s.request_headers(&req("shared-cas"), true).unwrap();
        s.id()
    };
    host.stream(c)
        .unwrap()
        .response_headers(&[(":status", "200")], true)
        .unwrap();
    host.stream(d)
        .unwrap()
        .response_headers(&[(":status", "200")], true)
        .unwrap();
    assert_eq!(
        host.stream(c)
            .unwrap()
            .response_header("x-fixture-cas-result")
            .as_deref(),
        Some("ok")
    );
    assert_eq!(
        host.stream(d)
            .unwrap()
            .response_header("x-fixture-cas-result")
            .as_deref(),
        Some("mismatch")
    );
    assert_eq!(host.shared_data("k").unwrap().0, b"2");
    let _ = b;
}

#[test]
fn queue_items_reach_the_registering_root_context() {
    let mut host = fixture_host(2, "");
    let mut s = host.http_stream(0).unwrap();
    s.request_headers(&with(req("queue"), &[("x-fixture-item", "hello")]), true)
        .unwrap();
    assert_eq!(
        s.request_header("x-fixture-enqueue").as_deref(),
        Some("Ok(())")
    );
    let line = host
        .logs()
        .iter()
        .find(|l| l.message == "dequeued: hello")
        .expect("delivered");
    assert_eq!(
        line.worker, 1,
        "the last worker to register gets on_queue_ready"
    );
    assert_eq!(line.context_id, 1);
    host.enqueue("fixture_vm", "fixture_queue", b"from-test")
        .unwrap();
    assert!(host.logged("dequeued: from-test"));
    assert_eq!(host.queue_len("fixture_vm", "fixture_queue"), Some(0));
}

#[test]
fn a_jump_fires_each_due_timer_once_and_a_wall_step_moves_only_the_wall_clock() {
    let mut host = fixture_host(2, "tick_ms=100");
    host.jump(Duration::from_secs(3600)).unwrap();
    assert_eq!(ticks(&host), 2, "one tick per worker, not 36,000");
    assert_eq!(host.elapsed(), Duration::from_secs(3600));
    host.advance(Duration::from_millis(100)).unwrap();
    assert_eq!(ticks(&host), 4, "the timers run on from the jump");

    host.step_wall_clock(-5_000_000_000);
    let mut s = host.http_stream(0).unwrap();
    s.request_headers(&req("time"), true).unwrap();
    let expected = (1_735_689_600_000_000_000u128 + 3_600_100_000_000 - 5_000_000_000).to_string();
    assert_eq!(s.request_header("x-fixture-now-ns").unwrap(), expected);
    assert_eq!(s.request_header("x-fixture-wasi-ns").unwrap(), expected);
    host.advance(Duration::from_millis(100)).unwrap();
    assert_eq!(
        ticks(&host),
        6,
        "timers follow monotonic time, not the wall clock"
    );
}

#[test]
fn host_and_wasi_clocks_follow_virtual_time() {
    let mut host = fixture_host(1, "");
    host.advance(Duration::from_millis(1500)).unwrap();
    let mut s = host.http_stream(0).unwrap();
    s.request_headers(&req("time"), true).unwrap();
    let expected = (1_735_689_600_000_000_000u128 + 1_500_000_000).to_string();
    assert_eq!(s.request_header("x-fixture-now-ns").unwrap(), expected);
    assert_eq!(s.request_header("x-fixture-wasi-ns").unwrap(), expected);
}

#[test]
fn http_call_is_captured_and_answered() {
    let mut host = fixture_host(1, "");
    let mut s = host.http_stream(0).unwrap();
    assert_eq!(
        s.request_headers(&req("http-call"), true).unwrap(),
        Action::Pause
    );
    let id = s.id();
    let call = host.http_calls()[0].clone();
    assert_eq!(call.upstream, "auth");
    assert_eq!(call.id.token, 4, "Envoy's first http call token");
    assert_eq!(call.body, b"ping");
    assert_eq!(call.timeout_ms, 5000);
    assert!(call
        .headers
        .contains(&("content-length".to_string(), "4".to_string())));
    assert_eq!(call.context_id, 2);
    host.respond_http_call(call.id, HttpCallResponse::new(200, &[], b"yes"))
        .unwrap();
    let s = host.stream(id).unwrap();
    assert!(!s.request_paused());
    assert_eq!(s.request_header("x-auth-status").as_deref(), Some("200"));
    assert!(host.logged("http call response: Some(\"200\") yes"));
    assert!(host.http_calls().is_empty());

    let mut s = host.http_stream(0).unwrap();
    s.request_headers(&req("http-call"), true).unwrap();
    let id2 = s.id();
    let call = host.http_calls()[0].clone();
    assert_eq!(call.id.token, 8);
    host.respond_http_call(call.id, HttpCallResponse::new(500, &[], b"no"))
        .unwrap();
    let reply = host.stream(id2).unwrap().local_response().unwrap();
    assert_eq!((reply.status_code, reply.body), (403, b"no".to_vec()));

    let mut s = host.http_stream(0).unwrap();
    s.request_headers(&req("http-call"), true).unwrap();
    let id3 = s.id();
    let call = host.http_calls()[0].clone();
    host.respond_http_call(call.id, HttpCallResponse::failure())
        .unwrap();
    assert_eq!(
        host.stream(id3)
            .unwrap()
            .local_response()
            .unwrap()
            .status_code,
        503
    );
    assert!(
        host.logged("http call failed: Ok((11, Some(\"reset\")))"),
        "{:?}",
        host.logs()
    );
}

#[test]
fn http_call_to_unknown_cluster_is_bad_argument() {
    let mut host = Host::builder(&fixture())
        .clusters(["other"])
        .build()
        .unwrap();
    host.start().unwrap();
    let mut s = host.http_stream(0).unwrap();
    assert_eq!(
        s.request_headers(&req("http-call"), true).unwrap(),
        Action::Continue
    );
    assert_eq!(
        s.request_header("x-fixture-call-error").as_deref(),
        Some("BadArgument")
    );
}

#[test]
fn properties_have_envoy_encodings_and_scopes() {
    let mut host = Host::builder(&fixture())
        .root_id("fixture_root")
        .property("xds.route_name", "route-1")
        .property("source.address", "10.0.0.1:1234")
        .build()
        .unwrap();
    host.start().unwrap();
    let start_ns = 1_735_689_600_000_000_000i64;
    let cases: Vec<(&str, &str, Option<&str>, String)> = vec![
        ("xds.route_name", "", None, "route-1".into()),
        (
            "source.address",
            "",
            Some("192.168.1.1:5"),
            "192.168.1.1:5".into(),
        ),
        ("plugin_root_id", "", None, "fixture_root".into()),
        ("request.time", "i64", None, start_ns.to_string()),
        ("request.path", "", None, "/a?q=1".into()),
        ("request.url_path", "", None, "/a".into()),
        ("upstream.address", "", None, "<none>".into()),
        ("no.such.thing", "", None, "<none>".into()),
    ];
    for (path, format, stream_override, expected) in cases {
        let mut s = host.http_stream(0).unwrap();
        if let Some(v) = stream_override {
            s.set_property(path, v).unwrap();
        }
        let headers = with(req("property"), &[]);
        let mut headers: Vec<(&str, &str)> = headers;
        headers.push(("x-fixture-path", path));
        headers.push(("x-fixture-format", format));
        s.request_headers(&headers, true).unwrap();
        assert_eq!(
            s.request_header("x-fixture-property").unwrap(),
            expected,
            "{path}"
        );
        assert_eq!(
            s.request_header("x-fixture-state").as_deref(),
            Some("stored")
        );
    }
}

#[test]
fn trap_reports_the_panic_and_fails_the_vm() {
    let mut host = fixture_host(1, "");
    let mut s = host.http_stream(0).unwrap();
    let err = s.request_headers(&req("panic"), true).unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Trap);
    assert!(err.message().contains("fixture panic requested"), "{err}");
    let mut s = host.http_stream(0).unwrap();
    let err = s.request_headers(&req(""), true).unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::VmFailed);
}

#[test]
fn foreign_functions_and_log_level() {
    let mut host = Host::builder(&fixture())
        .log_level(LogLevel::Warn)
        .foreign_function("echo", |args| Ok([b"echo-".as_slice(), args].concat()))
        .build()
        .unwrap();
    host.start().unwrap();
    let mut s = host.http_stream(0).unwrap();
    s.request_headers(&with(req("foreign"), &[("x-fixture-fn", "echo")]), true)
        .unwrap();
    assert_eq!(
        s.request_header("x-fixture-foreign").as_deref(),
        Some("ok:echo-arg")
    );
    let mut s = host.http_stream(0).unwrap();
    s.request_headers(&with(req("foreign"), &[("x-fixture-fn", "nope")]), true)
        .unwrap();
    assert_eq!(
        s.request_header("x-fixture-foreign").as_deref(),
        Some("NotFound")
    );
    let mut s = host.http_stream(0).unwrap();
    s.request_headers(&req("log-level"), true).unwrap();
    assert_eq!(
        s.request_header("x-fixture-log-level").as_deref(),
        Some("Warn")
    );
}

#[test]
fn body_writes_follow_envoy_start_rules_and_buffering() {
    let mut host = fixture_host(1, "");
    let mut s = host.http_stream(0).unwrap();
    assert_eq!(
        s.request_headers(&req("wrap-body"), false).unwrap(),
        Action::Continue
    );
    assert_eq!(s.request_body(b"ab", false).unwrap(), Action::Pause);
    assert_eq!(s.request_body_held(), b"ab");
    assert_eq!(s.request_body(b"cd", true).unwrap(), Action::Continue);
    assert_eq!(s.request_body_forwarded(), b"<abcd>");
}

#[test]
fn a_crashed_worker_stops_and_fail_reload_gives_a_fresh_vm() {
    let mut host = fixture_host(2, "tick_ms=100");
    let ticks_of = |h: &Host, worker: usize| {
        h.logs()
            .iter()
            .filter(|l| l.worker == worker && l.message.starts_with("tick "))
            .count()
    };
    host.crash_worker(1).unwrap();
    host.advance(Duration::from_millis(300)).unwrap();
    assert_eq!((ticks_of(&host, 0), ticks_of(&host, 1)), (3, 0));
    let err = host
        .http_stream(1)
        .and_then(|mut s| s.request_headers(&req(""), true))
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::VmFailed);

    // The trap path leads to the same place, and reload recovers either.
    let mut s = host.http_stream(0).unwrap();
    assert_eq!(
        s.request_headers(&req("panic"), true).unwrap_err().kind(),
        &ErrorKind::Trap
    );
    for worker in [0, 1] {
        let restarted = host.reload_worker(worker).unwrap();
        assert!(restarted.vm_started && restarted.configured);
    }
    host.advance(Duration::from_millis(100)).unwrap();
    assert_eq!(
        (ticks_of(&host, 0), ticks_of(&host, 1)),
        (4, 1),
        "both tick again"
    );
    let mut s = host.http_stream(1).unwrap();
    assert_eq!(s.request_headers(&req(""), true).unwrap(), Action::Continue);
    assert!(host.reload_worker(2).is_err(), "no such worker");
}
