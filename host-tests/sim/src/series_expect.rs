//! Expectations on the per-second series: "the limit is within ±25 % of capacity from 10 s
//! on", "the limit falls while the upstream is slow and recovers after".
//!
//! Why per second rather than whole-run totals: what a limiter must show is how fast it
//! settles and whether it follows a change, and a total over the run blurs both.

use crate::report::{Check, Series};
use crate::scenario::SeriesExpect;

/// The checks one series expectation produces (one per bound).
pub fn evaluate(e: &SeriesExpect, series: &Series) -> Vec<Check> {
    let (label, values) = select(e, series);
    let from = e.from.map_or(f64::NEG_INFINITY, |d| d.0 as f64 / 1e9);
    let to = e.to.map_or(f64::INFINITY, |d| d.0 as f64 / 1e9);
    let points: Vec<f64> = series
        .t_s
        .iter()
        .zip(values)
        .filter(|(t, _)| **t > from && **t <= to)
        .filter_map(|(_, v)| v)
        .collect();
    let range = format!(
        "{}s..{}",
        e.from.map_or(0.0, |d| d.0 as f64 / 1e9),
        e.to.map_or("end".to_string(), |d| format!("{}s", d.0 as f64 / 1e9))
    );
    let of = e.of.as_deref().unwrap_or("each");
    // `each` checks the worst point against each bound; `min`/`max` check the lowest/highest
    // point; `mean` the mean.
    let summary = |worst: fn(f64, f64) -> f64| -> f64 {
        let fold = |f: fn(f64, f64) -> f64| points.iter().copied().fold(f64::NAN, f);
        match of {
            _ if points.is_empty() => f64::NAN,
            "mean" => points.iter().sum::<f64>() / points.len() as f64,
            "min" => fold(f64::min),
            "max" => fold(f64::max),
            _ => fold(worst),
        }
    };
    let mut checks = Vec::new();
    if let Some(min) = e.min {
        let actual = summary(f64::min);
        checks.push(Check {
            what: format!("series {label} {range} {of} >= {min}"),
            actual,
            ok: actual >= min,
        });
    }
    if let Some(max) = e.max {
        let actual = summary(f64::max);
        checks.push(Check {
            what: format!("series {label} {range} {of} <= {max}"),
            actual,
            ok: actual <= max,
        });
    }
    checks
}

/// The series named by `e` (validated at load) as optional points.
fn select(e: &SeriesExpect, series: &Series) -> (String, Vec<Option<f64>>) {
    if let Some(metric) = &e.metric {
        let values = series
            .metrics
            .get(metric)
            .map(|v| v.iter().map(|p| p.map(|x| x as f64)).collect())
            .unwrap_or_default();
        return (metric.clone(), values);
    }
    let class = e.class.clone().unwrap_or_default();
    let value = e.value.clone().unwrap_or_default();
    let by_class = match value.as_str() {
        "offered_rps" => &series.offered_rps,
        "goodput_rps" => &series.goodput_rps,
        "rejected_rps" => &series.rejected_rps,
        _ => &series.p99_ms,
    };
    let values = match by_class.get(&class) {
        Some(v) => v.iter().map(|x| Some(*x)).collect(),
        // `total` (a rate: p99 has no sum) adds the classes up, point by point.
        None if class == crate::scenario::TOTAL_CLASS => {
            let len = by_class.values().map(Vec::len).max().unwrap_or(0);
            (0..len)
                .map(|i| Some(by_class.values().filter_map(|v| v.get(i)).sum()))
                .collect()
        }
        None => Vec::new(),
    };
    (format!("classes.{class}.{value}"), values)
}
