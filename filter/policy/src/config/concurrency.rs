//! Validation of the `concurrency` section. Defaults are documented in README.

use super::checks;
use super::error::Failure;
use super::error::Path;
use super::shape::Fields;
use super::{ConcurrencyConfig, Measure};
use crate::concurrency::noload::ProbeParams;
use crate::concurrency::queue::{Order, QueueParams};
use crate::concurrency::window::Aggregate;
use crate::concurrency::{AimdParams, AlgorithmParams, Bounds, Gradient2Params, VegasParams};
use crate::duration::{Nanos, MILLISECOND, SECOND};
use checks::{duration, number as ratio};

const MAX_LIMIT: u32 = 100_000;
/// How far the window's fastest requests may exceed their no-load RTT before gradient2 shrinks
/// the limit. Netflix uses 1.5 on averages; fastest requests are more sensitive to a queue (a
/// queue adds the same delay to a smaller number), and 1.5 there holds ~1.4× capacity in flight
/// (`host-tests/bench/concurrency-overload.json`), 1.2 ~1.2×, 1.1 ~1.1× but within the noise of
/// a low-traffic window's 5th percentile.
const DEFAULT_RTT_TOLERANCE: f64 = 1.2;
/// Time between no-load probes while the limit is binding (BBR re-probes every 10 s).
const DEFAULT_PROBE_INTERVAL: Nanos = 10 * SECOND;

