//! The real ballast plugin on the ngx_wasm_module host profile (Kong's proxy-wasm host, see
//! `HostProfile::NgxWasmModule`): no trap under any policy, every request gets an outcome and
//! none stays paused, metrics count under ngx's `pw:<filter>:` names, the retry budget, rate
//! limits and deadlines work as on Envoy, and the concurrency queue is off (a request over the
//! limit is rejected at once) because that host cannot resume a paused request from a tick or
//! from another stream. The same over-limit request under the Envoy profile waits and is
//! resumed, which shows the profile really differs; a host that does not implement
//! `proxy_set_effective_context` at all (MOSN) loses the queue the same way.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use ballast_mock_host::{Action, Host, HostProfile, StreamId};
use common::limiter::{open, respond, GET, TRUSTED};
use common::Rng;
use std::time::Duration;

const NGX: HostProfile = HostProfile::NgxWasmModule;

/// Every policy in one set: a fixed limit of 2 with a queue, a retry budget, deadlines and a
/// rate limit for the sheddable class.
const ALL_POLICIES: &str = r#""policy_sets": {"api": {
    "retry_budget": {"ratio": 0.2, "min_retries_per_second": 10, "ttl": "10s"},
    "retry": {"max_retries_per_request": 3},
    "concurrency": {"algorithm": "fixed", "initial_limit": 2,
                    "queue": {"size": 10, "max_wait": "50ms"}},
    "deadline": {},
    "shedding": {"rate_limits": {"sheddable": {"per_second": 50, "burst": 5}}}}},
  "default_policy_set": "api""#;

/// A started host of the real plugin under `profile` (filter name `ballast`).
fn host(profile: HostProfile, workers: usize, sets: &str) -> Host {
    let mut host = Host::builder(&common::ballast_plugin())
        .profile(profile)
        .plugin_name("ballast")
        .workers(workers)
        .plugin_config(format!("{{{TRUSTED}, {sets}}}"))
        .property("source.address", "10.1.2.3:40000")
        .build()
        .unwrap();
    assert!(host.start().unwrap().all_ok(), "{:?}", host.logs());
    host
}

/// The name a metric of policy set `api` is read back under on `profile`.
fn metric(profile: HostProfile, name: &str) -> String {
    let name = format!("ballast_{name}.policy_set=.=api;.;");
    match profile {
        HostProfile::Envoy => name,
        HostProfile::NgxWasmModule => format!("pw:ballast:{name}"),
    }
}

fn counter(host: &Host, name: &str) -> u64 {
    let name = metric(host.profile(), name);
    host.counter(&name)
        .unwrap_or_else(|| panic!("{name} not defined: {:?}", host.metrics()))
}

/// Answers a forwarded request in one of the shapes a response can take, then ends it.
fn answer(host: &mut Host, id: StreamId, shape: u64, status: &str) {
    let mut stream = host.stream(id).unwrap();
    let headers = [(":status", status)];
    match shape {
        0 => {
            stream.response_headers(&headers, true).unwrap();
        }
        1 => {
            stream.response_headers(&headers, false).unwrap();
            stream.response_body(b"ok", true).unwrap();
        }
        _ => {
            stream.response_headers(&headers, false).unwrap();
            stream.response_body(b"ok", false).unwrap();
            stream.response_trailers(&[("grpc-status", "0")]).unwrap();
        }
    }
    stream.finish().unwrap();
}

