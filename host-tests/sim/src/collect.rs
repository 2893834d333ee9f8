//! Counting what happened, per class and per time bucket, while the simulation runs.

use ballast_policy::duration::Nanos;
use std::collections::BTreeMap;

/// Totals of one class (or all classes).
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// First attempts (what clients wanted done).
    pub offered: u64,
    /// All attempts, retries included.
    pub attempts: u64,
    /// Attempts the plugin let through to the upstream.
    pub admitted: u64,
    /// First attempts that eventually got a 2xx before their deadline.
    pub succeeded: u64,
    /// First attempts that finally failed.
    pub failed: u64,
    /// Attempts that were retries.
    pub retries: u64,
    /// Failed attempts by reason (`plugin:<reason>`, `upstream_503`, `client_timeout`, ...).
    pub failures: BTreeMap<String, u64>,
    /// Latency (ns) of admitted attempts that got a response before their deadline.
    pub latencies: Vec<Nanos>,
}

impl Tally {
    /// Attempts the plugin answered itself.
    pub fn rejected_by_plugin(&self) -> u64 {
        self.failures
            .iter()
            .filter(|(reason, _)| reason.starts_with("plugin:"))
            .map(|(_, n)| n)
            .sum()
    }
}

/// One time bucket of one class.
#[derive(Debug, Clone, Default)]
pub struct Bucket {
    /// First attempts arriving in the bucket.
    pub offered: u64,
    /// Successes completing in the bucket.
    pub succeeded: u64,
    /// Plugin rejections in the bucket.
    pub rejected: u64,
    /// Other failed attempts in the bucket.
    pub failed: u64,
    /// Latencies of responses in the bucket.
    pub latencies: Vec<Nanos>,
}

/// Everything collected.
#[derive(Debug, Clone)]
pub struct Collector {
    /// Bucket width.
    pub bucket: Nanos,
    /// Per class, in scenario order.
    pub classes: Vec<Tally>,
    /// Per class, per bucket.
    pub series: Vec<Vec<Bucket>>,
    /// Upstream in service + queued at each bucket end.
    pub upstream_load: Vec<(u64, u64)>,
    /// Sampled plugin metrics at each bucket end, by name.
    pub metric_series: BTreeMap<String, Vec<Option<u64>>>,
    /// Seconds of upstream work after the caller had given up.
    pub work_after_deadline: Nanos,
}

impl Collector {
    /// For `classes` classes, buckets of `bucket` ns over `duration` ns.
    pub fn new(classes: usize, bucket: Nanos, duration: Nanos, metrics: &[String]) -> Collector {
        let buckets = usize::try_from(duration.div_ceil(bucket))
            .unwrap_or(0)
            .max(1);
        Collector {
            bucket,
            classes: vec![Tally::default(); classes],
            series: vec![vec![Bucket::default(); buckets]; classes],
            upstream_load: Vec::with_capacity(buckets),
            metric_series: metrics.iter().map(|m| (m.clone(), Vec::new())).collect(),
            work_after_deadline: 0,
        }
    }

    /// The bucket of class `class` at time `t` (the last bucket absorbs the drain period).
    pub fn at(&mut self, class: usize, t: Nanos) -> Option<&mut Bucket> {
        let series = self.series.get_mut(class)?;
        let index = usize::try_from(t / self.bucket).unwrap_or(usize::MAX);
        let last = series.len().checked_sub(1)?;
        series.get_mut(index.min(last))
    }

    /// A first attempt arrived.
    pub fn offered(&mut self, class: usize, t: Nanos) {
        if let Some(tally) = self.classes.get_mut(class) {
            tally.offered += 1;
        }
        if let Some(b) = self.at(class, t) {
            b.offered += 1;
        }
    }

    /// An attempt failed for `reason`.
    pub fn attempt_failed(&mut self, class: usize, t: Nanos, reason: &str) {
        if let Some(tally) = self.classes.get_mut(class) {
            *tally.failures.entry(reason.to_string()).or_default() += 1;
        }
        let plugin = reason.starts_with("plugin:");
        if let Some(b) = self.at(class, t) {
            if plugin {
                b.rejected += 1;
            } else {
                b.failed += 1;
            }
        }
    }

    /// An admitted attempt got a response after `latency`.
    pub fn responded(&mut self, class: usize, t: Nanos, latency: Nanos) {
        if let Some(tally) = self.classes.get_mut(class) {
            tally.latencies.push(latency);
        }
        if let Some(b) = self.at(class, t) {
            b.latencies.push(latency);
        }
    }

    /// A first attempt's final outcome.
    pub fn resolved(&mut self, class: usize, t: Nanos, success: bool) {
        if let Some(tally) = self.classes.get_mut(class) {
            if success {
                tally.succeeded += 1;
            } else {
                tally.failed += 1;
            }
        }
        if success {
            if let Some(b) = self.at(class, t) {
                b.succeeded += 1;
            }
        }
    }
}

/// The `q` quantile (0..=1) of sorted values, by nearest rank; 0 when empty.
pub fn quantile(sorted: &[Nanos], q: f64) -> Nanos {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<Nanos> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), 50);
        assert_eq!(quantile(&v, 0.99), 99);
        assert_eq!(quantile(&v, 1.0), 100);
        assert_eq!(quantile(&[], 0.5), 0);
        assert_eq!(quantile(&[7], 0.99), 7);
    }

    #[test]
    fn buckets_clamp_to_the_last() {
        let mut c = Collector::new(1, 1_000, 3_000, &[]);
        c.offered(0, 500);
        c.offered(0, 2_500);
        c.offered(0, 9_999);
        assert_eq!(
            c.series[0].iter().map(|b| b.offered).collect::<Vec<_>>(),
            [1, 0, 2]
        );
        assert_eq!(c.classes[0].offered, 3);
    }
}
