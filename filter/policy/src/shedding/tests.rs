//! The shedding stage's parts against their definitions: exact counts over injected time.

use super::classify::{ClassSource, Ignored};
use super::level::{AdmissionLevel, Pressure};
use super::rate::{ClassRateLimit, RateDecision};
use super::stage::SheddingPolicy;
use super::throttle::{is_refusal, ClassWindow};
use super::*;
use crate::config::Config;
use crate::duration::{MILLISECOND, SECOND};
use crate::env::Env;
use crate::metrics::{ClassMetric, Metric, Recorded, ShedReason};
use crate::store::{MemoryStore, SharedStore};
use crate::test_support::test;

fn throttle(k: f64, min_rps: f64, max_p: f64) -> ThrottleParams {
    ThrottleParams {
        k,
        window: 10 * SECOND,
        min_rps,
        max_reject_probability: max_p,
    }
}

#[test]
fn throttling_follows_the_sre_formula() {
    let params = throttle(2.0, 0.0, 1.0);
    let mut window = ClassWindow::new(0);
    // 100 answered, 30 accepted: p = (100 - 2 × 30) / 101.
    for i in 0..100 {
        window.answered(&params, i >= 30, MILLISECOND);
    }
    let p = window.probability(&params, 2 * MILLISECOND);
    assert!((p - 40.0 / 101.0).abs() < 1e-12, "{p}");
    // Accepting at least half of what is sent (K = 2) throttles nothing.
    let mut healthy = ClassWindow::new(0);
    for i in 0..100 {
        healthy.answered(&params, i % 2 == 1, MILLISECOND);
    }
    assert_eq!(healthy.probability(&params, 2 * MILLISECOND), 0.0);
}

#[test]
fn throttling_rejects_exactly_its_fraction_capped_and_only_above_min_rps() {
    let params = throttle(2.0, 0.0, 0.5);
    let mut window = ClassWindow::new(0);
    for _ in 0..1000 {
        window.answered(&params, true, MILLISECOND);
    }
    // p would be ~1.0, capped at 0.5: every other request.
    let throttled = (0..100)
        .filter(|_| window.throttles(&params, 2 * MILLISECOND))
        .count();
    assert_eq!(throttled, 50);
    // 10 refused answers over a 10 s window is 1 rps: below min_rps 5 nothing is throttled.
    let quiet = throttle(2.0, 5.0, 1.0);
    let mut few = ClassWindow::new(0);
    for _ in 0..10 {
        few.answered(&quiet, true, MILLISECOND);
    }
    assert_eq!(few.probability(&quiet, 2 * MILLISECOND), 0.0);
}

#[test]
fn throttling_forgets_outside_its_window() {
    let params = throttle(2.0, 0.0, 1.0);
    let mut window = ClassWindow::new(0);
    for _ in 0..100 {
        window.answered(&params, true, 0);
    }
    assert!(window.probability(&params, SECOND) > 0.9);
    // 11 s later every bucket has been replaced.
    assert_eq!(window.probability(&params, 11 * SECOND), 0.0);
    // A clock that steps back neither panics nor throttles on stale counts.
    assert_eq!(window.probability(&params, 5 * SECOND), 0.0);
}

#[test]
fn refusals_for_the_throttle_are_overload_answers_only() {
    assert!(is_refusal(503, None));
    assert!(is_refusal(429, None));
    assert!(is_refusal(200, Some("14")));
    assert!(is_refusal(200, Some("8")));
    assert!(!is_refusal(200, Some("0")));
    assert!(!is_refusal(500, None));
    assert!(!is_refusal(504, None));
}

fn admission() -> AdmissionParams {
    AdmissionParams {
        target_queue_wait: 10 * MILLISECOND,
        interval: 100 * MILLISECOND,
        step: 0.5,
    }
}

#[test]
fn the_admission_level_sheds_from_the_least_important_rank_and_recovers() {
    let overload = Pressure {
        waiters: 10,
        waited: 10 * 20 * MILLISECOND,
        refused: 0,
    };
    let mut level = AdmissionLevel::new(admission(), 6, 0);
    assert_eq!(level.level(), 6.0);
    assert!(
        !level.observe(overload, 50 * MILLISECOND),
        "not an interval yet"
    );
    let mut t = 0;
    for expected in [5.5, 5.0, 4.5, 4.0] {
        t += 100 * MILLISECOND;
        assert!(level.observe(overload, t));
        assert_eq!(level.level(), expected);
    }
    // At 4.0 ranks 0..=3 pass, 4 and 5 are shed.
    assert!((0..4).all(|rank| level.admits(rank)));
    assert!(!level.admits(4) && !level.admits(5));
    // It never sheds rank 0.
    for _ in 0..20 {
        t += 100 * MILLISECOND;
        level.observe(overload, t);
    }
    assert_eq!(level.level(), 1.0);
    assert!((0..100).all(|_| level.admits(0)));
    assert!(!level.admits(1));
    // A quiet queue brings it back, one step per interval, up to every rank.
    let mut steps = 0;
    while level.level() < 6.0 {
        t += 100 * MILLISECOND;
        level.observe(Pressure::default(), t);
        steps += 1;
    }
    assert_eq!(steps, 10);
}

