//! The bad-input table: malformed, huge, negative, duplicated, non-ASCII and multi-valued hints
//! (deadline, attempt count, priority), absurd header sizes and counts, missing pseudo headers,
//! responses without a status, and bad configurations, each sent through the real plugin in the
//! harness with every policy on, each with the outcome it must have.
//!
//! Why a table: a plugin in every request path meets every one of these eventually, from broken
//! clients, hostile ones, and other proxies. Each must have a defined outcome (passed on,
//! answered, ignored and counted) and none may trap the VM (which, in Envoy, answers 503 to
//! everything until it is reloaded). The mock host returns what Envoy returns for each.
//! Bad configurations are in `ballast_bad_config.rs`; streams reset while queued or holding a
//! slot in `ballast_concurrency.rs` (`wait_runs_out_and_cancelled_waiters_leave`,
//! `reset_streams_release_their_slot`). A table of cases is long by nature: one row each.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use ballast_mock_host::{Action, Host, LogLevel};

/// Every policy on, one worker, the peer on loopback (trusted by default), so every hint is
/// read and believed: the worst case for parsing.
const ALL_POLICIES: &str = r#"{
  "priority": {"classes": ["critical", "normal", "sheddable"], "default": "normal"},
  "policy_sets": {"api": {
    "retry_budget": {}, "retry": {"max_retries_per_request": 3},
    "concurrency": {}, "deadline": {}, "shedding": {}}},
  "default_policy_set": "api"}"#;

fn host(config: &str) -> Host {
    let mut host = Host::builder(&common::ballast_plugin())
        .plugin_config(config)
        .build()
        .unwrap();
    let outcome = host.start().unwrap();
    assert!(outcome.all_ok(), "{:?}", outcome.logs);
    host
}

/// What a request's passage looked like.
#[derive(Debug)]
struct Seen {
    action: Action,
    /// The local reply's status, if the plugin answered.
    reply: Option<u32>,
    /// Request headers as forwarded (after the plugin's edits).
    forwarded: Vec<(String, String)>,
    /// Response headers as they leave.
    response: Vec<(String, String)>,
}

