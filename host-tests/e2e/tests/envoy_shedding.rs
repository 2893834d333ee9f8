//! Priority load shedding in real Envoy 1.40 (`--concurrency 2`), side by side with Envoy's
//! native `admission_control` and `adaptive_concurrency` filters on the same load.
//!
//! The demo upstream serves C = 10 requests at a time (50–60 ms each, about 180 req/s at best)
//! and queues the rest without bound. Each proxy, started cold, gets 60 unloaded requests one
//! at a time (the unloaded p99), then 3×C for 15 s in the 20/50/30 mix (critical, normal,
//! sheddable in `x-priority`): ballast with `concurrency {}` and `shedding {}` keeps critical
//! success ≥ 99.5 % and goodput ≥ 0.95 C over the whole spike (C as the upstream delivered it
//! during the run, from its busy slot time; ≥ 0.9 of the nominal C besides), and critical p99
//! over the whole spike, cold start included, ≤ 2.5× unloaded (measured 1.78–1.93×; the bound
//! leaves room for a loaded CI machine).
//! The native filters' numbers are printed beside (run with `--nocapture`). Further: a shared
//! per-class rate limit holds to ±5 % over 10 s across both workers, a priority from an
//! untrusted peer gets the default class upstream, and a dry run changes no response.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use ballast_demo_upstream::RunningUpstream;
use ballast_e2e::paced::{self, PacedRun, Summary};
use ballast_e2e::prometheus::sample;
use ballast_e2e::{request, Envoy, EnvoyConfig};
use std::time::{Duration, Instant};

const CAPACITY: usize = 10;
const SERVICE_MS: u64 = 50;
const JITTER_MS: u64 = 10;
const BEST_RPS: f64 = CAPACITY as f64 * 1000.0 / (SERVICE_MS as f64 + JITTER_MS as f64 / 2.0);
const THREADS: usize = 400;
const SPIKE: Duration = Duration::from_secs(15);
const CLASSES: [&str; 3] = ["critical", "normal", "sheddable"];
/// The tests here run one at a time: each one's load would be the others' noise.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
const PRIORITY: &str = r#""priority": {"classes": ["critical", "normal", "sheddable"],
    "default": "normal", "header": "x-priority"}"#;

fn upstream(capacity: usize, service_ms: u64, jitter_ms: u64) -> RunningUpstream {
    ballast_e2e::upstreams::limited(capacity, service_ms, jitter_ms).unwrap()
}

/// Request `i` of the mix: 2 in 10 critical, 5 normal, 3 sheddable.
fn mix(i: usize) -> (usize, Vec<(String, String)>) {
    let kind = match i % 10 {
        0 | 1 => 0,
        2..=6 => 1,
        _ => 2,
    };
    (kind, vec![("x-priority".into(), CLASSES[kind].into())])
}

