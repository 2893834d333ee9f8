//! Aggregating RTT samples over a window into one [`Sample`] for the limit algorithm.
//!
//! Why aggregate: single RTTs are noisy; algorithms want a window's average or a high
//! percentile. Percentiles use a fixed log-scale histogram (160 buckets, ~9 % wide, 50 µs to
//! 52 s), so the
//! window costs constant memory whatever the request rate.
//! Percentiles interpolate linearly inside the bucket that holds the rank, so a statistic moves
//! smoothly with the latency instead of in bucket-sized steps (a limit compares it with a
//! tolerance of 10–50 %, finer than the buckets).

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

const BUCKETS: usize = 160;
/// Smallest tracked RTT: 50 µs; each bucket is ×1.09 wider (×2 every 8 buckets).
const BASE_NS: f64 = 50_000.0;
const GROWTH: f64 = 1.090_507_733; // 2^(1/8)

/// One window of samples.
#[derive(Debug, Clone)]
pub struct SampleWindow {
    /// When the window began.
    pub started: Nanos,
    count: u32,
    sum: u128,
    max_in_flight: u32,
    dropped: bool,
    turned_away: bool,
    min_rtt: Nanos,
    max_rtt: Nanos,
    histogram: [u32; BUCKETS],
}

fn bucket_of(rtt: Nanos) -> usize {
    let ratio = (crate::numeric::approx_f64(rtt) / BASE_NS).max(1.0);
    let index = (ratio.ln() / GROWTH.ln()).floor();
    if index.is_finite() && index >= 0.0 {
        crate::numeric::saturating_usize(index).min(BUCKETS - 1)
    } else {
        0
    }
}

fn bucket_lower(index: usize) -> f64 {
    if index == 0 {
        0.0
    } else {
        BASE_NS * GROWTH.powi(i32::try_from(index).unwrap_or(i32::MAX))
    }
}

fn bucket_upper(index: usize) -> f64 {
    BASE_NS * GROWTH.powi(i32::try_from(index + 1).unwrap_or(i32::MAX))
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
            turned_away: false,
            min_rtt: Nanos::MAX,
            max_rtt: 0,
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
        self.max_rtt = self.max_rtt.max(rtt);
        if let Some(slot) = self.histogram.get_mut(bucket_of(rtt)) {
            *slot = slot.saturating_add(1);
        }
    }

    /// Records that a request found no free slot (it was queued or rejected): demand exceeded
    /// the limit during this window.
    pub fn mark_turned_away(&mut self) {
        self.turned_away = true;
    }

    /// Samples in the window.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The RTT at `rank` (1-based, ≤ count), interpolated inside its bucket and kept within
    /// the true minimum and maximum.
    fn at_rank(&self, rank: u32) -> Nanos {
        let mut seen = 0u32;
        for (index, &n) in self.histogram.iter().enumerate() {
            if n > 0 && seen + n >= rank {
                let within = f64::from(rank - seen) / f64::from(n);
                let (lower, upper) = (bucket_lower(index), bucket_upper(index));
                let value = crate::numeric::saturating_u64(lower + (upper - lower) * within);
                return value.clamp(self.min_rtt, self.max_rtt.max(self.min_rtt));
            }
            seen += n;
        }
        self.max_rtt
    }

    /// The window's fastest requests: its 5th-percentile RTT. Requests that met no queue show
    /// the service's no-load latency, and a standing queue delays every request, so it lifts
    /// this too. (The minimum itself keeps falling as more samples are seen — an extreme value —
    /// and would drag a baseline down forever.)
    fn fastest(&self) -> Nanos {
        self.at_rank((self.count / 20).max(1))
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
            Aggregate::Percentile(p) => self.at_rank(
                crate::numeric::saturating_u32((f64::from(self.count) * p).ceil())
                    .clamp(1, self.count),
            ),
        };
        Some(Sample {
            rtt,
            in_flight: self.max_in_flight,
            dropped: self.dropped,
            turned_away: self.turned_away,
            fastest: self.fastest(),
            started: self.started,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )] // test arithmetic
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
            (89 * MILLISECOND..=91 * MILLISECOND).contains(&p90),
            "p90 {p90}"
        );
        let p50 = w.summarize(Aggregate::Percentile(0.5)).unwrap().rtt;
        assert!(
            (49 * MILLISECOND..=51 * MILLISECOND).contains(&p50),
            "p50 {p50}"
        );
        let fastest = avg.fastest;
        assert!(
            (4 * MILLISECOND..=6 * MILLISECOND).contains(&fastest),
            "p5 {fastest}"
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