#[test]
fn every_policy_runs_without_a_trap_and_every_request_gets_an_outcome() {
    let mut host = host(NGX, 2, ALL_POLICIES);
    assert!(host.logged("concurrency queue(s) off"), "{:?}", host.logs());
    let variants: [&[(&str, &str)]; 5] = [
        &[],
        &[("x-ballast-priority", "sheddable")],
        &[("grpc-timeout", "0m")],
        &[("grpc-timeout", "200m")],
        &[("x-envoy-attempt-count", "2")],
    ];
    let mut rng = Rng(0x5EED_1234);
    let (mut all, mut open_now, mut replies) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..400 {
        let mut headers = GET.to_vec();
        headers.extend_from_slice(variants[rng.below(variants.len() as u64) as usize]);
        let worker = rng.below(2) as usize;
        let (id, action) = open(&mut host, worker, &headers);
        all.push(id);
        match action {
            Action::Continue => open_now.push(id),
            Action::Closed => {
                let reply = host.stream(id).unwrap().local_response().unwrap();
                let why = reply
                    .headers
                    .iter()
                    .find(|(k, _)| k == "x-ballast-rejected");
                replies.push((reply.status_code, why.map(|(_, v)| v.clone())));
                host.stream(id).unwrap().finish().unwrap();
            }
            Action::Pause => panic!("request {id:?} paused: nothing could resume it on ngx"),
        }
        // Up to 3 requests stay open, so the limit of 2 is often full.
        while open_now.len() > rng.below(4) as usize {
            let id = open_now.remove(0);
            let status = if rng.below(4) == 0 { "503" } else { "200" };
            answer(&mut host, id, rng.below(3), status);
        }
        host.advance(Duration::from_millis(3)).unwrap();
    }
    for id in open_now.drain(..) {
        answer(&mut host, id, 0, "200");
    }
    host.advance(Duration::from_secs(2)).unwrap();

    for id in &all {
        let stream = host.stream(*id).unwrap();
        assert!(stream.finished() && !stream.request_paused() && !stream.response_paused());
    }
    let count = |status: u32, why: &str| {
        replies
            .iter()
            .filter(|(s, w)| *s == status && w.as_deref() == Some(why))
            .count() as u64
    };
    let (rejected, expired) = (count(503, "concurrency"), count(504, "deadline"));
    let shed = replies.len() as u64 - rejected - expired;
    assert!(rejected > 0 && expired > 0, "{replies:?}");
    assert!(
        replies
            .iter()
            .all(|(s, w)| [503, 504, 429].contains(s) && w.is_some()),
        "every local reply says why: {replies:?}"
    );
    // Counted under the names ngx stores: `pw:<filter>:<name>`.
    assert_eq!(counter(&host, "requests_total"), 400);
    assert_eq!(counter(&host, "concurrency_rejected"), rejected);
    assert_eq!(counter(&host, "deadline_expired_on_arrival"), expired);
    assert_eq!(
        counter(&host, "concurrency_queue_timeouts"),
        0,
        "nothing waited"
    );
    assert!(counter(&host, "retries_allowed") > 0);
    eprintln!("{rejected} over the limit, {expired} deadlines spent, {shed} shed");
    assert_eq!(host.gauge(&metric(NGX, "concurrency_in_flight")), Some(0));
    assert_eq!(
        host.counter("ballast_requests_total.policy_set=.=api;.;"),
        None
    );
    assert!(host
        .metrics()
        .iter()
        .all(|(_, name, _)| name.starts_with("pw:ballast:")));
    assert_eq!(
        host.counter("pw:ballast:ballast_host_errors_total"),
        Some(0)
    );
    assert!(
        host.host_warnings().is_empty(),
        "{:?}",
        host.host_warnings()
    );
}

/// A limit of 2 on `workers` VMs: two requests hold it, a third arrives on the last worker.
fn over_the_limit(profile: HostProfile, workers: usize) -> (Host, [StreamId; 2], StreamId, Action) {
    let sets = r#""policy_sets": {"api": {"concurrency": {"algorithm": "fixed",
        "initial_limit": 2, "queue": {"size": 10, "max_wait": "1s"}}}},
        "default_policy_set": "api""#;
    let mut host = host(profile, workers, sets);
    let (first, action) = open(&mut host, 0, &GET);
    assert_eq!(action, Action::Continue);
    let (second, action) = open(&mut host, 0, &GET);
    assert_eq!(action, Action::Continue);
    let (third, action) = open(&mut host, workers - 1, &GET);
    (host, [first, second], third, action)
}

#[test]
fn over_the_limit_ngx_rejects_at_once_where_envoy_queues() {
    for workers in [1, 2] {
        let (mut host, holding, third, action) = over_the_limit(NGX, workers);
        assert_eq!(
            action,
            Action::Closed,
            "{workers} worker(s): rejected, not paused"
        );
        let reply = host.stream(third).unwrap().local_response().unwrap();
        assert_eq!(reply.status_code, 503);
        assert!(reply
            .headers
            .contains(&("x-ballast-rejected".into(), "concurrency".into())));
        assert_eq!(counter(&host, "concurrency_rejected"), 1);
        host.stream(third).unwrap().finish().unwrap();
        for id in holding {
            respond(&mut host, id);
        }
        host.advance(Duration::from_millis(50)).unwrap();
        assert_eq!(host.gauge(&metric(NGX, "concurrency_in_flight")), Some(0));
    }
}

