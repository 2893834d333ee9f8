//! The scenario file: traffic, upstream model, plugin configuration and expectations.
//!
//! Why a declarative file: platform engineers copy an example, point it at their own policy
//! configuration and run it in CI; the `expect` section turns a simulation into a check.
//! Durations are strings with units (`"250ms"`, `"10s"`), as in the plugin configuration.
//! Unknown fields are errors, reported with their JSON path.

use ballast_policy::duration::{parse_duration, Nanos};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A duration written as `"250ms"`, `"10s"` or `"1m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Nanos);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

/// A whole scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, shown in reports.
    pub name: String,
    /// What the scenario demonstrates.
    #[serde(default)]
    pub description: String,
    /// Simulated time during which requests arrive.
    pub duration: Dur,
    /// After `duration`, how long in-flight work may still finish (default 30s).
    pub drain: Option<Dur>,
    /// Worker VMs (Envoy `--concurrency`); requests are spread round-robin.
    #[serde(default = "one")]
    pub workers: usize,
    /// Seed of every random choice (overridable with `--seed`).
    #[serde(default = "one_u64")]
    pub seed: u64,
    /// Plugin configuration, inline.
    pub plugin_config: Option<serde_json::Value>,
    /// Plugin configuration, as a path relative to the scenario file.
    pub plugin_config_file: Option<String>,
    /// Width of the time-series buckets in reports and plots (default 1s).
    pub sample_every: Option<Dur>,
    /// Plugin metrics (full names) sampled into the time series and plotted.
    #[serde(default)]
    pub plot_metrics: Vec<String>,
    /// Request classes.
    pub classes: Vec<ClassSpec>,
    /// The upstream service model.
    pub upstream: UpstreamSpec,
    /// Checks that make `ballast-sim run` exit non-zero when unmet.
    pub expect: Option<Expectations>,
}

fn one() -> usize {
    1
}
fn one_u64() -> u64 {
    1
}

/// One class of requests with its own arrival rate and client behaviour.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassSpec {
    /// Class name, used in reports and expectations.
    pub name: String,
    /// Arrival rate: requests per second, constant or as a schedule.
    pub rate: RateSpec,
    /// `poisson` (default) or `uniform` spacing.
    #[serde(default)]
    pub arrivals: ArrivalKind,
    /// Request method (default GET).
    #[serde(default = "get")]
    pub method: String,
    /// Request path (default `/`).
    #[serde(default = "slash")]
    pub path: String,
    /// Request authority (default `sim.local`).
    #[serde(default = "authority")]
    pub authority: String,
    /// Extra request headers (lower-case names).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Priority class name, sent in `x-ballast-priority`.
    pub priority: Option<String>,
    /// Send a unique `idempotency-key` header with each request.
    #[serde(default)]
    pub idempotency_key: bool,
    /// The client's deadline for each attempt; the client gives up (and cancels) at it.
    pub deadline: Option<Distribution>,
    /// How the deadline is told to the proxy: `none` (default), `grpc-timeout`,
    /// `x-envoy-expected-rq-timeout-ms`.
    #[serde(default)]
    pub deadline_header: DeadlineHeader,
    /// Client-side retries.
    #[serde(default)]
    pub retries: RetrySpec,
    /// Envoy route name (`xds.route_name` property) for these requests.
    pub route_name: Option<String>,
}

fn get() -> String {
    "GET".into()
}
fn slash() -> String {
    "/".into()
}
fn authority() -> String {
    "sim.local".into()
}

/// `100` or `[{"at": "0s", "rps": 100}, {"at": "10s", "rps": 300, "ramp": true}]`:
/// a step sets the rate at `at`; a ramp rises linearly from the previous point to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RateSpec {
    /// Constant requests per second.
    Constant(f64),
    /// Piecewise schedule.
    Schedule(Vec<RatePoint>),
}

/// One point of a rate schedule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatePoint {
    /// When this rate is reached.
    pub at: Dur,
    /// Requests per second.
    pub rps: f64,
    /// Reach it linearly from the previous point instead of stepping at `at`.
    #[serde(default)]
    pub ramp: bool,
}

/// Spacing of arrivals.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ArrivalKind {
    /// Exponential gaps (a Poisson process, time-varying by thinning).
    #[default]
    Poisson,
    /// Evenly spaced.
    Uniform,
}

/// How a class tells the proxy its deadline.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DeadlineHeader {
    /// Not told.
    #[default]
    None,
    /// gRPC's `grpc-timeout` (e.g. `250m`).
    GrpcTimeout,
    /// Envoy's `x-envoy-expected-rq-timeout-ms`.
    XEnvoyExpectedRqTimeoutMs,
}

/// Client retry behaviour.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Retries after the first attempt (default 0).
    #[serde(default)]
    pub max: u32,
    /// Wait before each retry (default 25ms).
    #[serde(default = "default_backoff")]
    pub backoff: Dur,
    /// Statuses that trigger a retry (default 502, 503, 504).
    #[serde(default = "default_retry_statuses")]
    pub on_status: Vec<u16>,
    /// Retry when the client's deadline expired (default false).
    #[serde(default)]
    pub on_timeout: bool,
    /// Header marking retries with the attempt number (default `x-envoy-attempt-count`,
    /// as Envoy's router sets it on each attempt).
    #[serde(default = "default_mark")]
    pub mark_header: String,
}

impl Default for RetrySpec {
    fn default() -> Self {
        RetrySpec {
            max: 0,
            backoff: default_backoff(),
            on_status: default_retry_statuses(),
            on_timeout: false,
            mark_header: default_mark(),
        }
    }
}

fn default_backoff() -> Dur {
    Dur(25_000_000)
}
fn default_retry_statuses() -> Vec<u16> {
    vec![502, 503, 504]
}
fn default_mark() -> String {
    "x-envoy-attempt-count".into()
}

/// A distribution of durations.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum Distribution {
    /// Always this.
    Fixed(Dur),
    /// Uniform between two bounds.
    Uniform([Dur; 2]),
    /// Exponential with this mean.
    Exponential(Dur),
    /// Log-normal given its median and 99th percentile.
    Lognormal {
        /// Median.
        median: Dur,
        /// 99th percentile (≥ median).
        p99: Dur,
    },
}

/// The upstream service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSpec {
    /// Requests served at once (0 = unlimited); the rest wait FIFO.
    #[serde(default)]
    pub capacity: usize,
    /// Waiting requests beyond which the upstream answers 503 at once (default unlimited).
    pub queue_limit: Option<usize>,
    /// Time to serve one request at full speed.
    pub service_time: Distribution,
    /// Fraction of requests answered with `failure_status` (after their service time).
    #[serde(default)]
    pub failure_ratio: f64,
    /// Status of injected failures (default 503).
    #[serde(default = "default_failure_status")]
    pub failure_status: u16,
    /// Windows in which every request fails at once.
    #[serde(default)]
    pub outages: Vec<Window>,
    /// Windows in which service time is multiplied by `factor`.
    #[serde(default)]
    pub latency_shifts: Vec<Window>,
}

fn default_failure_status() -> u16 {
    503
}

/// A time window `[from, to)`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// Start (inclusive).
    pub from: Dur,
    /// End (exclusive).
    pub to: Dur,
    /// Status for outages (default 503).
    pub status: Option<u16>,
    /// Service-time multiplier for latency shifts (default 1).
    pub factor: Option<f64>,
}

/// Checks on the result.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    /// Per class name.
    #[serde(default)]
    pub classes: BTreeMap<String, Expect>,
    /// Over all classes.
    pub total: Option<Expect>,
    /// Upstream-side checks.
    pub upstream: Option<UpstreamExpect>,
    /// Plugin counters/gauges at the end, by full metric name.
    #[serde(default)]
    pub metrics: BTreeMap<String, Bounds>,
    /// Bounds on the per-second series over a time range (settling, following a shift).
    #[serde(default)]
    pub series: Vec<SeriesExpect>,
}

/// Bounds on one per-second series between `from` and `to`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesExpect {
    /// A plugin metric listed in `plot_metrics`, by full name; or else
    pub metric: Option<String>,
    /// a class's series: `offered_rps`, `goodput_rps`, `rejected_rps` or `p99_ms`, with
    pub value: Option<String>,
    /// the class name.
    pub class: Option<String>,
    /// First second checked (a bucket ending after this); default the start.
    pub from: Option<Dur>,
    /// Last second checked (a bucket ending at or before this); default the end.
    pub to: Option<Dur>,
    /// `each` (default): every point within the bounds; `mean`: their mean; `min` / `max`: the
    /// lowest / highest point (e.g. "the limit fell below 30 at some point").
    pub of: Option<String>,
    /// Lower bound.
    pub min: Option<f64>,
    /// Upper bound.
    pub max: Option<f64>,
}

/// The class series a [`SeriesExpect`] may name.
pub const CLASS_SERIES: [&str; 4] = ["offered_rps", "goodput_rps", "rejected_rps", "p99_ms"];

/// Checks on one class (or the total).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Succeeded / offered ≥ this.
    pub success_ratio_min: Option<f64>,
    /// Succeeded / offered ≤ this (work that should be shed).
    pub success_ratio_max: Option<f64>,
    /// Successes per second ≥ this.
    pub goodput_min_rps: Option<f64>,
    /// p50 latency of admitted requests ≤ this.
    pub p50_max: Option<Dur>,
    /// p99 latency of admitted requests ≤ this.
    pub p99_max: Option<Dur>,
    /// Attempts rejected by the plugin ≤ this many.
    pub rejected_max: Option<u64>,
}

/// Checks on the upstream.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamExpect {
    /// Upstream requests / first attempts ≤ this.
    pub amplification_max: Option<f64>,
    /// Seconds of upstream work done after the caller's deadline ≤ this.
    pub work_after_deadline_max_s: Option<f64>,
}

/// Inclusive bounds on a number.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bounds {
    /// Lower bound.
    pub min: Option<f64>,
    /// Upper bound.
    pub max: Option<f64>,
}

/// A loaded scenario with its plugin configuration resolved to bytes.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The scenario.
    pub scenario: Scenario,
    /// The plugin configuration JSON.
    pub plugin_config: Vec<u8>,
    /// Where it came from, for reports.
    pub source: PathBuf,
}

/// Reads, parses and checks a scenario file.
pub fn load(path: &Path) -> Result<Loaded, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read scenario {}: {e}", path.display()))?;
    let scenario = parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let plugin_config = match (&scenario.plugin_config, &scenario.plugin_config_file) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "{}: give plugin_config or plugin_config_file, not both",
                path.display()
            ))
        }
        (Some(inline), None) => serde_json::to_vec(inline).map_err(|e| e.to_string())?,
        (None, Some(file)) => {
            let base = path.parent().unwrap_or(Path::new("."));
            let config_path = base.join(file);
            std::fs::read(&config_path).map_err(|e| {
                format!(
                    "{}: plugin_config_file {}: {e}",
                    path.display(),
                    config_path.display()
                )
            })?
        }
        (None, None) => b"{}".to_vec(),
    };
    Ok(Loaded {
        scenario,
        plugin_config,
        source: path.to_path_buf(),
    })
}

/// Parses scenario text and checks what serde cannot.
pub fn parse(text: &str) -> Result<Scenario, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    let scenario: Scenario = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| format!("{}: {}", e.path(), e.inner()))?;
    check(&scenario)?;
    Ok(scenario)
}

fn check(s: &Scenario) -> Result<(), String> {
    if s.workers == 0 || s.workers > 64 {
        return Err("workers: must be 1..=64".into());
    }
    if s.duration.0 == 0 {
        return Err("duration: must be positive".into());
    }
    if s.classes.is_empty() {
        return Err("classes: at least one class is needed".into());
    }
    for (i, class) in s.classes.iter().enumerate() {
        let at = format!("classes[{i}]");
        if s.classes[..i].iter().any(|c| c.name == class.name) {
            return Err(format!("{at}.name: duplicate class `{}`", class.name));
        }
        match &class.rate {
            RateSpec::Constant(rps) if !(rps.is_finite() && *rps >= 0.0) => {
                return Err(format!("{at}.rate: must be a non-negative number"));
            }
            RateSpec::Schedule(points) => {
                if points.is_empty() {
                    return Err(format!("{at}.rate: schedule needs at least one point"));
                }
                for (j, p) in points.iter().enumerate() {
                    if !(p.rps.is_finite() && p.rps >= 0.0) {
                        return Err(format!("{at}.rate[{j}].rps: must be non-negative"));
                    }
                    if j > 0 && p.at.0 < points[j - 1].at.0 {
                        return Err(format!("{at}.rate[{j}].at: points must be in time order"));
                    }
                }
            }
            RateSpec::Constant(_) => {}
        }
        if !class.path.starts_with('/') {
            return Err(format!("{at}.path: must start with \"/\""));
        }
        if let Some(d) = &class.deadline {
            check_distribution(d).map_err(|e| format!("{at}.deadline: {e}"))?;
        }
        if class.retries.max > 10 {
            return Err(format!("{at}.retries.max: at most 10"));
        }
    }
    check_distribution(&s.upstream.service_time)
        .map_err(|e| format!("upstream.service_time: {e}"))?;
    if !(0.0..=1.0).contains(&s.upstream.failure_ratio) {
        return Err("upstream.failure_ratio: must be within 0..=1".into());
    }
    for (i, w) in s.upstream.latency_shifts.iter().enumerate() {
        if w.factor.is_none_or(|f| !(f.is_finite() && f > 0.0)) {
            return Err(format!(
                "upstream.latency_shifts[{i}].factor: a positive number is required"
            ));
        }
    }
    if let Some(expect) = &s.expect {
        for name in expect.classes.keys() {
            if !s.classes.iter().any(|c| &c.name == name) {
                return Err(format!("expect.classes.{name}: no such class"));
            }
        }
        for (i, e) in expect.series.iter().enumerate() {
            check_series_expect(s, e).map_err(|why| format!("expect.series[{i}]: {why}"))?;
        }
    }
    Ok(())
}

/// The class name a rate series check uses for the sum over all classes.
pub const TOTAL_CLASS: &str = "total";

fn check_series_expect(s: &Scenario, e: &SeriesExpect) -> Result<(), String> {
    match (&e.metric, &e.value, &e.class) {
        (Some(metric), None, None) => {
            if !s.plot_metrics.contains(metric) {
                return Err(format!("metric `{metric}` must be listed in plot_metrics"));
            }
        }
        (None, Some(value), Some(class)) => {
            if !CLASS_SERIES.contains(&value.as_str()) {
                return Err(format!("value `{value}` is not one of {CLASS_SERIES:?}"));
            }
            let total = class == TOTAL_CLASS && value != "p99_ms";
            if !total && !s.classes.iter().any(|c| &c.name == class) {
                return Err(format!(
                    "class `{class}`: no such class (`{TOTAL_CLASS}` sums the classes' rates)"
                ));
            }
        }
        _ => return Err("give either `metric`, or `value` and `class`".into()),
    }
    if e.min.is_none() && e.max.is_none() {
        return Err("give `min`, `max` or both".into());
    }
    if !matches!(
        e.of.as_deref(),
        None | Some("each") | Some("mean") | Some("min") | Some("max")
    ) {
        return Err("`of` is `each`, `mean`, `min` or `max`".into());
    }
    Ok(())
}

fn check_distribution(d: &Distribution) -> Result<(), String> {
    match d {
        Distribution::Uniform([a, b]) if a.0 > b.0 => Err("uniform bounds must be ordered".into()),
        Distribution::Lognormal { median, p99 } if p99.0 < median.0 || median.0 == 0 => {
            Err("lognormal needs 0 < median ≤ p99".into())
        }
        _ => Ok(()),
    }
}