/// Builds the section; `beside_shedding` makes an unset queue order adaptive (its LIFO is per
/// rank, and the ranks come from shedding; without, it stays FIFO: see `concurrency::overflow`).
pub(super) fn build(
    raw: Fields<'_>,
    beside_shedding: bool,
    path: &Path<'_>,
) -> Result<ConcurrencyConfig, Failure> {
    let algorithm_name = raw.str("algorithm").unwrap_or("gradient2");
    // Slow start is gradient2's (and on by default there): a cold limit starts low (at
    // min_limit, unless initial_limit says otherwise) and grows while latency holds.
    let slow_start = raw
        .bool("slow_start")
        .unwrap_or(algorithm_name == "gradient2");
    if slow_start && algorithm_name != "gradient2" {
        return Err(path
            .field("slow_start")
            .error("only the gradient2 algorithm has a slow start"));
    }
    // A fixed limit has no range to move in: its bounds default to the limit itself.
    let fixed = algorithm_name == "fixed";
    let slow_start_from = raw.u32("min_limit").unwrap_or(10);
    let initial =
        raw.u32("initial_limit")
            .unwrap_or(if slow_start { slow_start_from } else { 100 });
    let min = raw
        .u32("min_limit")
        .unwrap_or(if fixed { initial } else { 10 });
    let max = raw
        .u32("max_limit")
        .unwrap_or(if fixed { initial } else { 1000 });
    for (name, value) in [
        ("initial_limit", initial),
        ("min_limit", min),
        ("max_limit", max),
    ] {
        if value == 0 || value > MAX_LIMIT {
            return Err(path
                .field(name)
                .error(format!("must be between 1 and {MAX_LIMIT}")));
        }
    }
    if min > max {
        return Err(path
            .field("min_limit")
            .error(format!("must not exceed max_limit ({max})")));
    }
    if !(min..=max).contains(&initial) {
        return Err(path.field("initial_limit").error(format!(
            "must be within min_limit..=max_limit ({min}..={max})"
        )));
    }
    let bounds = Bounds {
        initial: f64::from(initial),
        min: f64::from(min),
        max: f64::from(max),
    };
    let smoothing = ratio(raw, "smoothing", 0.2, path, 0.01, 1.0)?;
    let window = duration(
        raw,
        "window",
        250 * MILLISECOND,
        path,
        10 * MILLISECOND,
        60 * SECOND,
    )?;
    // A probe holds for two windows: one for the upstream queue to drain, one of samples
    // from requests that met no queue.
    let probe_duration = 2 * window;
    let probe_interval = duration(
        raw,
        "probe_interval",
        DEFAULT_PROBE_INTERVAL,
        path,
        0,
        3600 * SECOND,
    )?;
    if probe_interval != 0 && probe_interval < 4 * probe_duration {
        return Err(path.field("probe_interval").error(format!(
            "must be 0 (never probe) or at least 8 windows ({}ms)",
            4 * probe_duration / MILLISECOND
        )));
    }
    let probe = ProbeParams {
        interval: probe_interval,
        duration: probe_duration,
    };
    let algorithm = match algorithm_name {
        "gradient2" => AlgorithmParams::Gradient2(Gradient2Params {
            bounds,
            smoothing,
            rtt_tolerance: ratio(raw, "rtt_tolerance", DEFAULT_RTT_TOLERANCE, path, 1.0, 10.0)?,
            // Unset: 10 % of the limit, at most 4; set: that many requests.
            queue_size: queue_allowance_check(raw, path)?,
            queue_fraction: if raw.f64("queue_allowance").is_some() {
                0.0
            } else {
                0.1
            },
            probe,
            slow_start,
        }),
        "vegas" => AlgorithmParams::Vegas(VegasParams {
            bounds,
            smoothing: ratio(raw, "smoothing", 1.0, path, 0.01, 1.0)?,
            probe,
        }),
        "aimd" => AlgorithmParams::Aimd(AimdParams {
            bounds,
            backoff_ratio: ratio(raw, "backoff_ratio", 0.9, path, 0.5, 0.99)?,
            timeout: duration(raw, "timeout", 5 * SECOND, path, MILLISECOND, 600 * SECOND)?,
        }),
        "fixed" => AlgorithmParams::Fixed(Bounds {
            initial: bounds.initial,
            min: bounds.initial,
            max: bounds.initial,
        }),
        other => {
            return Err(path.field("algorithm").error(format!(
                "unknown algorithm `{other}` (one of gradient2, vegas, aimd, fixed)"
            )))
        }
    };
    let aggregate = match raw.str("aggregate") {
        None | Some("average") => Aggregate::Average,
        Some(text) => {
            let percentile = text
                .strip_prefix('p')
                .and_then(super::decimal::parse_float)
                .filter(|p| *p > 0.0 && *p <= 100.0)
                .ok_or_else(|| {
                    path.field("aggregate").error(format!(
                        "`{text}` is not `average` or a percentile such as `p90`"
                    ))
                })?;
            Aggregate::Percentile(percentile / 100.0)
        }
    };
    let measure = match raw.str("measure") {
        None | Some("headers") => Measure::Headers,
        Some("end_of_stream") => Measure::EndOfStream,
        Some(other) => {
            return Err(path
                .field("measure")
                .error(format!("`{other}` is not `headers` or `end_of_stream`")))
        }
    };
    let reject_status = raw.u16("reject_status").unwrap_or(503);
    checks::error_status(reject_status).map_err(|r| path.field("reject_status").error(r))?;
    let retry_after = duration(raw, "retry_after", SECOND, path, 0, 3600 * SECOND)?;
    Ok(ConcurrencyConfig {
        algorithm,
        window,
        // 20 samples make the window's 5th percentile a rank of its own (fewer: its minimum).
        min_samples: raw.u32("min_samples").unwrap_or(20).max(1),
        aggregate,
        measure,
        queue: build_queue(raw.object("queue"), beside_shedding, &path.field("queue"))?,
        reject_status,
        retry_after_seconds: u32::try_from(retry_after.div_ceil(SECOND)).unwrap_or(u32::MAX),
    })
}

fn queue_allowance_check(raw: Fields<'_>, path: &Path<'_>) -> Result<f64, Failure> {
    ratio(raw, "queue_allowance", 4.0, path, 0.0, 1000.0)
}

fn build_queue(
    raw: Option<Fields<'_>>,
    beside_shedding: bool,
    path: &Path<'_>,
) -> Result<QueueParams, Failure> {
    let raw = raw.unwrap_or_default();
    let size = raw.u32("size").unwrap_or(100);
    if size > 100_000 {
        return Err(path.field("size").error("must be at most 100000"));
    }
    let order = match raw.str("order") {
        None if beside_shedding => Order::Adaptive,
        Some("adaptive") => Order::Adaptive,
        None | Some("fifo") => Order::Fifo,
        Some("lifo") => Order::Lifo,
        Some(other) => {
            return Err(path
                .field("order")
                .error(format!("`{other}` is not `adaptive`, `fifo` or `lifo`")))
        }
    };
    Ok(QueueParams {
        size: usize::try_from(size).unwrap_or(0),
        max_wait: duration(
            raw,
            "max_wait",
            50 * MILLISECOND,
            path,
            MILLISECOND,
            60 * SECOND,
        )?,
        order,
        respect_deadlines: raw.bool("respect_deadlines").unwrap_or(true),
    })
}