fn ballast(upstream: &RunningUpstream, plugin: &str) -> Envoy {
    Envoy::start(
        &EnvoyConfig::from_file("envoy-config/envoy.yaml")
            .unwrap()
            .upstream_port(upstream.addr().port())
            .plugin_json(plugin)
            .concurrency(2),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn native(upstream: &RunningUpstream, file: &str) -> Envoy {
    Envoy::start(
        &EnvoyConfig::from_file(file)
            .unwrap()
            .upstream_port(upstream.addr().port())
            .concurrency(2),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// What one proxy did with the spike.
struct Outcome {
    unloaded_p99_ms: f64,
    run: PacedRun,
    /// What the upstream served per second with every slot busy during the spike: C as this
    /// machine delivered it then (the nominal `BEST_RPS` assumes an idle machine; on a loaded
    /// 2-core CI box the client, Envoy and upstream share the cores and service stretches).
    delivered_capacity_rps: f64,
    /// The share of the upstream's slot time that was busy during the spike.
    utilisation: f64,
}

impl Outcome {
    fn class(&self, kind: usize) -> Summary {
        self.run.summary_of(kind, Duration::ZERO, SPIKE)
    }

    fn total(&self) -> Summary {
        self.run.summary(Duration::ZERO, SPIKE)
    }

    fn report(&self, name: &str) {
        let t = self.total();
        let mut line = format!(
            "{name}: unloaded p99 {:.1} ms; 3xC ({:.0} req/s) for {} s: goodput {:.1} req/s \
             ({:.2} C), {} late starts",
            self.unloaded_p99_ms,
            3.0 * BEST_RPS,
            SPIKE.as_secs(),
            t.goodput_rps,
            t.goodput_rps / BEST_RPS,
            self.run.late
        );
        line.push_str(&format!(
            "; upstream busy {:.1} %, delivered C {:.1} req/s, goodput {:.2} of it",
            100.0 * self.utilisation,
            self.delivered_capacity_rps,
            t.goodput_rps / self.delivered_capacity_rps
        ));
        for (kind, class) in CLASSES.iter().enumerate() {
            let c = self.class(kind);
            line.push_str(&format!(
                "; {class} {:.1} % ok, p99 {:.1} ms ({:.2}x unloaded)",
                100.0 * c.ok as f64 / c.sent.max(1) as f64,
                c.p99_ms,
                c.p99_ms / self.unloaded_p99_ms
            ));
        }
        println!("{line}");
        let critical_p99 = self.by_second(|from, to| self.run.summary_of(0, from, to).p99_ms);
        println!("{name}: critical p99 by second (ms): {critical_p99}");
        let goodput = self.by_second(|from, to| self.run.summary(from, to).goodput_rps);
        println!("{name}: goodput by second (req/s): {goodput}");
    }

    /// One figure per second of the spike, from the requests started in that second.
    fn by_second(&self, figure: impl Fn(Duration, Duration) -> f64) -> String {
        (0..SPIKE.as_secs())
            .map(|t| {
                format!(
                    "{:.0}",
                    figure(Duration::from_secs(t), Duration::from_secs(t + 1))
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn drive(envoy: &Envoy, up: &RunningUpstream) -> Outcome {
    let addr = envoy.listener();
    let mut unloaded: Vec<f64> = (0..60)
        .map(|_| {
            let start = Instant::now();
            let response = request(addr, "GET", "/api/items", &[], b"").unwrap();
            assert_eq!(response.status, 200, "unloaded requests succeed");
            start.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    unloaded.sort_by(f64::total_cmp);
    let unloaded_p99_ms = paced::quantile(&unloaded, 0.99);
    let before = up.stats();
    let started = Instant::now();
    let run = paced::run_mixed(addr, "/api/items", 3.0 * BEST_RPS, SPIKE, THREADS, mix);
    let elapsed = started.elapsed().as_secs_f64();
    let after = up.stats();
    let busy = after.busy_slot_seconds - before.busy_slot_seconds;
    let served = after.total.saturating_sub(before.total) as f64;
    Outcome {
        unloaded_p99_ms,
        run,
        delivered_capacity_rps: CAPACITY as f64 * served / busy.max(1e-9),
        utilisation: busy / (CAPACITY as f64 * elapsed),
    }
}

#[test]
fn critical_work_survives_a_cold_3x_spike_and_natives_are_printed_beside() {
    let _alone = alone();
    let plugin = format!(
        r#"{{{PRIORITY}, "policy_sets": {{"api": {{"concurrency": {{}}, "shedding": {{}}}}}},
            "default_policy_set": "api"}}"#
    );
    let up = upstream(CAPACITY, SERVICE_MS, JITTER_MS);
    let envoy = ballast(&up, &plugin);
    let ours = drive(&envoy, &up);
    ours.report("ballast (concurrency {} + shedding {}, 2 workers)");
    let text = envoy.prometheus().unwrap();
    for class in CLASSES {
        let shed = |reason: &str| {
            sample(
                &text,
                "ballast_class_shed",
                &[("policy_set", "api"), ("class", class), ("reason", reason)],
            )
            .unwrap_or(f64::NAN)
        };
        println!(
            "ballast {class}: admitted {}, shed by level {}, by queue {}, displaced {}",
            sample(
                &text,
                "ballast_class_admitted",
                &[("policy_set", "api"), ("class", class)]
            )
            .unwrap_or(f64::NAN),
            shed("shed"),
            shed("concurrency"),
            shed("displaced"),
        );
    }
    println!(
        "ballast: limit {}, min_rtt_us {}, level {}",
        sample(&text, "ballast_concurrency_limit", &[("policy_set", "api")]).unwrap_or(f64::NAN),
        sample(
            &text,
            "ballast_concurrency_min_rtt_us",
            &[("policy_set", "api")]
        )
        .unwrap_or(f64::NAN),
        sample(
            &text,
            "ballast_shedding_admission_level",
            &[("policy_set", "api")]
        )
        .unwrap_or(f64::NAN),
    );
    drop(envoy);
    up.stop().unwrap();

    let mut natives = Vec::new();
    for (name, file) in [
        (
            "native admission_control",
            "envoy-config/native-admission-control.yaml",
        ),
        (
            "native adaptive_concurrency",
            "envoy-config/native-adaptive-concurrency.yaml",
        ),
    ] {
        let up = upstream(CAPACITY, SERVICE_MS, JITTER_MS);
        let envoy = native(&up, file);
        let theirs = drive(&envoy, &up);
        theirs.report(&format!("{name} (2 workers)"));
        drop(envoy);
        up.stop().unwrap();
        natives.push(theirs);
    }

    let critical = ours.class(0);
    assert!(
        critical.ok as f64 >= 0.995 * critical.sent as f64,
        "critical success {}/{}: {critical:?}",
        critical.ok,
        critical.sent
    );
    // Over the whole spike, cold start included: it measured 1.66–1.73x in quiet runs (the
    // first second ~125 ms while slow start tries 17 on an upstream of 10, then ~105 ms); the
    // bound leaves room for a loaded CI machine (the 2x target belongs to `make bench`, which
    // measures it side by side). Before slow start stopped overshooting it was 2.2–3.3x.
    let settled = ours.run.summary_of(0, Duration::from_secs(2), SPIKE);
    println!(
        "ballast: critical p99 over the whole spike {:.1} ms ({:.2}x unloaded), after the \
         first 2 s {:.1} ms ({:.2}x)",
        critical.p99_ms,
        critical.p99_ms / ours.unloaded_p99_ms,
        settled.p99_ms,
        settled.p99_ms / ours.unloaded_p99_ms
    );
    assert!(
        critical.p99_ms <= 2.5 * ours.unloaded_p99_ms,
        "critical p99 over the whole spike {:.1} ms > 2.5x unloaded p99 {:.1} ms",
        critical.p99_ms,
        ours.unloaded_p99_ms
    );
    // Goodput against C as the upstream delivered it during this run (the nominal C assumes
    // an idle machine: on a loaded 2-core CI box a run measured 0.94 nominal C for ballast and
    // 0.96 for native adaptive_concurrency); the nominal figure keeps a floor.
    let total = ours.total();
    assert!(
        total.goodput_rps >= 0.95 * ours.delivered_capacity_rps.min(BEST_RPS),
        "goodput {:.1} req/s < 0.95 of the C the upstream delivered ({:.1})",
        total.goodput_rps,
        ours.delivered_capacity_rps
    );
    assert!(
        total.goodput_rps >= 0.9 * BEST_RPS,
        "goodput {:.1} req/s < 0.9 nominal C ({BEST_RPS:.1})",
        total.goodput_rps,
    );
    assert_eq!(total.other, 0, "refusals are 503s, nothing else fails");
    assert!(
        ours.class(2).ok < ours.class(1).ok,
        "sheddable goes before normal"
    );
    assert_eq!(ours.run.late, 0, "the client kept up with the offered load");
    for theirs in &natives {
        assert!(theirs.total().sent > 0, "the comparison ran");
    }
}

#[test]
fn a_shared_class_rate_limit_holds_across_two_workers() {
    let _alone = alone();
    let plugin = format!(
        r#"{{{PRIORITY}, "policy_sets": {{"api": {{"shedding": {{"rate_limits":
            {{"sheddable": {{"per_second": 50, "burst": 5}}}}}}}}}}, "default_policy_set": "api"}}"#
    );
    let up = upstream(0, 1, 0);
    let envoy = ballast(&up, &plugin);
    let run = paced::run_mixed(
        envoy.listener(),
        "/api/items",
        150.0,
        Duration::from_secs(10),
        50,
        |_| (2, vec![("x-priority".into(), "sheddable".into())]),
    );
    let admitted = run
        .outcomes
        .iter()
        .filter(|o| o.status() == Some(200))
        .count();
    let limited: Vec<_> = run
        .outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().ok())
        .filter(|r| r.status == 429)
        .collect();
    println!(
        "rate limit 50/s (burst 5) shared by 2 workers, 150/s offered for 10 s: {admitted} \
         admitted, {} answered 429",
        limited.len()
    );
    assert!(
        (475..=530).contains(&admitted),
        "500 (+ the burst of 5) within 5 %: {admitted}"
    );
    assert_eq!(admitted + limited.len(), run.outcomes.len());
    assert!(limited.iter().all(|r| r.header("retry-after").is_some()
        && r.header("x-ballast-rejected") == Some("rate-limited")));
    drop(envoy);
    up.stop().unwrap();
}

