//! Aggregating RTT samples over a window into one [`Sample`] for the limit algorithm.
//!
//! Why aggregate: single RTTs are noisy; algorithms want a window's average or a high
//! percentile. Percentiles use a fixed log-scale histogram (32 buckets, ~19 % wide), so the
//! window costs constant memory whatever the request rate.

use super::Sample;
use crate::duration::Nanos;

/// How a window's RTTs become one value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Aggregate {
    /// Mean RTT.
    Average,
    /// This percentile (0 < p ≤ 1) of the RTTs.
    Percentile(f64),
}

const BUCKETS: usize = 64;
/// Smallest tracked RTT: 50 µs; each bucket is ×1.19 wider (×2 every 4 buckets).
const BASE_NS: f64 = 50_000.0;
const GROWTH: f64 = 1.189_207_115; // 2^(1/4)

/// One window of samples.
#[derive(Debug, Clone)]
pub struct SampleWindow {
    /// When the window began.
    pub started: Nanos,
    count: u32,
    sum: u128,
    max_in_flight: u32,
    dropped: bool,
    min_rtt: Nanos,
    histogram: [u32; BUCKETS],
}

fn bucket_of(rtt: Nanos) -> usize {
    let ratio = (rtt as f64 / BASE_NS).max(1.0);
    let index = (ratio.ln() / GROWTH.ln()).floor();
    if index.is_finite() && index >= 0.0 {
        (index as usize).min(BUCKETS - 1)
    } else {
        0
    }
}

fn bucket_upper(index: usize) -> Nanos {
    (BASE_NS * GROWTH.powi(i32::try_from(index + 1).unwrap_or(i32::MAX))) as Nanos
}

impl SampleWindow {
    /// An empty window starting at `now`.
    pub fn new(now: Nanos) -> SampleWindow {
        SampleWindow {
            started: now,
            count: 0,
            sum: 0,
            max_in_flight: 0,
            dropped: false,
            min_rtt: Nanos::MAX,
            histogram: [0; BUCKETS],
        }
    }

    /// Adds one completed request.
    pub fn add(&mut self, rtt: Nanos, in_flight: u32, dropped: bool) {
        self.count = self.count.saturating_add(1);
        self.sum += u128::from(rtt);
        self.max_in_flight = self.max_in_flight.max(in_flight);
        self.dropped |= dropped;
        self.min_rtt = self.min_rtt.min(rtt);
        if let Some(slot) = self.histogram.get_mut(bucket_of(rtt)) {
            *slot = slot.saturating_add(1);
        }
    }

    /// Samples in the window.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The window's 5th-percentile RTT (bucket upper bound), capped by the true minimum: a
    /// stable "fastest requests" statistic. The minimum itself keeps falling as more samples
    /// are seen (an extreme value), which would drag a no-load baseline down forever.
    fn low_rtt(&self) -> Nanos {
        let rank = (self.count / 20).max(1);
        let mut seen = 0;
        for (index, n) in self.histogram.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return bucket_upper(index).max(self.min_rtt);
            }
        }
        self.min_rtt
    }

    /// The window as one sample, or `None` when empty.
    pub fn summarize(&self, aggregate: Aggregate) -> Option<Sample> {
        if self.count == 0 {
            return None;
        }
        let rtt = match aggregate {
            Aggregate::Average => {
                u64::try_from(self.sum / u128::from(self.count)).unwrap_or(u64::MAX)
            }
            Aggregate::Percentile(p) => {
                let rank = ((f64::from(self.count) * p).ceil() as u32).clamp(1, self.count);
                let mut seen = 0;
                let mut value = bucket_upper(BUCKETS - 1);
                for (index, n) in self.histogram.iter().enumerate() {
                    seen += n;
                    if seen >= rank {
                        value = bucket_upper(index);
                        break;
                    }
                }
                value
            }
        };
        Some(Sample {
            rtt,
            in_flight: self.max_in_flight,
            dropped: self.dropped,
            min_rtt: self.low_rtt(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::MILLISECOND;
    use crate::test_support::test;

    #[test]
    fn average_and_percentiles() {
        let mut w = SampleWindow::new(0);
        for i in 1..=100u64 {
            w.add(i * MILLISECOND, i as u32, false);
        }
        let avg = w.summarize(Aggregate::Average).unwrap();
        assert_eq!(avg.rtt, 50_500_000);
        assert_eq!(avg.in_flight, 100);
        let p90 = w.summarize(Aggregate::Percentile(0.9)).unwrap().rtt;
        assert!(
            (90 * MILLISECOND..=108 * MILLISECOND).contains(&p90),
            "p90 {p90}"
        );
        let p50 = w.summarize(Aggregate::Percentile(0.5)).unwrap().rtt;
        assert!(
            (50 * MILLISECOND..=60 * MILLISECOND).contains(&p50),
            "p50 {p50}"
        );
        assert_eq!(SampleWindow::new(0).summarize(Aggregate::Average), None);
    }

    #[test]
    fn extreme_rtts_stay_in_range() {
        let mut w = SampleWindow::new(0);
        w.add(0, 1, false);
        w.add(u64::MAX, 1, true);
        let s = w.summarize(Aggregate::Percentile(1.0)).unwrap();
        assert!(s.dropped);
        assert!(s.rtt > 0);
    }
}
