//! A configuration replaced while requests wait in the limiter's queue, through the real
//! plugin: none is lost (each is admitted or answered exactly once), none is counted twice
//! (in flight and queued come back to 0, every request counted once), and replaced
//! configurations leave nothing behind in shared data. Both ways a host may replace it: a new
//! root context (Envoy) and `on_configure` again on the same root (other hosts).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use ballast_mock_host::{Action, Host, StreamId};
use common::limiter::{counter, gauge, host, open, respond, started, GET, TRUSTED};
use std::time::Duration;

/// A fixed limit of `limit`, waits of up to `max_wait`.
fn limiter_config(limit: u32, max_wait: &str) -> String {
    format!(
        r#"{{{TRUSTED}, "policy_sets": {{"api": {{"concurrency": {{"algorithm": "fixed", "initial_limit": {limit}, "queue": {{"size": 10, "max_wait": "{max_wait}"}}}}}}}},
        "default_policy_set": "api"}}"#
    )
}

/// The same policy set without a limiter (only deadlines).
fn no_limiter_config() -> String {
    format!(
        r#"{{{TRUSTED}, "policy_sets": {{"api": {{"deadline": {{"default": "5s"}}}}}},
        "default_policy_set": "api"}}"#
    )
}

fn requests_total(host: &Host) -> u64 {
    host.counter("ballast_requests_total.policy_set=.=api;.;")
        .unwrap()
}

/// Whether a request went upstream (not paused, not answered by the plugin).
fn forwarded(host: &mut Host, id: StreamId) -> bool {
    let stream = host.stream(id).unwrap();
    !stream.request_paused() && stream.local_response().is_none()
}

/// Opens 2 requests per worker that hold the 4 slots and 2 per worker that wait.
fn fill(host: &mut Host) -> (Vec<StreamId>, Vec<StreamId>) {
    let mut holding = Vec::new();
    let mut waiting = Vec::new();
    for i in 0..4 {
        let (id, action) = open(host, i % 2, &GET);
        assert_eq!(action, Action::Continue);
        holding.push(id);
    }
    for i in 0..4 {
        let (id, action) = open(host, i % 2, &GET);
        assert_eq!(action, Action::Pause);
        waiting.push(id);
    }
    host.advance(Duration::from_millis(10)).unwrap();
    assert_eq!(gauge(host, "in_flight"), 4);
    assert_eq!(gauge(host, "queued"), 4);
    (holding, waiting)
}

