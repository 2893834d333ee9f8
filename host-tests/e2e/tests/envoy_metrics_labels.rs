//! ballast's metrics as a Prometheus, Grafana or Istio user gets them from real Envoy 1.40 with
//! the shipped `envoy-config/envoy.yaml`: every family the plugin defines is printed, labelled
//! (`policy_set`, and `class` / `reason` where it has them), with no tag text left in a name and
//! nothing else printed; the shipped Grafana dashboard queries only what is printed; and the
//! Istio settings in `envoy-config/istio/mesh-metrics.yaml` label and keep every one of them.
//!
//! Why one Envoy for all three: the dashboard and Istio checks are only worth something against
//! the real output, and one run (about 8 s: each phase of `metrics_labels/drive.rs` moves a
//! different family) gives it to all of them. The expected families come from the code that
//! defines them (`metrics_labels/catalogue.rs`), so a metric added to the plugin without a
//! dashboard panel, or a panel querying a name that does not exist, fails here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

#[path = "metrics_labels/catalogue.rs"]
mod catalogue;
#[path = "metrics_labels/check.rs"]
mod check;
#[path = "metrics_labels/dashboard.rs"]
mod dashboard;
#[path = "metrics_labels/drive.rs"]
mod drive;
#[path = "metrics_labels/istio.rs"]
mod istio;

use ballast_e2e::prometheus::sample;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

/// The plugin's `metric_prefix` in [`drive::PLUGIN_JSON`] (the default).
pub const PREFIX: &str = "ballast";

/// What the driven Envoy printed.
pub struct Scrape {
    /// `/stats/prometheus`.
    pub prometheus: String,
    /// `/stats`: every stat by its full name, tags still in it.
    pub stats: String,
}

/// The one driven run, shared by every test here (a failure is kept and reported to each).
pub fn scrape() -> &'static Scrape {
    static RUN: OnceLock<Result<Scrape, String>> = OnceLock::new();
    let run = RUN.get_or_init(|| {
        catch_unwind(AssertUnwindSafe(drive_all)).unwrap_or_else(|payload| {
            Err(payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "the driven run panicked".into()))
        })
    });
    match run {
        Ok(scrape) => scrape,
        Err(e) => panic!("driving Envoy failed: {e}"),
    }
}

fn drive_all() -> Result<Scrape, String> {
    let upstream = ballast_e2e::upstreams::limited(0, 0, 0)?;
    let envoy = ballast_e2e::Envoy::start(&drive::config(&upstream, &[]))?;
    let addr = envoy.listener();
    drive::plain(addr);
    drive::rate_limit(addr);
    drive::retries(addr);
    drive::deadlines(addr);
    drive::queue(addr);
    // Gauges refresh on the plugin's ticks (the retry budget's every second).
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    let (prometheus, stats) = drive::scrape(&envoy)?;
    drop(envoy);
    upstream.stop().map_err(|e| e.to_string())?;
    Ok(Scrape { prometheus, stats })
}

/// The lines of ballast's families, for the README and for failure messages.
pub fn ballast_lines(text: &str) -> String {
    text.lines()
        .filter(|line| {
            let name = line.strip_prefix("# TYPE ").unwrap_or(line);
            name.starts_with(PREFIX) && name.get(PREFIX.len()..).is_some_and(|r| r.starts_with('_'))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_metric_is_labelled_and_the_families_match_the_plugin_both_ways() {
    let text = &scrape().prometheus;
    println!("{}", ballast_lines(text));
    let expected = catalogue::expected(drive::PLUGIN_JSON);
    let problems = check::problems(text, &expected, PREFIX);
    assert!(
        problems.is_empty(),
        "{} problems:\n{}\n\nballast lines:\n{}",
        problems.len(),
        problems.join("\n"),
        ballast_lines(text)
    );
    // The tag rules in envoy.yaml are the plugin's tags, no more, no fewer.
    let shipped =
        std::fs::read_to_string(ballast_e2e::paths::repo_file("envoy-config/envoy.yaml")).unwrap();
    let rules: std::collections::BTreeSet<String> = shipped
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- tag_name: "))
        .map(|tag| tag.trim().to_string())
        .collect();
    assert_eq!(rules, catalogue::plugin_tags(), "envoy.yaml's stats_tags");
}

/// A series (name without the prefix, labels) and the least value the drive leaves in it.
type AtLeast<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

/// The families are not only printed but move: each phase of the drive shows in its numbers.
#[test]
fn the_driven_outcomes_show_in_their_labelled_series() {
    let text = &scrape().prometheus;
    let api = ("policy_set", "api");
    let value = |name: &str, labels: &[(&str, &str)]| {
        sample(text, &format!("{PREFIX}_{name}"), labels)
            .unwrap_or_else(|| panic!("no {name}{labels:?} in\n{}", ballast_lines(text)))
    };
    let plain = drive::PLAIN_API_REQUESTS as f64;
    let at_least: &[AtLeast] = &[
        ("requests_total", &[api], plain),
        ("requests_total", &[("policy_set", "web")], 1.0),
        ("requests_unmatched_total", &[], 1.0),
        ("class_admitted", &[api, ("class", "standard")], plain),
        ("class_admitted", &[api, ("class", "sheddable")], 1.0),
        (
            "class_shed",
            &[api, ("class", "sheddable"), ("reason", "rate-limited")],
            1.0,
        ),
        (
            "class_shed",
            &[api, ("class", "standard"), ("reason", "displaced")],
            1.0,
        ),
        (
            "class_shed",
            &[api, ("class", "standard"), ("reason", "concurrency")],
            1.0,
        ),
        (
            "class_shed",
            &[api, ("class", "critical"), ("reason", "concurrency")],
            1.0,
        ),
        ("retries_allowed", &[api], 1.0),
        ("retries_denied_budget", &[api], 1.0),
        ("retries_denied_not_idempotent", &[api], 1.0),
        ("concurrency_rejected", &[api], 3.0),
        ("concurrency_queue_timeouts", &[api], 1.0),
        ("concurrency_deadline_drops", &[api], 1.0),
        ("deadline_seen_grpc_timeout", &[api], 3.0),
        ("deadline_seen_absolute", &[api], 1.0),
        ("deadline_defaulted", &[api], plain),
        ("deadline_capped", &[api], 1.0),
        ("deadline_malformed", &[api], 1.0),
        ("deadline_skew_rejected", &[api], 1.0),
        ("deadline_expired_on_arrival", &[api], 1.0),
        ("deadline_expired_queued", &[api], 1.0),
        ("deadline_upstream_timeouts", &[api], 1.0),
        ("deadline_forwarded_budget_ms_count", &[api], plain),
    ];
    let low: Vec<String> = at_least
        .iter()
        .filter_map(|(name, labels, min)| {
            let got = value(name, labels);
            (got < *min).then(|| format!("{name}{labels:?} = {got}, expected at least {min}"))
        })
        .collect();
    assert!(
        low.is_empty(),
        "{}\n\n{}",
        low.join("\n"),
        ballast_lines(text)
    );
    assert_eq!(value("concurrency_limit", &[api]), 1.0, "the fixed limit");
    assert_eq!(
        value("host_errors_total", &[]),
        0.0,
        "Envoy answered every host call as documented"
    );
}

#[test]
fn the_grafana_dashboard_queries_only_metrics_ballast_exports() {
    dashboard::check(&scrape().prometheus);
}

#[test]
fn the_istio_settings_label_and_keep_every_ballast_metric() {
    istio::check(scrape());
}
