//! The report: what a platform engineer reads (table), stores (JSON) and gates CI on (expect).
//!
//! Why these numbers: success ratio and goodput say whether the service did its job; latency
//! percentiles of admitted requests say whether admitted work stayed fast; rejections by reason
//! say what the policy did; retry amplification and work after the caller's deadline measure
//! the waste that resilience policies exist to remove.

use crate::collect::{quantile, Tally};
use crate::engine::Outcome;
use crate::scenario::{Expect, Loaded};
use serde::Serialize;
use std::collections::BTreeMap;

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Maximum.
    pub max_ms: f64,
}

/// Results of one class (or the total).
#[derive(Debug, Clone, Serialize)]
pub struct ClassReport {
    /// First attempts.
    pub offered: u64,
    /// All attempts, retries included.
    pub attempts: u64,
    /// Attempts admitted to the upstream by the plugin.
    pub admitted: u64,
    /// First attempts that succeeded.
    pub succeeded: u64,
    /// First attempts that failed for good.
    pub failed: u64,
    /// Attempts still in flight at the end of the drain period.
    pub unfinished: u64,
    /// succeeded / offered.
    pub success_ratio: f64,
    /// Successes per second of scenario duration.
    pub goodput_rps: f64,
    /// Latency of admitted attempts that got a response.
    pub latency: Latency,
    /// Failed attempts by reason; `plugin:*` are the plugin's rejections.
    pub failures: BTreeMap<String, u64>,
}

/// Upstream-side results.
#[derive(Debug, Clone, Serialize)]
pub struct UpstreamReport {
    /// Requests the upstream received.
    pub requests: u64,
    /// Upstream requests per first attempt.
    pub amplification: f64,
    /// Seconds of upstream work done after the caller had given up.
    pub work_after_deadline_s: f64,
    /// Most requests in service at once.
    pub max_in_service: u64,
    /// Longest upstream queue.
    pub max_queue: u64,
}

/// Time series, one value per bucket.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    /// Bucket end times, seconds.
    pub t_s: Vec<f64>,
    /// Per class: first attempts per second.
    pub offered_rps: BTreeMap<String, Vec<f64>>,
    /// Per class: successes per second.
    pub goodput_rps: BTreeMap<String, Vec<f64>>,
    /// Per class: plugin rejections per second.
    pub rejected_rps: BTreeMap<String, Vec<f64>>,
    /// Per class: p99 latency of responses in the bucket, ms.
    pub p99_ms: BTreeMap<String, Vec<f64>>,
    /// Upstream requests in service at bucket end.
    pub upstream_in_service: Vec<u64>,
    /// Upstream queue at bucket end.
    pub upstream_queued: Vec<u64>,
    /// Sampled plugin metrics.
    pub metrics: BTreeMap<String, Vec<Option<u64>>>,
}

/// One expectation and whether it held.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked, e.g. `classes.critical.success_ratio >= 0.995`.
    pub what: String,
    /// The measured value.
    pub actual: f64,
    /// Whether it held.
    pub ok: bool,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Seed used.
    pub seed: u64,
    /// Scenario duration, seconds.
    pub duration_s: f64,
    /// Worker VMs.
    pub workers: usize,
    /// Proxy streams driven.
    pub streams: u64,
    /// Per class, in scenario order of names.
    pub classes: BTreeMap<String, ClassReport>,
    /// All classes together.
    pub total: ClassReport,
    /// Upstream side.
    pub upstream: UpstreamReport,
    /// Plugin metrics at the end, by name.
    pub plugin_metrics: BTreeMap<String, u64>,
    /// Time series.
    pub series: Series,
    /// Expectations and their outcome.
    pub expectations: Vec<Check>,
}

impl Report {
    /// Whether every expectation held.
    pub fn passed(&self) -> bool {
        self.expectations.iter().all(|c| c.ok)
    }
}

fn ms(ns: u64) -> f64 {
    (ns as f64 / 1e3).round() / 1e3
}

fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

fn class_report(tally: &Tally, unfinished: u64, duration_s: f64) -> ClassReport {
    let mut latencies = tally.latencies.clone();
    latencies.sort_unstable();
    ClassReport {
        offered: tally.offered,
        attempts: tally.attempts,
        admitted: tally.admitted,
        succeeded: tally.succeeded,
        failed: tally.failed,
        unfinished,
        success_ratio: if tally.offered == 0 {
            1.0
        } else {
            round(tally.succeeded as f64 / tally.offered as f64, 6)
        },
        goodput_rps: round(tally.succeeded as f64 / duration_s, 3),
        latency: Latency {
            p50_ms: ms(quantile(&latencies, 0.5)),
            p90_ms: ms(quantile(&latencies, 0.9)),
            p99_ms: ms(quantile(&latencies, 0.99)),
            max_ms: ms(latencies.last().copied().unwrap_or(0)),
        },
        failures: tally.failures.clone(),
    }
}