impl Seen {
    fn forwarded(&self, name: &str) -> Option<&str> {
        self.forwarded
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn counter(host: &Host, name: &str) -> u64 {
    host.counter(&format!("ballast_{name}.policy_set=.=api;.;"))
        .unwrap_or(0)
}

/// Sends `request`, then (unless the plugin answered) `response`; the VM must survive it.
fn pass(host: &mut Host, request: &[(&str, &str)], response: &[(&str, &str)]) -> Seen {
    let mut stream = host.http_stream(0).unwrap();
    stream
        .set_property("source.address", "127.0.0.1:40000")
        .unwrap();
    stream
        .set_property("upstream.address", "127.0.0.1:8081")
        .unwrap();
    let action = stream.request_headers(request, true).unwrap();
    let forwarded = stream.request_headers_now();
    let reply = stream.local_response().map(|r| r.status_code);
    if reply.is_none() && action == Action::Continue {
        stream.response_headers(response, true).unwrap();
    }
    let response = stream.response_headers_now();
    stream.finish().unwrap();
    Seen {
        action,
        reply,
        forwarded,
        response,
    }
}

const OK: &[(&str, &str)] = &[(":status", "200"), ("x-envoy-attempt-count", "1")];

fn get_with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut headers = vec![(":method", "GET"), (":path", "/a"), (":authority", "x")];
    headers.extend_from_slice(extra);
    headers
}

/// One row: what is sent, and what must come of it.
struct Case {
    name: &'static str,
    request: Vec<(&'static str, &'static str)>,
    response: &'static [(&'static str, &'static str)],
    check: fn(&Host, &Seen),
}

fn forwarded_untouched_deadline(host: &Host, seen: &Seen) {
    assert_eq!(seen.action, Action::Continue);
    assert_eq!(seen.reply, None);
    assert_eq!(
        counter(host, "deadline_malformed"),
        1,
        "counted as malformed"
    );
}

fn cases() -> Vec<Case> {
    let huge: &'static str = Box::leak("9".repeat(70_000).into_boxed_str());
    let long_priority: &'static str = Box::leak("critical".repeat(2_000).into_boxed_str());
    let many: Vec<(&'static str, &'static str)> = (0..500)
        .map(|i| {
            let name: &'static str = Box::leak(format!("x-h-{i}").into_boxed_str());
            (name, "v")
        })
        .collect();
    vec![
        // grpc-timeout
        Case {
            name: "grpc-timeout empty",
            request: get_with(&[("grpc-timeout", "")]),
            response: OK,
            check: forwarded_untouched_deadline,
        },
        Case {
            name: "grpc-timeout letters",
            request: get_with(&[("grpc-timeout", "abc")]),
            response: OK,
            check: forwarded_untouched_deadline,
        },
        Case {
            name: "grpc-timeout negative",
            request: get_with(&[("grpc-timeout", "-5m")]),
            response: OK,
            check: forwarded_untouched_deadline,
        },
        Case {
            name: "grpc-timeout without unit",
            request: get_with(&[("grpc-timeout", "100")]),
            response: OK,
            check: forwarded_untouched_deadline,
        },
        Case {
            name: "grpc-timeout nine digits",
            request: get_with(&[("grpc-timeout", "123456789m")]),
            response: OK,
            check: forwarded_untouched_deadline,
        },
        Case {
            name: "grpc-timeout huge",
            request: get_with(&[("grpc-timeout", huge)]),
            response: OK,
            check: forwarded_untouched_deadline,
        },
        Case {
            name: "grpc-timeout non-ASCII digits",
            request: get_with(&[("grpc-timeout", "١٠m")]),
            response: OK,
            check: forwarded_untouched_deadline,
        },
        Case {
            name: "grpc-timeout bad unit",
            request: get_with(&[("grpc-timeout", "10x")]),
            response: OK,
            check: forwarded_untouched_deadline,
        },
        Case {
            name: "grpc-timeout zero",
            request: get_with(&[("grpc-timeout", "0m")]),
            response: OK,
            check: |host, seen| {
                assert_eq!(
                    seen.reply,
                    Some(504),
                    "spent on arrival: answered, not forwarded"
                );
                assert_eq!(counter(host, "deadline_expired_on_arrival"), 1);
            },
        },
        Case {
            name: "grpc-timeout of hours",
            request: get_with(&[("grpc-timeout", "99999999H")]),
            response: OK,
            check: |_, seen| {
                assert_eq!(seen.reply, None);
                // Saturates (no `deadline.max` here): the absolute deadline at the clock's end,
                // u64::MAX ns less the per-hop offset, and the timeout what is left until then;
                // nothing wraps around to a short one.
                let absolute: u64 = seen
                    .forwarded("x-ballast-deadline")
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(absolute >= u64::MAX / 1_000_000 - 1_000, "{absolute}");
                let timeout: u64 = seen
                    .forwarded("x-envoy-upstream-rq-timeout-ms")
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(timeout > 10_000_000_000_000, "{timeout}");
            },
        },
        Case {
            name: "grpc-timeout duplicated",
            request: get_with(&[("grpc-timeout", "10S"), ("grpc-timeout", "abc")]),
            response: OK,
            check: |_, seen| {
                assert_eq!(seen.action, Action::Continue);
                assert_eq!(seen.reply, None);
            },
        },
        // Envoy's timeouts and ballast's absolute deadline
        Case {
            name: "expected-rq-timeout letters",
            request: get_with(&[("x-envoy-expected-rq-timeout-ms", "soon")]),
            response: OK,
            check: forwarded_untouched_deadline,
        },
        Case {
            name: "expected-rq-timeout negative",
            request: get_with(&[("x-envoy-expected-rq-timeout-ms", "-1")]),
            response: OK,
            check: forwarded_untouched_deadline,
        },
        Case {
            name: "expected-rq-timeout exponent",
            request: get_with(&[("x-envoy-expected-rq-timeout-ms", "1e3")]),
            response: OK,
            check: forwarded_untouched_deadline,
        },
        Case {
            name: "upstream-rq-timeout past u64",
            request: get_with(&[("x-envoy-upstream-rq-timeout-ms", "99999999999999999999999")]),
            response: OK,
            check: forwarded_untouched_deadline,
        },
        Case {
            name: "absolute deadline words",
            request: get_with(&[("x-ballast-deadline", "yesterday")]),
            response: OK,
            check: forwarded_untouched_deadline,
        },
        Case {
            name: "absolute deadline fraction",
            request: get_with(&[("x-ballast-deadline", "1.5")]),
            response: OK,
            check: forwarded_untouched_deadline,
        },
        Case {
            name: "absolute deadline in 1970",
            request: get_with(&[("x-ballast-deadline", "1")]),
            response: OK,
            check: |host, seen| {
                assert_eq!(seen.reply, None, "far in the past: a clock skew, ignored");
                assert_eq!(counter(host, "deadline_skew_rejected"), 1);
            },
        },
        // attempt marks
        Case {
            name: "attempt count zero",
            request: get_with(&[("x-envoy-attempt-count", "0")]),
            response: OK,
            check: |host, seen| {
                assert_eq!(seen.reply, None);
                assert_eq!(counter(host, "retry_marks_malformed"), 1);
                assert_eq!(counter(host, "retried_requests_received"), 0);
            },
        },
        Case {
            name: "attempt count negative",
            request: get_with(&[("x-envoy-attempt-count", "-1")]),
            response: OK,
            check: |host, _| {
                assert_eq!(counter(host, "retry_marks_malformed"), 1);
            },
        },
        Case {
            name: "attempt count past u32",
            request: get_with(&[("x-envoy-attempt-count", "99999999999")]),
            response: OK,
            check: |host, _| {
                assert_eq!(counter(host, "retry_marks_malformed"), 1);
            },
        },
        Case {
            name: "grpc previous attempts letters",
            request: get_with(&[("grpc-previous-rpc-attempts", "two")]),
            response: OK,
            check: |host, _| {
                assert_eq!(counter(host, "retry_marks_malformed"), 1);
            },
        },
        Case {
            name: "attempt count huge value",
            request: get_with(&[("x-envoy-attempt-count", huge)]),
            response: OK,
            check: |host, seen| {
                assert_eq!(seen.reply, None);
                assert_eq!(counter(host, "retry_marks_malformed"), 1);
            },
        },
        // priority
        Case {
            name: "priority unknown",
            request: get_with(&[("x-ballast-priority", "vip")]),
            response: OK,
            check: |host, seen| {
                assert_eq!(seen.reply, None);
                assert_eq!(counter(host, "shedding_priority_unknown"), 1);
            },
        },
        Case {
            name: "priority upper case",
            request: get_with(&[("x-ballast-priority", "CRITICAL")]),
            response: OK,
            check: |host, _| {
                assert_eq!(
                    counter(host, "shedding_priority_unknown"),
                    1,
                    "class names are exact"
                );
            },
        },
        Case {
            name: "priority empty",
            request: get_with(&[("x-ballast-priority", "")]),
            response: OK,
            check: |host, _| {
                assert_eq!(counter(host, "shedding_priority_unknown"), 1);
            },
        },
        Case {
            name: "priority multi-valued",
            request: get_with(&[("x-ballast-priority", "critical, sheddable")]),
            response: OK,
            check: |host, _| {
                assert_eq!(
                    counter(host, "shedding_priority_unknown"),
                    1,
                    "one class per request"
                );
            },
        },
        Case {
            name: "priority non-ASCII",
            request: get_with(&[("x-ballast-priority", "críticál")]),
            response: OK,
            check: |host, _| {
                assert_eq!(counter(host, "shedding_priority_unknown"), 1);
            },
        },
        Case {
            name: "priority 16 KB",
            request: get_with(&[("x-ballast-priority", long_priority)]),
            response: OK,
            check: |host, _| {
                assert_eq!(counter(host, "shedding_priority_unknown"), 1);
            },
        },
        // shapes of the request
        Case {
            name: "500 headers",
            request: {
                let mut h = get_with(&[]);
                h.extend(many.iter().copied());
                h
            },
            response: OK,
            check: |host, seen| {
                assert_eq!((seen.action, seen.reply), (Action::Continue, None));
                assert_eq!(counter(host, "requests_total"), 1);
            },
        },
        Case {
            name: "no :path",
            request: vec![(":method", "GET"), (":authority", "x")],
            response: OK,
            check: |host, seen| {
                assert_eq!(seen.reply, None);
                assert_eq!(
                    counter(host, "requests_total"),
                    1,
                    "the default set takes it"
                );
            },
        },
        Case {
            name: "no :method",
            request: vec![(":path", "/a"), (":authority", "x")],
            response: OK,
            check: |_, seen| {
                assert_eq!(
                    seen.forwarded("x-envoy-max-retries"),
                    Some("0"),
                    "unknown method: not idempotent"
                );
            },
        },
        Case {
            name: "no :authority",
            request: vec![(":method", "GET"), (":path", "/a")],
            response: OK,
            check: |_, seen| {
                assert_eq!((seen.action, seen.reply), (Action::Continue, None));
            },
        },
        Case {
            name: "no headers at all",
            request: vec![],
            response: OK,
            check: |_, seen| {
                assert_eq!((seen.action, seen.reply), (Action::Continue, None));
                assert_eq!(seen.forwarded("x-envoy-max-retries"), Some("0"));
            },
        },
        Case {
            name: "lower-case method",
            request: vec![(":method", "get"), (":path", "/a"), (":authority", "x")],
            response: OK,
            check: |_, seen| {
                assert_eq!(
                    seen.forwarded("x-envoy-max-retries"),
                    Some("0"),
                    "methods are case-sensitive"
                );
            },
        },
        // responses
        Case {
            name: "response without :status",
            request: get_with(&[]),
            response: &[("x-envoy-attempt-count", "1")],
            check: |host, seen| {
                assert_eq!(seen.reply, None);
                assert_eq!(counter(host, "retries_allowed"), 0);
                assert_eq!(
                    host.gauge("ballast_concurrency_in_flight.policy_set=.=api;.;"),
                    Some(0),
                    "slot released"
                );
            },
        },
        Case {
            name: "response status letters",
            request: get_with(&[]),
            response: &[(":status", "ok"), ("x-envoy-attempt-count", "1")],
            check: |host, _| {
                assert_eq!(
                    host.gauge("ballast_concurrency_in_flight.policy_set=.=api;.;"),
                    Some(0)
                );
            },
        },
        Case {
            name: "response status 999",
            request: get_with(&[]),
            response: &[(":status", "999"), ("x-envoy-attempt-count", "4")],
            check: |_, seen| {
                assert!(
                    seen.response
                        .iter()
                        .any(|(k, v)| k == "x-ballast-final" && v == "retried"),
                    "above 5xx is still a failure: retried as allowed, then marked final"
                );
            },
        },
        Case {
            name: "response attempt count junk",
            request: get_with(&[]),
            response: &[(":status", "503"), ("x-envoy-attempt-count", "junk")],
            check: |host, _| {
                assert_eq!(
                    counter(host, "retries_allowed"),
                    3,
                    "no count on a failure: all reserved taken as used"
                );
            },
        },
        Case {
            name: "response attempt count past the reservation",
            request: get_with(&[]),
            response: &[(":status", "503"), ("x-envoy-attempt-count", "4000000000")],
            check: |host, _| {
                assert_eq!(
                    counter(host, "retries_allowed"),
                    3,
                    "never more than reserved"
                );
            },
        },
        Case {
            name: "response grpc-status junk",
            request: get_with(&[]),
            response: &[
                (":status", "200"),
                ("grpc-status", "fourteen"),
                ("x-envoy-attempt-count", "1"),
            ],
            check: |_, seen| {
                assert!(
                    !seen.response.iter().any(|(k, _)| k == "x-ballast-final"),
                    "not a known failure"
                );
            },
        },
    ]
}

#[test]
fn every_bad_input_has_its_outcome_and_none_traps() {
    let cases = cases();
    assert!(cases.len() >= 40, "{} request cases", cases.len());
    for case in &cases {
        let mut host = host(ALL_POLICIES);
        let seen = pass(&mut host, &case.request, case.response);
        let name = case.name;
        // A panic inside `check` names the case.
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (case.check)(&host, &seen)));
        if let Err(e) = result {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("case `{name}`: {msg}\n{seen:?}");
        }
        assert!(
            host.logs_at(LogLevel::Critical).is_empty(),
            "case `{name}`: {:?}",
            host.logs()
        );
    }
}