#[test]
fn the_boundary_rank_passes_exactly_its_fraction() {
    let mut level = AdmissionLevel::new(admission(), 6, 0);
    let refused = Pressure {
        waiters: 1,
        waited: 50 * MILLISECOND,
        refused: 1,
    };
    // 6 → 3.5 in five overloaded intervals.
    for i in 1..=5 {
        level.observe(refused, i * 100 * MILLISECOND);
    }
    assert_eq!(level.level(), 3.5);
    assert!(!level.sheds(2), "ranks above the boundary are not shed");
    assert!(
        level.sheds(3) && level.sheds(4),
        "the boundary rank and below are"
    );
    let passed = (0..1000).filter(|_| level.admits(3)).count();
    assert_eq!(passed, 500);
    // Short waits below the target are not overload.
    let short = Pressure {
        waiters: 4,
        waited: 4 * 5 * MILLISECOND,
        refused: 0,
    };
    assert!(!short.overloaded(&admission()));
}

fn limit(per_second: f64, burst: u32, scope: RateScope) -> ClassRateLimit {
    let params = RateLimitParams {
        per_second,
        burst,
        scope,
    };
    ClassRateLimit::new(&params, "ballast.test.ratelimit.v1.api.low".to_string()).unwrap()
}

fn admitted_over(limit: &ClassRateLimit, store: &MemoryStore, every: Nanos, until: Nanos) -> u32 {
    let mut admitted = 0;
    let mut t = SECOND;
    while t < SECOND + until {
        if limit.check(store, t) == RateDecision::Allowed {
            admitted += 1;
        }
        t += every;
    }
    admitted
}

#[test]
fn a_rate_limit_admits_exactly_its_rate_plus_burst_over_injected_time() {
    let store = MemoryStore::new();
    for scope in [RateScope::Worker, RateScope::Shared] {
        // 100/s with a burst of 5, offered 1000/s for 10 s: 1000 + the burst (the first 5).
        let rate = limit(100.0, 5, scope);
        let admitted = admitted_over(&rate, &store, MILLISECOND, 10 * SECOND);
        assert!((1000..=1005).contains(&admitted), "{scope:?}: {admitted}");
    }
}

#[test]
fn a_refusal_says_when_the_limit_has_room_again() {
    let store = MemoryStore::new();
    let rate = limit(10.0, 1, RateScope::Worker);
    assert_eq!(rate.check(&store, SECOND), RateDecision::Allowed);
    assert_eq!(
        rate.check(&store, SECOND + 40 * MILLISECOND),
        RateDecision::Limited(60 * MILLISECOND)
    );
    assert_eq!(
        rate.check(&store, SECOND + 100 * MILLISECOND),
        RateDecision::Allowed
    );
}

#[test]
fn a_shared_limit_holds_across_workers_and_survives_lost_races_and_foreign_bytes() {
    let store = MemoryStore::new();
    let one = limit(100.0, 1, RateScope::Shared);
    let two = limit(100.0, 1, RateScope::Shared);
    store.set(one.key(), b"not a tat", None).unwrap();
    let mut admitted = 0;
    let mut t = SECOND;
    // Two workers alternate, each offered 500/s, for 10 s: together still 100/s.
    while t < 11 * SECOND {
        if t.is_multiple_of(20 * MILLISECOND) {
            store.lose_next_races(3);
        }
        for worker in [&one, &two] {
            if worker.check(&store, t) == RateDecision::Allowed {
                admitted += 1;
            }
        }
        t += 2 * MILLISECOND;
    }
    assert!((999..=1001).contains(&admitted), "{admitted}");
    // A store that loses every race lets the request through, as contended.
    store.lose_next_races(100);
    assert_eq!(one.check(&store, 20 * SECOND), RateDecision::Contended);
}

fn shedding_config(json: &str) -> (Config, SheddingConfig) {
    let config = Config::from_json(json.as_bytes()).unwrap();
    let shedding = config.policy_sets[0].shedding.clone().unwrap();
    (config, shedding)
}

const MIX: &str = r#"{
  "priority": { "classes": ["critical", "normal", "sheddable"], "header": "x-priority",
                "values": { "0-7": "critical", "8-23": "normal", "24-31": "sheddable", "vip": "critical" } },
  "policy_sets": { "api": { "shedding": {
      "rate_limits": { "sheddable": { "per_second": 10, "burst": 1, "scope": "worker" } } } } },
  "routes": [ { "match": { "path": { "prefix": "/admin" } }, "policy_set": "api", "priority": "critical" } ],
  "default_policy_set": "api"
}"#;

