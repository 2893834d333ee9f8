//! A tiny seeded PRNG (SplitMix64), so failure injection and jitter are reproducible for a
//! given `--seed` without OS randomness or an extra dependency.

/// SplitMix64: small, fast, and good enough to decide "fail or not" in tests.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose whole sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform float in `[0, 1)` (53 random bits).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform integer in `[0, bound]` (inclusive); `0` when `bound == 0`.
    pub fn up_to(&mut self, bound: u64) -> u64 {
        match bound.checked_add(1) {
            Some(span) => self.next_u64() % span,
            None => self.next_u64(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn floats_in_unit_interval_and_roughly_uniform() {
        let mut r = SplitMix64::new(1);
        let n = 10_000;
        let below_tenth = (0..n)
            .map(|_| r.next_f64())
            .inspect(|x| assert!((0.0..1.0).contains(x)))
            .filter(|x| *x < 0.1)
            .count();
        assert!((800..1200).contains(&below_tenth), "{below_tenth}");
    }

    #[test]
    fn up_to_is_inclusive_and_bounded() {
        let mut r = SplitMix64::new(3);
        assert_eq!(r.up_to(0), 0);
        let xs: Vec<u64> = (0..1000).map(|_| r.up_to(3)).collect();
        assert!(xs.iter().all(|x| *x <= 3));
        assert!(xs.contains(&0) && xs.contains(&3));
    }
}
