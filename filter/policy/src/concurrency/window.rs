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

/// 2^(k/8) for k = 1..=7: where the buckets of one doubling begin, past its first.
const EIGHTHS: [f64; 7] = [
    1.090_507_732_665_257_7,
    1.189_207_115_002_721,
    1.296_839_554_651_009_6,
    std::f64::consts::SQRT_2,
    1.542_210_825_407_940_7,
    1.681_792_830_507_429,
    1.834_008_086_409_342_4,
];

/// The bucket of `rtt`: ⌊8 log2(rtt / 50 µs)⌋, clamped to the histogram. Read from the float's
/// exponent (whole doublings) and its mantissa against [`EIGHTHS`] rather than with a
/// logarithm: this runs for every sample, and `ln` is a long routine in wasm.
fn bucket_of(rtt: Nanos) -> usize {
    let ratio = (crate::numeric::approx_f64(rtt) / BASE_NS).max(1.0);
    let bits = ratio.to_bits();
    // `ratio` is finite and at least 1: its biased exponent is at least 1023.
    let doublings = ((bits >> 52) & 0x7ff).saturating_sub(1023);
    let mantissa = f64::from_bits((bits & ((1 << 52) - 1)) | (1023 << 52));
    let eighths = EIGHTHS
        .iter()
        .take_while(|&&start| mantissa >= start)
        .count();
    usize::try_from(doublings)
        .unwrap_or(usize::MAX)
        .saturating_mul(8)
        .saturating_add(eighths)
        .min(BUCKETS - 1)
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
    fn buckets_are_eighths_of_a_doubling_as_the_logarithm_says() {
        let by_log = |rtt: Nanos| {
            let ratio = (rtt as f64 / BASE_NS).max(1.0);
            (ratio.ln() / GROWTH.ln()).floor().min((BUCKETS - 1) as f64) as usize
        };
        let mut rtt = 1u64;
        while rtt < u64::MAX / 2 {
            for r in [rtt - 1, rtt, rtt + 1] {
                let exact = 8.0 * (r as f64 / BASE_NS).log2();
                let near_a_start = (exact - exact.round()).abs() < 1e-6;
                assert!(
                    bucket_of(r) == by_log(r) || near_a_start,
                    "{r} ns: bucket {} against {}",
                    bucket_of(r),
                    by_log(r)
                );
            }
            rtt = rtt + rtt / 37 + 1;
        }
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(50_000), 0);
        assert_eq!(bucket_of(100_000), 8, "one doubling");
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
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