#[test]
fn classes_come_from_trusted_headers_values_ranges_routes_and_the_default() {
    let (config, _) = shedding_config(MIX);
    let p = &config.priority;
    let class = |header: Option<&str>, trusted: bool, route: Option<usize>| {
        let found = p.classify_request(header, || trusted, route.map(PriorityId));
        (found.class.0, found.source, found.ignored)
    };
    assert_eq!(
        class(Some("normal"), true, None),
        (1, ClassSource::Header, None)
    );
    assert_eq!(
        class(Some(" 3 "), true, None),
        (0, ClassSource::Header, None)
    );
    assert_eq!(
        class(Some("23"), true, None),
        (1, ClassSource::Header, None)
    );
    assert_eq!(
        class(Some("31"), true, None),
        (2, ClassSource::Header, None)
    );
    assert_eq!(
        class(Some("vip"), true, None),
        (0, ClassSource::Header, None)
    );
    let unknown = Some(Ignored::Unknown);
    assert_eq!(
        class(Some("32"), true, None),
        (2, ClassSource::Default, unknown)
    );
    assert_eq!(
        class(Some("-1"), true, None),
        (2, ClassSource::Default, unknown)
    );
    let spoofed = Some(Ignored::Untrusted);
    assert_eq!(
        class(Some("critical"), false, None),
        (2, ClassSource::Default, spoofed)
    );
    assert_eq!(class(None, false, Some(0)), (0, ClassSource::Route, None));
    assert_eq!(
        class(Some("critical"), false, Some(1)),
        (1, ClassSource::Route, spoofed)
    );
    assert_eq!(
        class(Some("sheddable"), true, Some(0)),
        (2, ClassSource::Header, None)
    );
}

#[test]
fn the_stage_refuses_with_reason_status_retry_after_and_counts_per_class() {
    let (config, shedding) = shedding_config(MIX);
    let store = MemoryStore::new();
    let metrics = Recorded::default();
    let env = Env {
        store: &store,
        metrics: &metrics,
    };
    let policy = SheddingPolicy::new(shedding, &config.priority.classes, "ballast.t", "api", 0);
    let low = Rank {
        class: PriorityId(2),
        retry: false,
    };
    assert!(policy.arrive(env, low, || false, SECOND).is_ok());
    let refused = policy.arrive(env, low, || true, SECOND + 30 * MILLISECOND);
    let reply = refused.unwrap_err();
    assert_eq!(
        (reply.status, reply.grpc, reply.grpc_status.code()),
        (429, true, 8)
    );
    assert!(reply
        .headers
        .contains(&("x-ballast-rejected", "rate-limited".to_string())));
    assert!(reply.headers.contains(&("retry-after", "1".to_string())));
    let critical = Rank {
        class: PriorityId(0),
        retry: false,
    };
    for _ in 0..5 {
        assert!(policy.arrive(env, critical, || false, SECOND).is_ok());
    }
    assert_eq!(metrics.class(ClassMetric::Admitted, 0), 5);
    assert_eq!(metrics.class(ClassMetric::Admitted, 2), 1);
    assert_eq!(
        metrics.class(ClassMetric::Shed(ShedReason::RateLimited), 2),
        1
    );
    // The level moves with the limiter's pressure; its gauge is in hundredths of a rank.
    let refusing = Pressure {
        waiters: 1,
        waited: 50 * MILLISECOND,
        refused: 1,
    };
    policy.observe(env, refusing, SECOND);
    assert_eq!(policy.level(), Some(5.9));
    assert_eq!(metrics.get(Metric::SheddingAdmissionLevel), 590);
    let shed = policy
        .arrive(
            env,
            Rank {
                class: PriorityId(2),
                retry: true,
            },
            || false,
            2 * SECOND,
        )
        .unwrap_err();
    assert_eq!(shed.status, 503);
    assert!(shed
        .headers
        .contains(&("x-ballast-rejected", "shed".to_string())));
    assert_eq!(
        metrics.class(ClassMetric::Shed(ShedReason::AdmissionLevel), 2),
        1
    );
}

#[test]
fn ranks_order_retries_after_first_attempts_of_their_class() {
    let rank = |class, retry| Rank {
        class: PriorityId(class),
        retry,
    };
    assert_eq!(rank(0, false).index(), 0);
    assert_eq!(rank(0, true).index(), 1);
    assert_eq!(rank(1, false).index(), 2);
    assert!(rank(0, true) < rank(1, false));
    assert_eq!(Rank::count(3), 6);
}