/// Builds the report and evaluates the scenario's expectations.
pub fn build(loaded: &Loaded, outcome: &Outcome) -> Report {
    let s = &loaded.scenario;
    let c = &outcome.collector;
    let duration_s = s.duration.0 as f64 / 1e9;
    let mut total = Tally::default();
    let mut classes = BTreeMap::new();
    for (i, spec) in s.classes.iter().enumerate() {
        let Some(tally) = c.classes.get(i) else {
            continue;
        };
        let unfinished = outcome.unfinished.get(i).copied().unwrap_or(0);
        classes.insert(
            spec.name.clone(),
            class_report(tally, unfinished, duration_s),
        );
        total.offered += tally.offered;
        total.attempts += tally.attempts;
        total.admitted += tally.admitted;
        total.succeeded += tally.succeeded;
        total.failed += tally.failed;
        total.retries += tally.retries;
        total.latencies.extend_from_slice(&tally.latencies);
        for (reason, n) in &tally.failures {
            *total.failures.entry(reason.clone()).or_default() += n;
        }
    }
    let total = class_report(&total, outcome.unfinished.iter().sum(), duration_s);
    let upstream = UpstreamReport {
        requests: outcome.upstream.requests,
        amplification: if total.offered == 0 {
            0.0
        } else {
            round(outcome.upstream.requests as f64 / total.offered as f64, 4)
        },
        work_after_deadline_s: round(c.work_after_deadline as f64 / 1e9, 3),
        max_in_service: outcome.upstream.max_busy as u64,
        max_queue: outcome.upstream.max_queue as u64,
    };
    let bucket_s = c.bucket as f64 / 1e9;
    let per_class = |f: &dyn Fn(&crate::collect::Bucket) -> f64| -> BTreeMap<String, Vec<f64>> {
        s.classes
            .iter()
            .zip(&c.series)
            .map(|(spec, buckets)| (spec.name.clone(), buckets.iter().map(f).collect()))
            .collect()
    };
    let series = Series {
        t_s: (1..=c.series.first().map_or(0, Vec::len))
            .map(|i| round(i as f64 * bucket_s, 3))
            .collect(),
        offered_rps: per_class(&|b| round(b.offered as f64 / bucket_s, 3)),
        goodput_rps: per_class(&|b| round(b.succeeded as f64 / bucket_s, 3)),
        rejected_rps: per_class(&|b| round(b.rejected as f64 / bucket_s, 3)),
        p99_ms: per_class(&|b| {
            let mut l = b.latencies.clone();
            l.sort_unstable();
            ms(quantile(&l, 0.99))
        }),
        upstream_in_service: c.upstream_load.iter().map(|x| x.0).collect(),
        upstream_queued: c.upstream_load.iter().map(|x| x.1).collect(),
        metrics: c.metric_series.clone(),
    };
    let plugin_metrics: BTreeMap<String, u64> = outcome
        .metrics
        .iter()
        .map(|(_, name, value)| (name.clone(), *value))
        .collect();
    let mut report = Report {
        scenario: s.name.clone(),
        seed: outcome.seed,
        duration_s,
        workers: s.workers,
        streams: outcome.streams,
        classes,
        total,
        upstream,
        plugin_metrics,
        series,
        expectations: Vec::new(),
    };
    report.expectations = evaluate(loaded, &report);
    report
}