#[test]
fn over_the_limit_envoy_queues_and_resumes_on_the_same_worker_and_from_a_tick() {
    for workers in [1, 2] {
        let (mut host, holding, third, action) = over_the_limit(HostProfile::Envoy, workers);
        assert!(!host.logged("concurrency queue(s) off"));
        assert_eq!(action, Action::Pause, "{workers} worker(s): it waits");
        respond(&mut host, holding[0]);
        // Same worker: resumed at once; another worker: at its next tick.
        host.advance(Duration::from_millis(20)).unwrap();
        let stream = host.stream(third).unwrap();
        assert!(!stream.request_paused(), "{workers} worker(s): resumed");
        assert_eq!(stream.local_response(), None);
        assert_eq!(counter(&host, "concurrency_rejected"), 0);
        respond(&mut host, holding[1]);
        respond(&mut host, third);
    }
}

#[test]
fn a_host_without_set_effective_context_gets_no_queue_either() {
    // MOSN answers UNIMPLEMENTED (12): anything but BAD_ARGUMENT for an id that names no
    // context means the host cannot switch.
    let sets = r#""policy_sets": {"api": {"concurrency": {"algorithm": "fixed",
        "initial_limit": 1, "queue": {"size": 10, "max_wait": "1s"}}}},
        "default_policy_set": "api""#;
    let mut host = Host::builder(&common::ballast_plugin())
        .plugin_config(format!("{{{TRUSTED}, {sets}}}"))
        .build()
        .unwrap();
    host.fail_import("proxy_set_effective_context", Some(12));
    assert!(host.start().unwrap().all_ok());
    assert!(
        host.logged("1 concurrency queue(s) off"),
        "{:?}",
        host.logs()
    );
    let (held, _) = open(&mut host, 0, &GET);
    let (over, action) = open(&mut host, 0, &GET);
    assert_eq!(action, Action::Closed);
    assert_eq!(
        host.stream(over)
            .unwrap()
            .local_response()
            .unwrap()
            .status_code,
        503
    );
    respond(&mut host, held);
}

#[test]
fn the_tick_period_is_set_once_per_worker() {
    let mut host = Host::builder(&common::ballast_plugin())
        .profile(NGX)
        .plugin_name("ballast")
        .workers(2)
        .plugin_config(format!("{{{TRUSTED}, {ALL_POLICIES}}}"))
        .build()
        .unwrap();
    host.count_host_calls(true);
    assert!(host.start().unwrap().all_ok());
    for i in 0..50 {
        let (id, _) = open(&mut host, i % 2, &GET);
        if host.stream(id).unwrap().local_response().is_none() {
            respond(&mut host, id);
        } else {
            host.stream(id).unwrap().finish().unwrap();
        }
        host.advance(Duration::from_millis(60)).unwrap();
    }
    let calls = host.host_calls();
    let set = calls
        .iter()
        .find(|(name, _)| *name == "proxy_set_tick_period_milliseconds")
        .map(|(_, n)| *n);
    assert_eq!(set, Some(2), "one call per worker: {calls:?}");
    assert_eq!(host.tick_period(1), Some(Duration::from_millis(10)));
}

#[test]
fn four_workers_share_one_retry_budget_under_strict_cas() {
    // ratio 0: the budget is the floor, 10/s × 10 s = 100 retries, whatever the interleaving.
    let sets = r#""policy_sets": {"api": {
        "retry_budget": {"ratio": 0.0, "min_retries_per_second": 10, "ttl": "10s"},
        "retry": {"max_retries_per_request": 3}}}, "default_policy_set": "api""#;
    let mut host = host(NGX, 4, sets);
    let mut granted = 0;
    for i in 0..200 {
        let (id, action) = open(&mut host, (i * 7 + i / 3) % 4, &GET);
        assert_eq!(action, Action::Continue);
        let stream = host.stream(id).unwrap();
        granted += stream
            .request_header("x-envoy-max-retries")
            .map_or(0, |v| v.parse::<u64>().unwrap());
        let mut stream = host.stream(id).unwrap();
        stream
            .response_headers(&[(":status", "200"), ("x-envoy-attempt-count", "9")], true)
            .unwrap();
        stream.finish().unwrap();
    }
    assert_eq!(granted, 100, "one budget for four workers");
    assert_eq!(counter(&host, "retries_allowed"), 100);
}

