//! Final-failure marks of the real plugin, in the harness: a hop that is done with a failed
//! request marks its response so the proxies above do not retry it; a hop that receives a
//! trusted mark spends no budget on it and passes it on; marks from untrusted upstreams are
//! not believed, and none reach an untrusted downstream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use ballast_mock_host::Host;

const TRUSTED: &str = "127.0.0.1:41000";
const UNTRUSTED: &str = "203.0.113.7:41000";
const UPSTREAM: &str = "127.0.0.1:8081";

fn config(budget: &str, retry_extra: &str) -> String {
    format!(
        r#"{{"policy_sets": {{"api": {{
              "retry_budget": {budget},
              "retry": {{"max_retries_per_request": 3, "explain_header": "x-ballast-retry"{retry_extra}}}}}}},
            "default_policy_set": "api"}}"#
    )
}

fn host(config: &str) -> Host {
    let mut host = Host::builder(&common::ballast_plugin())
        .plugin_config(config)
        .build()
        .unwrap();
    assert!(host.start().unwrap().all_ok());
    host
}

/// What one response looked like after the plugin.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    reserved: Option<String>,
    ratelimited: Option<String>,
    final_mark: Option<String>,
    pushback: Option<String>,
    explained: Option<String>,
}

struct Exchange<'a> {
    method: &'a str,
    grpc: bool,
    downstream: &'a str,
    upstream: &'a str,
    response: &'a [(&'a str, &'a str)],
}

impl Default for Exchange<'_> {
    fn default() -> Self {
        Exchange {
            method: "GET",
            grpc: false,
            downstream: TRUSTED,
            upstream: UPSTREAM,
            response: &[(":status", "503"), ("x-envoy-attempt-count", "4")],
        }
    }
}

fn run(host: &mut Host, exchange: &Exchange<'_>) -> Seen {
    let mut stream = host.http_stream(0).unwrap();
    stream
        .set_property("source.address", exchange.downstream)
        .unwrap();
    stream
        .set_property("upstream.address", exchange.upstream)
        .unwrap();
    let mut request = vec![
        (":method", exchange.method),
        (":path", "/a"),
        (":authority", "x"),
    ];
    if exchange.grpc {
        request.push(("content-type", "application/grpc"));
    }
    stream.request_headers(&request, true).unwrap();
    let reserved = stream.request_header("x-envoy-max-retries");
    stream.response_headers(exchange.response, true).unwrap();
    let seen = Seen {
        reserved,
        ratelimited: stream.response_header("x-envoy-ratelimited"),
        final_mark: stream.response_header("x-ballast-final"),
        pushback: stream.response_header("grpc-retry-pushback-ms"),
        explained: stream.response_header("x-ballast-retry"),
    };
    stream.finish().unwrap();
    seen
}

fn counter(host: &Host, name: &str) -> u64 {
    host.counter(&format!("ballast_{name}.policy_set=.=api;.;"))
        .unwrap_or(0)
}

fn some(text: &str) -> Option<String> {
    Some(text.to_string())
}

#[test]
fn a_hop_marks_the_failures_it_is_done_with_and_only_those() {
    let mut host = host(&config("{}", ""));
    // Retried as often as allowed, still failing: final.
    let retried = run(&mut host, &Exchange::default());
    assert_eq!(retried.reserved.as_deref(), Some("3"));
    assert_eq!(retried.ratelimited, some("true"));
    assert_eq!(retried.final_mark, some("retried"));
    assert_eq!(retried.pushback, None, "not gRPC");
    // Not idempotent: final.
    let post = run(
        &mut host,
        &Exchange {
            method: "POST",
            response: &[(":status", "502"), ("x-envoy-attempt-count", "1")],
            ..Exchange::default()
        },
    );
    assert_eq!(post.final_mark, some("not-idempotent"));
    assert_eq!(post.ratelimited, some("true"));
    // The router stopped before the retries it had (its retry_on does not cover this
    // failure): not done here, the layer above may retry.
    let early = run(
        &mut host,
        &Exchange {
            response: &[(":status", "500"), ("x-envoy-attempt-count", "1")],
            ..Exchange::default()
        },
    );
    assert_eq!((early.ratelimited, early.final_mark), (None, None));
    // A success, and a 4xx, are never marked.
    for status in ["200", "404"] {
        let fine = run(
            &mut host,
            &Exchange {
                response: &[(":status", status), ("x-envoy-attempt-count", "2")],
                ..Exchange::default()
            },
        );
        assert_eq!(
            (fine.ratelimited, fine.final_mark),
            (None, None),
            "{status}"
        );
    }
    assert_eq!(counter(&host, "retry_final_marks_emitted"), 2);
}