fn evaluate(loaded: &Loaded, report: &Report) -> Vec<Check> {
    let Some(expect) = &loaded.scenario.expect else {
        return Vec::new();
    };
    let mut checks = Vec::new();
    let mut class_checks = |label: &str, r: &ClassReport, e: &Expect| {
        let mut add = |what: String, actual: f64, ok: bool| checks.push(Check { what, actual, ok });
        if let Some(min) = e.success_ratio_min {
            add(
                format!("{label}.success_ratio >= {min}"),
                r.success_ratio,
                r.success_ratio >= min,
            );
        }
        if let Some(max) = e.success_ratio_max {
            add(
                format!("{label}.success_ratio <= {max}"),
                r.success_ratio,
                r.success_ratio <= max,
            );
        }
        if let Some(min) = e.goodput_min_rps {
            add(
                format!("{label}.goodput_rps >= {min}"),
                r.goodput_rps,
                r.goodput_rps >= min,
            );
        }
        if let Some(max) = e.p50_max {
            let limit = ms(max.0);
            add(
                format!("{label}.p50_ms <= {limit}"),
                r.latency.p50_ms,
                r.latency.p50_ms <= limit,
            );
        }
        if let Some(max) = e.p99_max {
            let limit = ms(max.0);
            add(
                format!("{label}.p99_ms <= {limit}"),
                r.latency.p99_ms,
                r.latency.p99_ms <= limit,
            );
        }
        if let Some(max) = e.rejected_max {
            let rejected: u64 = r
                .failures
                .iter()
                .filter(|(k, _)| k.starts_with("plugin:"))
                .map(|(_, n)| n)
                .sum();
            add(
                format!("{label}.rejected <= {max}"),
                rejected as f64,
                rejected <= max,
            );
        }
    };
    for (name, e) in &expect.classes {
        if let Some(r) = report.classes.get(name) {
            class_checks(&format!("classes.{name}"), r, e);
        }
    }
    if let Some(e) = &expect.total {
        class_checks("total", &report.total, e);
    }
    if let Some(u) = &expect.upstream {
        if let Some(max) = u.amplification_max {
            let a = report.upstream.amplification;
            checks.push(Check {
                what: format!("upstream.amplification <= {max}"),
                actual: a,
                ok: a <= max,
            });
        }
        if let Some(max) = u.work_after_deadline_max_s {
            let w = report.upstream.work_after_deadline_s;
            checks.push(Check {
                what: format!("upstream.work_after_deadline_s <= {max}"),
                actual: w,
                ok: w <= max,
            });
        }
    }
    for e in &expect.series {
        checks.extend(crate::series_expect::evaluate(e, &report.series));
    }
    for (name, bounds) in &expect.metrics {
        let actual = report.plugin_metrics.get(name).map(|v| *v as f64);
        let value = actual.unwrap_or(f64::NAN);
        if let Some(min) = bounds.min {
            checks.push(Check {
                what: format!("metric {name} >= {min}"),
                actual: value,
                ok: actual.is_some_and(|v| v >= min),
            });
        }
        if let Some(max) = bounds.max {
            checks.push(Check {
                what: format!("metric {name} <= {max}"),
                actual: value,
                ok: actual.is_some_and(|v| v <= max),
            });
        }
    }
    checks
}

/// The human-readable table.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "scenario {} · seed {} · {}s · {} worker(s) · {} streams\n\n",
        report.scenario, report.seed, report.duration_s, report.workers, report.streams
    ));
    out.push_str(&format!(
        "{:<14} {:>8} {:>8} {:>8} {:>9} {:>8} {:>10} {:>8} {:>8} {:>8}\n",
        "class",
        "offered",
        "attempts",
        "admitted",
        "succeeded",
        "success",
        "goodput/s",
        "p50 ms",
        "p90 ms",
        "p99 ms"
    ));
    let row = |name: &str, r: &ClassReport| {
        format!(
            "{:<14} {:>8} {:>8} {:>8} {:>9} {:>7.2}% {:>10.1} {:>8.1} {:>8.1} {:>8.1}\n",
            name,
            r.offered,
            r.attempts,
            r.admitted,
            r.succeeded,
            r.success_ratio * 100.0,
            r.goodput_rps,
            r.latency.p50_ms,
            r.latency.p90_ms,
            r.latency.p99_ms
        )
    };
    for (name, r) in &report.classes {
        out.push_str(&row(name, r));
    }
    out.push_str(&row("TOTAL", &report.total));
    out.push_str("\nfailed attempts by reason:\n");
    if report.total.failures.is_empty() {
        out.push_str("  (none)\n");
    }
    for (reason, n) in &report.total.failures {
        out.push_str(&format!("  {reason:<32} {n}\n"));
    }
    let u = &report.upstream;
    out.push_str(&format!(
        "\nupstream: {} requests · amplification {:.3}× · work after deadline {:.3}s · max in service {} · max queue {}\n",
        u.requests, u.amplification, u.work_after_deadline_s, u.max_in_service, u.max_queue
    ));
    if !report.expectations.is_empty() {
        out.push_str("\nexpectations:\n");
        for c in &report.expectations {
            let mark = if c.ok { "ok  " } else { "FAIL" };
            out.push_str(&format!("  {mark} {} (actual {})\n", c.what, c.actual));
        }
    }
    out
}