#[test]
fn a_class_rate_limit_holds_across_workers() {
    let sets = r#""policy_sets": {"api": {"shedding": {"rate_limits":
        {"sheddable": {"per_second": 20, "burst": 1}}}}}, "default_policy_set": "api""#;
    let mut host = host(NGX, 2, sets);
    let headers = [GET.as_slice(), &[("x-ballast-priority", "sheddable")]].concat();
    let mut admitted = 0;
    for i in 0..400 {
        let (id, action) = open(&mut host, i % 2, &headers);
        if action == Action::Continue {
            admitted += 1;
            respond(&mut host, id);
        } else {
            let reply = host.stream(id).unwrap().local_response().unwrap();
            assert_eq!(reply.status_code, 429);
            host.stream(id).unwrap().finish().unwrap();
        }
        host.advance(Duration::from_millis(5)).unwrap();
    }
    assert!(
        (40..=41).contains(&admitted),
        "{admitted} admitted in 2 s at 20/s"
    );
}

#[test]
fn deadlines_are_forwarded_and_a_spent_one_is_answered() {
    let sets = r#""policy_sets": {"api": {"deadline": {"offset": "2ms"}}},
        "default_policy_set": "api""#;
    let mut host = host(NGX, 1, sets);
    let headers = [GET.as_slice(), &[("grpc-timeout", "250m")]].concat();
    let (id, action) = open(&mut host, 0, &headers);
    assert_eq!(action, Action::Continue);
    let budget = host
        .stream(id)
        .unwrap()
        .request_header("x-envoy-upstream-rq-timeout-ms")
        .unwrap();
    assert_eq!(budget, "248");
    respond(&mut host, id);
    let spent = [GET.as_slice(), &[("grpc-timeout", "0m")]].concat();
    let (id, action) = open(&mut host, 0, &spent);
    assert_eq!(action, Action::Closed);
    assert_eq!(
        host.stream(id)
            .unwrap()
            .local_response()
            .unwrap()
            .status_code,
        504
    );
    assert_eq!(counter(&host, "deadline_expired_on_arrival"), 1);
}

#[test]
fn a_configuration_replaced_on_its_root_never_sets_a_second_tick_period() {
    // ngx_wasm_module configures a root once, but a host that configures one again must not
    // make ballast set a non-zero period over another (ngx traps on that).
    let budget = r#""policy_sets": {"api": {"retry_budget": {}}}, "default_policy_set": "api""#;
    let limit = r#""policy_sets": {"api": {"concurrency": {"algorithm": "fixed",
        "initial_limit": 2}}}, "default_policy_set": "api""#;
    let mut host = host(NGX, 2, budget);
    assert_eq!(
        host.tick_period(0),
        Some(Duration::from_secs(1)),
        "a budget ticks slowly"
    );
    let config = |sets: &str| format!("{{{TRUSTED}, {sets}}}");
    // Faster ticks: the slow timer is stopped first, then the fast one set.
    assert_eq!(
        host.reconfigure_in_place(config(limit)).unwrap(),
        [true, true]
    );
    assert_eq!(host.tick_period(1), Some(Duration::from_millis(10)));
    let (id, action) = open(&mut host, 1, &GET);
    assert_eq!(action, Action::Continue);
    respond(&mut host, id);
    // Slower again: the fast ticks stay (a second non-zero period would trap).
    assert_eq!(
        host.reconfigure_in_place(config(budget)).unwrap(),
        [true, true]
    );
    host.advance(Duration::from_secs(3)).unwrap();
    assert_eq!(host.tick_period(0), Some(Duration::from_millis(10)));
    let (id, action) = open(&mut host, 0, &GET);
    assert_eq!(action, Action::Continue);
    respond(&mut host, id);
}