#[test]
fn an_untrusted_peers_priority_gets_the_default_class_and_a_dry_run_changes_nothing() {
    let _alone = alone();
    // Loopback is not trusted here: the client's own x-priority is not believed.
    let plugin = format!(
        r#"{{{PRIORITY}, "trusted_peers": {{"source_cidrs": ["10.0.0.0/8"]}},
            "policy_sets": {{"api": {{"shedding": {{}}}}}}, "default_policy_set": "api"}}"#
    );
    let up = upstream(0, 1, 0);
    let envoy = ballast(&up, &plugin);
    let response = request(
        envoy.listener(),
        "GET",
        "/api/items",
        &[("x-priority", b"critical")],
        b"",
    )
    .unwrap();
    assert_eq!(response.status, 200);
    let echo: serde_json::Value = serde_json::from_str(&response.text()).unwrap();
    assert_eq!(
        echo["headers"]["x-priority"], "normal",
        "the upstream sees the default class: {echo}"
    );
    let text = envoy.prometheus().unwrap();
    let metric = |name: &str, labels: &[(&str, &str)]| sample(&text, name, labels);
    assert_eq!(
        metric(
            "ballast_shedding_priority_untrusted",
            &[("policy_set", "api")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            "ballast_class_admitted",
            &[("policy_set", "api"), ("class", "critical")]
        ),
        Some(0.0)
    );
    drop(envoy);
    up.stop().unwrap();

    // Dry run at 3x: ballast counts what it would shed and answers nothing itself.
    let plugin = format!(
        r#"{{{PRIORITY}, "dry_run": true, "policy_sets": {{"api": {{"concurrency": {{}},
            "shedding": {{"rate_limits": {{"sheddable": {{"per_second": 10}}}}}}}}}},
            "default_policy_set": "api"}}"#
    );
    let up = upstream(CAPACITY, SERVICE_MS, JITTER_MS);
    let envoy = ballast(&up, &plugin);
    let run = paced::run_mixed(
        envoy.listener(),
        "/api/items",
        3.0 * BEST_RPS,
        Duration::from_secs(3),
        THREADS,
        mix,
    );
    let answered: Vec<_> = run
        .outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().ok())
        .collect();
    assert!(!answered.is_empty());
    assert!(
        answered
            .iter()
            .all(|r| r.header("x-ballast-rejected").is_none() && r.status == 200),
        "a dry run answers nothing itself"
    );
    let text = envoy.prometheus().unwrap();
    let would = sample(
        &text,
        "ballast_class_shed",
        &[
            ("policy_set", "api"),
            ("class", "sheddable"),
            ("reason", "rate-limited"),
        ],
    )
    .unwrap_or(0.0);
    println!(
        "dry run: {} answered, all 200; would have rate-limited {would}",
        answered.len()
    );
    assert!(
        would > 0.0,
        "the dry run counted what it would have refused"
    );
    drop(envoy);
    up.stop().unwrap();
}