#[test]
fn a_new_root_context_leaves_the_waiting_requests_to_the_old_one() {
    let mut host = host(2, r#"{"size": 10, "max_wait": "5s"}"#);
    let (holding, waiting) = fill(&mut host);

    assert_eq!(
        host.reconfigure(limiter_config(6, "5s")).unwrap(),
        [true, true]
    );
    for w in 0..2 {
        assert_eq!(
            host.root_contexts(w).len(),
            2,
            "the old root context stays while its streams do"
        );
    }
    // New streams belong to the new configuration: its limit of 6 counts the old holders
    // (4) and has room; the old configuration's waiters still wait under its limit of 4.
    let (newcomer, action) = open(&mut host, 0, &GET);
    assert_eq!(action, Action::Continue);
    assert_eq!(
        gauge(&host, "in_flight"),
        5,
        "one record, nothing counted twice"
    );
    let (second, action) = open(&mut host, 1, &GET);
    assert_eq!(action, Action::Continue);
    let (third, action) = open(&mut host, 0, &GET);
    assert_eq!(action, Action::Pause, "6 in flight: the new limit holds");
    respond(&mut host, second);

    // The holders finish. The old configuration admits its waiters under its own limit of 4,
    // counting everything in flight (the new configuration's 2 as well): in flight never
    // passes the larger limit, 6.
    for id in holding {
        respond(&mut host, id);
        assert!(gauge(&host, "in_flight") <= 6);
    }
    host.advance(Duration::from_millis(20)).unwrap();
    assert!(
        forwarded(&mut host, third),
        "the new configuration's waiter got a slot"
    );
    assert!(gauge(&host, "in_flight") <= 6);
    let admitted = waiting
        .iter()
        .filter(|id| forwarded(&mut host, **id))
        .count();
    assert!(
        (2..4).contains(&admitted),
        "{admitted} of the old waiters admitted"
    );
    // The new configuration's requests finish: the rest of the old waiters get their slots.
    respond(&mut host, newcomer);
    respond(&mut host, third);
    host.advance(Duration::from_millis(20)).unwrap();
    for id in &waiting {
        assert!(
            forwarded(&mut host, *id),
            "every waiter of the old configuration was admitted"
        );
    }
    assert_eq!(gauge(&host, "in_flight"), 4);
    for id in &waiting {
        respond(&mut host, *id);
    }
    host.advance(Duration::from_millis(20)).unwrap();
    assert_eq!(gauge(&host, "in_flight"), 0, "every slot came back");
    assert_eq!(gauge(&host, "queued"), 0);
    assert_eq!(requests_total(&host), 11, "each request counted once");
    assert_eq!(counter(&host, "rejected"), 0);
    for w in 0..2 {
        assert_eq!(
            host.root_contexts(w).len(),
            1,
            "the old root context was shut down with its last stream"
        );
    }
}

#[test]
fn waiting_requests_are_answered_by_the_old_configuration_when_their_wait_runs_out() {
    let mut host = host(1, r#"{"size": 10, "max_wait": "200ms"}"#);
    let mut holding = Vec::new();
    for _ in 0..4 {
        holding.push(open(&mut host, 0, &GET).0);
    }
    let (waiter, action) = open(&mut host, 0, &GET);
    assert_eq!(action, Action::Pause);
    // The new configuration has no limiter and needs no ticks; the old one still does.
    assert_eq!(host.reconfigure(no_limiter_config()).unwrap(), [true]);
    let (newcomer, action) = open(&mut host, 0, &GET);
    assert_eq!(action, Action::Continue, "no limiter any more");
    host.advance(Duration::from_millis(250)).unwrap();
    let reply = host
        .stream(waiter)
        .unwrap()
        .local_response()
        .expect("answered when its 200 ms ran out");
    assert_eq!(reply.status_code, 503);
    assert_eq!(counter(&host, "queue_timeouts"), 1);
    host.stream(waiter).unwrap().finish().unwrap();
    for id in holding.into_iter().chain([newcomer]) {
        respond(&mut host, id);
    }
    assert_eq!(gauge(&host, "in_flight"), 0);
    assert_eq!(gauge(&host, "queued"), 0);
    assert_eq!(host.root_contexts(0).len(), 1);
    assert_eq!(
        host.tick_period(0),
        None,
        "the old root's timer went with it"
    );
}

#[test]
fn configure_again_on_the_same_root_keeps_the_old_pipeline_until_its_streams_end() {
    let mut host = host(2, r#"{"size": 10, "max_wait": "5s"}"#);
    let (holding, waiting) = fill(&mut host);
    assert_eq!(
        host.reconfigure_in_place(no_limiter_config()).unwrap(),
        [true, true]
    );
    assert_eq!(
        host.root_contexts(0).len(),
        1,
        "one root context throughout"
    );
    assert_eq!(
        host.tick_period(1),
        Some(Duration::from_millis(10)),
        "the old pipeline's waiters still need ticks"
    );
    // Worker 0's holders finish: its own waiters take the slots at once.
    respond(&mut host, holding[0]);
    respond(&mut host, holding[2]);
    assert!(forwarded(&mut host, waiting[0]));
    assert!(forwarded(&mut host, waiting[2]));
    // Worker 1's waiters are woken by the replaced pipeline's tick, when worker 1's own holders
    // free their slots... and worker 0's waiters' slots free ones too.
    respond(&mut host, waiting[0]);
    respond(&mut host, waiting[2]);
    host.advance(Duration::from_millis(20)).unwrap();
    assert!(forwarded(&mut host, waiting[1]), "resumed from on_tick");
    assert!(forwarded(&mut host, waiting[3]));
    for id in [holding[1], holding[3], waiting[1], waiting[3]] {
        respond(&mut host, id);
    }
    host.advance(Duration::from_millis(20)).unwrap();
    assert_eq!(gauge(&host, "in_flight"), 0);
    assert_eq!(gauge(&host, "queued"), 0);
    assert_eq!(
        host.tick_period(0),
        None,
        "the replaced pipeline closed; the new one needs no ticks"
    );
    assert!(host.logged("configuration replaced"));
}

#[test]
fn replaced_configurations_leave_nothing_in_shared_data() {
    let mut host = host(2, r#"{"size": 10, "max_wait": "5s"}"#);
    let mut sizes = Vec::new();
    for round in 0..40 {
        // Each configuration serves a request on each worker, one of which waits.
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(open(&mut host, i % 2, &GET).0);
        }
        let limit = 4 + (round % 3);
        let accepted = host.reconfigure(limiter_config(limit, "5s")).unwrap();
        assert_eq!(accepted, [true, true], "round {round}");
        for id in ids {
            respond(&mut host, id);
        }
        host.advance(Duration::from_millis(20)).unwrap();
        for w in 0..2 {
            assert_eq!(host.root_contexts(w).len(), 1, "round {round}");
        }
        sizes.push(host.shared_data_size());
    }
    assert_eq!(gauge(&host, "in_flight"), 0);
    assert_eq!(gauge(&host, "queued"), 0);
    let first = sizes[0];
    assert!(
        sizes.iter().all(|s| *s == first),
        "shared data stays {first:?} however many configurations came and went: {sizes:?}"
    );
}

#[test]
fn a_refused_configuration_keeps_the_old_one_serving() {
    let mut host = started(1, &limiter_config(4, "5s"));
    let mut holding = Vec::new();
    for _ in 0..4 {
        holding.push(open(&mut host, 0, &GET).0);
    }
    let (waiter, _) = open(&mut host, 0, &GET);
    let bad =
        r#"{"policy_sets": {"api": {"concurrency": {"algorithm": "fixed", "initial_limit": -1}}}}"#;
    assert_eq!(host.reconfigure(bad).unwrap(), [false]);
    assert!(
        host.logged("policy_sets.api.concurrency"),
        "{:?}",
        host.logs()
    );
    assert_eq!(host.root_contexts(0).len(), 1);
    assert_eq!(host.reconfigure_in_place(bad).unwrap(), [false]);
    respond(&mut host, holding[0]);
    assert!(
        forwarded(&mut host, waiter),
        "the old limiter still hands over"
    );
    let (next, action) = open(&mut host, 0, &GET);
    assert_eq!(action, Action::Pause, "the limit of 4 still applies");
    for id in holding.into_iter().skip(1).chain([waiter]) {
        respond(&mut host, id);
    }
    assert!(forwarded(&mut host, next));
    respond(&mut host, next);
    assert_eq!(gauge(&host, "in_flight"), 0);
}
