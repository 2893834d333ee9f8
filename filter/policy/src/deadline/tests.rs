//! The deadline read from each input, and the stage's decisions, with injected time.

use super::stage::{Arrival, DeadlinePolicy, ResponseFacts};
use super::*;
use crate::env::Env;
use crate::metrics::{Metric, Recorded};
use crate::store::MemoryStore;
use crate::test_support::test;

/// 2026-12-02 00:00:00 UTC, as the host's clock would give it.
const NOW: Nanos = 1_764_633_600 * SECOND;

fn hints(pairs: &[(Source, &str)]) -> Hints {
    let mut hints = Hints::default();
    for (source, value) in pairs {
        let slot = match source {
            Source::GrpcTimeout => &mut hints.grpc_timeout,
            Source::EnvoyExpected => &mut hints.envoy_expected,
            Source::EnvoyUpstream => &mut hints.envoy_upstream,
            Source::Absolute => &mut hints.absolute,
            Source::Default => continue,
        };
        *slot = Some((*value).to_string());
    }
    hints
}

/// Arrived and read at the same moment.
fn at(now: Nanos) -> impl FnOnce() -> Arrived {
    move || Arrived { at: now, now }
}

fn trusting() -> DeadlineConfig {
    DeadlineConfig {
        believe_untrusted_peers: true,
        ..DeadlineConfig::default()
    }
}

fn epoch_ms(at: Nanos) -> String {
    (at / MILLISECOND).to_string()
}