#[test]
fn a_spent_budget_marks_its_refusals() {
    let mut host = host(&config(r#"{"ratio": 0, "min_retries_per_second": 0}"#, ""));
    let denied = run(
        &mut host,
        &Exchange {
            response: &[(":status", "503"), ("x-envoy-attempt-count", "1")],
            ..Exchange::default()
        },
    );
    assert_eq!(denied.reserved.as_deref(), Some("0"));
    assert_eq!(denied.final_mark, some("budget"));
    assert_eq!(
        denied.explained.as_deref(),
        Some("retry-denied=budget; retries=0")
    );
}

#[test]
fn a_trusted_mark_from_below_spends_nothing_and_is_passed_on() {
    // ratio 0, floor 10/s × 10 s: each request reserves 3 of 100.
    let mut host = host(&config(r#"{"ratio": 0, "min_retries_per_second": 10}"#, ""));
    let marked = [
        (":status", "503"),
        ("x-envoy-attempt-count", "1"),
        ("x-envoy-ratelimited", "true"),
        ("x-ballast-final", "retried"),
    ];
    for _ in 0..5 {
        let seen = run(
            &mut host,
            &Exchange {
                response: &marked,
                ..Exchange::default()
            },
        );
        assert_eq!(seen.reserved.as_deref(), Some("3"));
        assert_eq!(seen.final_mark, some("upstream"));
        assert_eq!(seen.ratelimited, some("true"));
        assert_eq!(
            seen.explained.as_deref(),
            Some("retry-denied=upstream-final; retries=0")
        );
    }
    assert_eq!(counter(&host, "retry_final_marks_honoured"), 5);
    assert_eq!(counter(&host, "retries_saved"), 15);
    assert_eq!(counter(&host, "retries_allowed"), 0, "no budget spent");
    // Either header alone is a mark.
    let envoy_only = run(
        &mut host,
        &Exchange {
            response: &[
                (":status", "503"),
                ("x-envoy-attempt-count", "1"),
                ("x-envoy-ratelimited", "true"),
            ],
            ..Exchange::default()
        },
    );
    assert_eq!(envoy_only.final_mark, some("upstream"));
}

#[test]
fn marks_from_an_untrusted_upstream_are_not_believed_or_passed_on() {
    let mut host = host(&config("{}", ""));
    let seen = run(
        &mut host,
        &Exchange {
            upstream: "198.51.100.9:443",
            response: &[
                (":status", "503"),
                ("x-envoy-attempt-count", "1"),
                ("x-envoy-ratelimited", "true"),
                ("x-ballast-final", "retried"),
            ],
            ..Exchange::default()
        },
    );
    assert_eq!((seen.ratelimited, seen.final_mark), (None, None));
    assert_eq!(counter(&host, "retry_final_marks_untrusted"), 1);
    assert_eq!(counter(&host, "retry_final_marks_honoured"), 0);
    assert_eq!(counter(&host, "retries_saved"), 0);
}

#[test]
fn no_mark_reaches_an_untrusted_downstream_unless_configured() {
    for strip in [true, false] {
        let extra = format!(r#", "strip_marks_to_untrusted": {strip}"#);
        let mut host = host(&config("{}", &extra));
        let own = run(
            &mut host,
            &Exchange {
                downstream: UNTRUSTED,
                ..Exchange::default()
            },
        );
        let passed = run(
            &mut host,
            &Exchange {
                downstream: UNTRUSTED,
                response: &[
                    (":status", "503"),
                    ("x-envoy-attempt-count", "1"),
                    ("x-envoy-ratelimited", "true"),
                    ("x-ballast-final", "budget"),
                ],
                ..Exchange::default()
            },
        );
        if strip {
            assert_eq!((own.ratelimited, own.final_mark), (None, None));
            assert_eq!((passed.ratelimited, passed.final_mark), (None, None));
            assert_eq!(counter(&host, "retry_final_marks_stripped"), 1);
            assert_eq!(counter(&host, "retry_final_marks_emitted"), 0);
        } else {
            assert_eq!(own.final_mark, some("retried"));
            assert_eq!(passed.final_mark, some("upstream"));
            assert_eq!(counter(&host, "retry_final_marks_emitted"), 2);
        }
    }
}

#[test]
fn a_grpc_failure_tells_grpc_clients_not_to_retry() {
    let mut host = host(&config("{}", ""));
    let unavailable = [
        (":status", "200"),
        ("content-type", "application/grpc"),
        ("grpc-status", "14"),
        ("x-envoy-attempt-count", "4"),
    ];
    for downstream in [TRUSTED, UNTRUSTED] {
        let seen = run(
            &mut host,
            &Exchange {
                grpc: true,
                downstream,
                response: &unavailable,
                ..Exchange::default()
            },
        );
        assert_eq!(seen.pushback, some("-1"), "{downstream}: for clients too");
        let internal = if downstream == TRUSTED {
            some("retried")
        } else {
            None
        };
        assert_eq!(seen.final_mark, internal, "{downstream}");
    }
    // NOT_FOUND is not a failure anyone retries.
    let not_found = run(
        &mut host,
        &Exchange {
            grpc: true,
            response: &[
                (":status", "200"),
                ("content-type", "application/grpc"),
                ("grpc-status", "5"),
                ("x-envoy-attempt-count", "1"),
            ],
            ..Exchange::default()
        },
    );
    assert_eq!((not_found.pushback, not_found.final_mark), (None, None));
}

#[test]
fn marking_can_be_turned_off_and_a_dry_run_marks_nothing() {
    let mut off = host(&config("{}", r#", "mark_final_failures": false"#));
    let seen = run(&mut off, &Exchange::default());
    assert_eq!((seen.ratelimited, seen.final_mark), (None, None));
    let dry = format!(
        r#"{{"dry_run": true, {}"#,
        config("{}", "").trim_start().trim_start_matches('{')
    );
    let mut dry = host(&dry);
    let seen = run(&mut dry, &Exchange::default());
    assert_eq!((seen.ratelimited, seen.final_mark), (None, None));
    assert_eq!(
        counter(&dry, "retry_final_marks_emitted"),
        1,
        "counted, not written"
    );
}
