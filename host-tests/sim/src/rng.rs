//! Seeded randomness and the duration distributions of scenarios.
//!
//! Why our own generator: a scenario must give byte-identical results for the same seed on
//! every machine and every version of every dependency. SplitMix64 is tiny, fast and fixed.

use crate::scenario::Distribution;
use ballast_policy::duration::Nanos;

/// SplitMix64: deterministic, fast, good enough for simulation.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`; `stream` separates independent sequences from one seed.
    pub fn new(seed: u64, stream: u64) -> Rng {
        let mut rng = Rng(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        rng.next_u64();
        rng
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in (0, 1]: safe for `ln`.
    pub fn unit_open(&mut self) -> f64 {
        1.0 - self.unit()
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.unit_open(), self.unit());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Exponential with mean `mean` (any unit).
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * self.unit_open().ln()
    }

    /// A sample of `d` in nanoseconds.
    pub fn sample(&mut self, d: &Distribution) -> Nanos {
        let ns = match d {
            Distribution::Fixed(v) => v.0 as f64,
            Distribution::Uniform([a, b]) => a.0 as f64 + (b.0 - a.0) as f64 * self.unit(),
            Distribution::Exponential(mean) => self.exponential(mean.0 as f64),
            Distribution::Lognormal { median, p99 } => {
                // p99 = median · e^(2.326·σ)
                let mu = (median.0 as f64).ln();
                let sigma = ((p99.0 as f64) / (median.0 as f64)).ln() / 2.326_347_874;
                (mu + sigma * self.normal()).exp()
            }
        };
        if ns.is_finite() && ns > 0.0 {
            ns.min(u64::MAX as f64 / 2.0) as Nanos
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Dur;

    #[test]
    fn same_seed_same_sequence() {
        let mut a = Rng::new(7, 1);
        let mut b = Rng::new(7, 1);
        let mut c = Rng::new(7, 2);
        let xs: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..5).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn distributions_have_their_moments() {
        let mut rng = Rng::new(1, 0);
        let n = 20_000;
        let mean = |rng: &mut Rng, d: &Distribution| {
            (0..n).map(|_| rng.sample(d) as f64).sum::<f64>() / n as f64
        };
        let exp = mean(&mut rng, &Distribution::Exponential(Dur(10_000_000)));
        assert!((exp / 10e6 - 1.0).abs() < 0.05, "exponential mean {exp}");
        let uni = mean(&mut rng, &Distribution::Uniform([Dur(0), Dur(20_000_000)]));
        assert!((uni / 10e6 - 1.0).abs() < 0.05, "uniform mean {uni}");
        let mut samples: Vec<u64> = (0..n)
            .map(|_| {
                rng.sample(&Distribution::Lognormal {
                    median: Dur(10_000_000),
                    p99: Dur(50_000_000),
                })
            })
            .collect();
        samples.sort_unstable();
        let median = samples[n / 2] as f64;
        let p99 = samples[n * 99 / 100] as f64;
        assert!(
            (median / 10e6 - 1.0).abs() < 0.05,
            "lognormal median {median}"
        );
        assert!((p99 / 50e6 - 1.0).abs() < 0.15, "lognormal p99 {p99}");
    }
}