#[test]
fn the_earliest_input_wins_whatever_its_form() {
    let config = trusting();
    let absolute = epoch_ms(NOW + 40 * MILLISECOND);
    let all = hints(&[
        (Source::GrpcTimeout, "2S"),
        (Source::EnvoyExpected, "500"),
        (Source::EnvoyUpstream, "300"),
        (Source::Absolute, &absolute),
    ]);
    let reading = read(&config, &all, at(NOW), || {
        unreachable!("trust is not asked")
    });
    assert_eq!(
        reading.deadline,
        Some(Deadline {
            at: NOW + 40 * MILLISECOND,
            source: Source::Absolute
        })
    );
    for source in Source::HEADERS {
        assert!(reading.seen.contains(source), "{source:?} counted as seen");
    }
    type Case<'a> = (&'a [(Source, &'a str)], Nanos, Source);
    let cases: [Case<'_>; 4] = [
        (
            &[(Source::GrpcTimeout, "20m"), (Source::EnvoyExpected, "30")],
            20,
            Source::GrpcTimeout,
        ),
        (
            &[(Source::GrpcTimeout, "20m"), (Source::EnvoyExpected, "15")],
            15,
            Source::EnvoyExpected,
        ),
        (
            &[(Source::EnvoyExpected, "15"), (Source::EnvoyUpstream, "9")],
            9,
            Source::EnvoyUpstream,
        ),
        (
            &[(Source::GrpcTimeout, "250000u")],
            250,
            Source::GrpcTimeout,
        ),
    ];
    for (pairs, ms, source) in cases {
        let reading = read(&config, &hints(pairs), at(NOW), || true);
        assert_eq!(
            reading.deadline,
            Some(Deadline {
                at: NOW + ms * MILLISECOND,
                source
            }),
            "{pairs:?}"
        );
    }
}

#[test]
fn malformed_inputs_are_counted_and_the_others_still_count() {
    let config = trusting();
    let reading = read(
        &config,
        &hints(&[
            (Source::GrpcTimeout, "soon"),
            (Source::EnvoyExpected, "-1"),
            (Source::EnvoyUpstream, "80"),
            (Source::Absolute, "yesterday"),
        ]),
        at(NOW),
        || true,
    );
    assert_eq!(reading.deadline.map(|d| d.at), Some(NOW + 80 * MILLISECOND));
    for source in [Source::GrpcTimeout, Source::EnvoyExpected, Source::Absolute] {
        assert!(reading.malformed.contains(source), "{source:?}");
    }
    assert!(!reading.malformed.contains(Source::EnvoyUpstream));
    // Envoy's 0 is "no timeout": neither a deadline nor malformed.
    let reading = read(
        &config,
        &hints(&[(Source::EnvoyUpstream, "0")]),
        at(NOW),
        || true,
    );
    assert_eq!(reading.deadline, None);
    assert!(reading.malformed.is_empty());
}

#[test]
fn default_applies_only_without_a_deadline_and_max_caps_every_source() {
    let config = DeadlineConfig {
        default: Some(100 * MILLISECOND),
        max: Some(SECOND),
        ..trusting()
    };
    let none = read(&config, &Hints::default(), at(NOW), || true);
    assert_eq!(
        none.deadline,
        Some(Deadline {
            at: NOW + 100 * MILLISECOND,
            source: Source::Default
        })
    );
    let longer = read(
        &config,
        &hints(&[(Source::GrpcTimeout, "500m")]),
        at(NOW),
        || true,
    );
    assert_eq!(
        longer.deadline.map(|d| d.at),
        Some(NOW + 500 * MILLISECOND),
        "a stated deadline beats the default, even a longer one"
    );
    assert!(!longer.capped);
    let far = epoch_ms(NOW + 3_600 * SECOND);
    for pairs in [
        vec![(Source::GrpcTimeout, "1H")],
        vec![(Source::EnvoyExpected, "99999999")],
        vec![(Source::Absolute, far.as_str())],
    ] {
        let reading = read(&config, &hints(&pairs), at(NOW), || true);
        assert_eq!(
            reading.deadline.map(|d| d.at),
            Some(NOW + SECOND),
            "{pairs:?}"
        );
        assert!(reading.capped, "{pairs:?}");
    }
}

#[test]
fn an_absolute_deadline_far_in_the_past_is_a_wrong_clock() {
    let config = DeadlineConfig {
        max_clock_skew: 2 * SECOND,
        ..trusting()
    };
    let late = epoch_ms(NOW - SECOND);
    let reading = read(
        &config,
        &hints(&[(Source::Absolute, &late)]),
        at(NOW),
        || true,
    );
    assert_eq!(
        reading.deadline.map(|d| d.at),
        Some(NOW - SECOND),
        "a second late is believed: the request is late"
    );
    let skewed = epoch_ms(NOW - 3 * SECOND);
    let reading = read(
        &config,
        &hints(&[(Source::Absolute, &skewed), (Source::GrpcTimeout, "50m")]),
        at(NOW),
        || true,
    );
    assert!(reading.skew_rejected);
    assert_eq!(
        reading.deadline,
        Some(Deadline {
            at: NOW + 50 * MILLISECOND,
            source: Source::GrpcTimeout
        }),
        "the relative header still counts"
    );
    // Seconds instead of milliseconds: 1970, ignored rather than failing every request.
    let seconds = (NOW / SECOND).to_string();
    let reading = read(
        &config,
        &hints(&[(Source::Absolute, &seconds)]),
        at(NOW),
        || true,
    );
    assert!(reading.skew_rejected && reading.deadline.is_none());
}

#[test]
fn relative_hints_count_from_the_arrival_at_this_proxy() {
    let config = DeadlineConfig {
        max: Some(SECOND),
        ..trusting()
    };
    let sent = hints(&[(Source::GrpcTimeout, "50m")]);
    // Ballast reads it 30 ms after the proxy received it (filters before it took that long).
    let arrived = || Arrived {
        at: NOW - 30 * MILLISECOND,
        now: NOW,
    };
    let reading = read(&config, &sent, arrived, || true);
    assert_eq!(reading.deadline.map(|d| d.at), Some(NOW + 20 * MILLISECOND));
    let late = || Arrived {
        at: NOW + SECOND,
        now: NOW,
    };
    assert_eq!(
        read(&config, &sent, late, || true).deadline.map(|d| d.at),
        Some(NOW + 50 * MILLISECOND),
        "an arrival after now is taken as now"
    );
    let mut asked = false;
    let arrived = || {
        asked = true;
        Arrived { at: NOW, now: NOW }
    };
    let untouched = read(&config, &Hints::default(), arrived, || true);
    assert!(untouched.deadline.is_none());
    assert!(!asked, "no hint, no default: nothing to compute");
}

#[test]
fn hints_from_untrusted_peers_are_ignored_unless_configured() {
    let config = DeadlineConfig {
        default: Some(SECOND),
        ..DeadlineConfig::default()
    };
    let short = hints(&[(Source::GrpcTimeout, "10m")]);
    let reading = read(&config, &short, at(NOW), || false);
    assert!(reading.untrusted);
    assert_eq!(
        reading.deadline.map(|d| d.source),
        Some(Source::Default),
        "the policy's own default still applies"
    );
    assert!(read(&config, &short, at(NOW), || true)
        .deadline
        .is_some_and(|d| d.source == Source::GrpcTimeout));
    let mut asked = false;
    let reading = read(&config, &Hints::default(), at(NOW), || {
        asked = true;
        true
    });
    assert!(!asked, "no hint: the peer is not looked up");
    assert!(!reading.untrusted);
}

fn policy(config: DeadlineConfig) -> (DeadlinePolicy, MemoryStore, Recorded) {
    (
        DeadlinePolicy::new(config),
        MemoryStore::default(),
        Recorded::default(),
    )
}

#[test]
fn budget_is_the_deadline_less_time_spent_less_the_offset() {
    let (policy, store, metrics) = policy(DeadlineConfig {
        offset: 2 * MILLISECOND,
        min_useful: 5 * MILLISECOND,
        ..trusting()
    });
    let env = Env {
        store: &store,
        metrics: &metrics,
    };
    let deadline = Deadline {
        at: NOW + 50 * MILLISECOND,
        source: Source::GrpcTimeout,
    };
    assert_eq!(policy.budget(deadline, NOW), 48 * MILLISECOND);
    assert_eq!(
        policy.budget(deadline, NOW + 30 * MILLISECOND),
        18 * MILLISECOND
    );
    assert_eq!(
        policy.budget(deadline, NOW + 60 * MILLISECOND),
        0,
        "saturates"
    );
    assert_eq!(policy.forward_by(deadline), NOW + 43 * MILLISECOND);
    let reading = read(
        policy.config(),
        &hints(&[(Source::GrpcTimeout, "50m")]),
        at(NOW),
        || true,
    );
    let Arrival::Go(forwarding) = policy.arrive(env, &reading, || true, NOW) else {
        panic!("50 ms left is plenty");
    };
    // Forwarded 30 ms later (it waited): 18 ms left, in every form.
    let edits = policy.forward(env, &forwarding, NOW + 30 * MILLISECOND + 400_000);
    let value = |name: &str| {
        edits
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.clone())
    };
    assert_eq!(
        value("x-envoy-upstream-rq-timeout-ms").as_deref(),
        Some("17"),
        "rounded down"
    );
    assert_eq!(
        value("x-envoy-expected-rq-timeout-ms").as_deref(),
        Some("17")
    );
    assert_eq!(value("grpc-timeout").as_deref(), Some("17600000n"));
    assert_eq!(
        value("x-ballast-deadline"),
        Some(epoch_ms(NOW + 48 * MILLISECOND)),
        "the deadline less the offset"
    );
    assert_eq!(metrics.samples(Metric::DeadlineForwardedBudgetMs), vec![17]);
    assert_eq!(metrics.get(Metric::DeadlineSeenGrpcTimeout), 1);
}

#[test]
fn spent_or_nearly_spent_deadlines_are_answered_at_once() {
    let (policy, store, metrics) = policy(DeadlineConfig {
        min_useful: 5 * MILLISECOND,
        offset: MILLISECOND,
        ..trusting()
    });
    let env = Env {
        store: &store,
        metrics: &metrics,
    };
    for (timeout, grpc, answered) in [
        ("0m", false, true),
        ("5m", true, true),   // 4 ms after the offset: under min_useful
        ("6m", false, false), // exactly min_useful
    ] {
        let reading = read(
            policy.config(),
            &hints(&[(Source::GrpcTimeout, timeout)]),
            at(NOW),
            || true,
        );
        match policy.arrive(env, &reading, || grpc, NOW) {
            Arrival::Reply(reply) => {
                assert!(answered, "{timeout}");
                assert_eq!((reply.status, reply.grpc), (504, grpc));
                assert!(reply.is_deadline());
                assert_eq!(
                    reply.headers,
                    vec![("x-ballast-rejected", "deadline".to_string())]
                );
            }
            Arrival::Go(_) => assert!(!answered, "{timeout}"),
        }
    }
    assert_eq!(metrics.get(Metric::DeadlineExpiredOnArrival), 2);
}

#[test]
fn malformed_headers_are_rejected_when_configured() {
    let (policy, store, metrics) = policy(DeadlineConfig {
        malformed: Malformed::Reject,
        ..trusting()
    });
    let env = Env {
        store: &store,
        metrics: &metrics,
    };
    let reading = read(
        policy.config(),
        &hints(&[(Source::GrpcTimeout, "5x")]),
        at(NOW),
        || true,
    );
    let Arrival::Reply(reply) = policy.arrive(env, &reading, || true, NOW) else {
        panic!("malformed: reject");
    };
    assert_eq!(reply.status, 400);
    assert_eq!(reply.grpc_status.code(), 3);
    assert_eq!(metrics.get(Metric::DeadlineMalformed), 1);
}

#[test]
fn unbelieved_hints_are_removed_and_a_default_overwrites_them() {
    let (policy, store, metrics) = policy(DeadlineConfig::default());
    let env = Env {
        store: &store,
        metrics: &metrics,
    };
    let sent = hints(&[(Source::GrpcTimeout, "10m"), (Source::Absolute, "1")]);
    let reading = read(policy.config(), &sent, at(NOW), || false);
    let Arrival::Go(forwarding) = policy.arrive(
        env,
        &reading,
        || unreachable!("no deadline: gRPC is not looked up"),
        NOW,
    ) else {
        panic!("not believed, so not expired");
    };
    let mut removed: Vec<String> = policy
        .forward(env, &forwarding, NOW)
        .into_iter()
        .map(|(name, value)| {
            assert_eq!(value, None);
            name.into_owned()
        })
        .collect();
    removed.sort();
    assert_eq!(removed, ["grpc-timeout", "x-ballast-deadline"]);
    assert_eq!(metrics.get(Metric::DeadlineUntrustedIgnored), 1);
    let (policy, _, _) = self::policy(DeadlineConfig {
        default: Some(SECOND),
        ..DeadlineConfig::default()
    });
    let reading = read(policy.config(), &sent, at(NOW), || false);
    let Arrival::Go(forwarding) = policy.arrive(env, &reading, || false, NOW) else {
        panic!("default of a second");
    };
    let edits = policy.forward(env, &forwarding, NOW);
    assert!(edits.iter().all(|(_, value)| value.is_some()), "{edits:?}");
    assert!(
        edits.iter().any(|(name, v)| name == "grpc-timeout" && v.as_deref() == Some("999000u")),
        "the request carried grpc-timeout, so it is rewritten even though it is not gRPC: {edits:?}"
    );
}

#[test]
fn the_routers_timeout_of_a_grpc_request_becomes_deadline_exceeded() {
    let (policy, store, metrics) = policy(trusting());
    let env = Env {
        store: &store,
        metrics: &metrics,
    };
    let deadline = Deadline {
        at: NOW + 100 * MILLISECOND,
        source: Source::GrpcTimeout,
    };
    // The budget ends at 100 - 1 (offset) - 1 (rounding) ms; timers may fire up to 10 ms early.
    assert!(!policy.budget_spent(deadline, NOW + 87 * MILLISECOND));
    assert!(policy.budget_spent(deadline, NOW + 88 * MILLISECOND));
    let unavailable = ResponseFacts {
        grpc: true,
        status: 200,
        grpc_status: Some("14"),
    };
    let edits = policy.on_response(env, unavailable);
    assert_eq!(
        edits.first(),
        Some(&("grpc-status".to_string(), "4".to_string()))
    );
    let http = ResponseFacts {
        grpc: false,
        status: 504,
        grpc_status: None,
    };
    assert!(
        policy.on_response(env, http).is_empty(),
        "HTTP keeps the router's 504"
    );
    let served = ResponseFacts {
        grpc: true,
        status: 200,
        grpc_status: None,
    };
    assert!(policy.on_response(env, served).is_empty());
    assert_eq!(metrics.get(Metric::DeadlineUpstreamTimeouts), 2);
}
