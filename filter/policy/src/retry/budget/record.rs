//! The budget as bytes in shared data: a version byte, then 20 bytes per bucket (second,
//! first attempts, retries, failures; little-endian), oldest first.
//!
//! Why apart from the arithmetic: the record is what every worker of the process, and every
//! build of ballast that may run beside this one during an upgrade, reads and writes; its
//! format changes by version, never silently. Decoding allocates once, at the record's size,
//! and refuses anything a writer could not have produced (buckets out of order or repeated), so
//! a corrupted record reads as an empty window, as it always did.

use super::{Bucket, BudgetState, MAX_BUCKETS};

/// Version 2 added `failed`; version 1 records (an older build in the same process) still
/// decode, with no failures.
const ENCODED_VERSION: u8 = 2;
const BUCKET_BYTES: usize = 20;
const V1_BUCKET_BYTES: usize = 16;

/// One bucket's 20 bytes.
fn bucket_bytes(b: &Bucket) -> [u8; BUCKET_BYTES] {
    let s = b.second.to_le_bytes();
    let f = b.firsts.to_le_bytes();
    let r = b.retries.to_le_bytes();
    let x = b.failed.to_le_bytes();
    [
        s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], f[0], f[1], f[2], f[3], r[0], r[1], r[2],
        r[3], x[0], x[1], x[2], x[3],
    ]
}

/// A bucket from its bytes (a version 1 bucket has no failures).
fn bucket_of(chunk: &[u8]) -> Option<Bucket> {
    let word = |at: usize| -> Option<u32> {
        let bytes: [u8; 4] = chunk.get(at..at + 4)?.try_into().ok()?;
        Some(u32::from_le_bytes(bytes))
    };
    let second: [u8; 8] = chunk.get(..8)?.try_into().ok()?;
    Some(Bucket {
        second: u64::from_le_bytes(second),
        firsts: word(8)?,
        retries: word(12)?,
        failed: if chunk.len() == BUCKET_BYTES {
            word(16)?
        } else {
            0
        },
    })
}

impl BudgetState {
    /// Compact bytes for shared data: version, then 20 bytes per bucket.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.buckets.len() * BUCKET_BYTES);
        out.push(ENCODED_VERSION);
        for b in &self.buckets {
            out.extend_from_slice(&bucket_bytes(b));
        }
        out
    }

    /// Parses [`BudgetState::encode`] output; `None` for anything malformed, including
    /// buckets out of order or repeated (the caller then starts from an empty window).
    pub fn decode(bytes: &[u8]) -> Option<BudgetState> {
        let (&version, rest) = bytes.split_first()?;
        let width = match version {
            ENCODED_VERSION => BUCKET_BYTES,
            1 => V1_BUCKET_BYTES,
            _ => return None,
        };
        if rest.len() % width != 0 || rest.len() > MAX_BUCKETS * width {
            return None;
        }
        let mut buckets: Vec<Bucket> = Vec::with_capacity(rest.len() / width);
        for chunk in rest.chunks_exact(width) {
            let bucket = bucket_of(chunk)?;
            if buckets.last().is_some_and(|b| b.second >= bucket.second) {
                return None;
            }
            buckets.push(bucket);
        }
        Some(BudgetState { buckets })
    }
}

#[cfg(test)]
mod tests {
    use super::super::BudgetParams;
    use super::*;
    use crate::duration::{Nanos, SECOND};
    use crate::test_support::test;

    const P: BudgetParams = BudgetParams {
        ratio_ppm: 200_000,
        min_retries_per_second: 10,
        ttl_seconds: 10,
    };

    fn at(seconds: u64) -> Nanos {
        seconds * SECOND
    }

    #[test]
    fn encoding_round_trips_and_rejects_garbage() {
        let mut s = BudgetState::default();
        s.record_firsts(&P, at(1), 7);
        s.withdraw(&P, at(2), 3);
        s.record_failures(&P, at(2), 2);
        let bytes = s.encode();
        assert_eq!(bytes.len(), 1 + 2 * 20);
        assert_eq!(BudgetState::decode(&bytes), Some(s));
        assert_eq!(BudgetState::decode(&[]), None);
        assert_eq!(BudgetState::decode(&[9]), None);
        assert_eq!(BudgetState::decode(&[2, 0, 0]), None);
        assert_eq!(BudgetState::decode(&[2]), Some(BudgetState::default()));
        // A version 1 record (no failures) from an older build still reads.
        let mut v1 = vec![1u8];
        v1.extend_from_slice(&3u64.to_le_bytes());
        v1.extend_from_slice(&7u32.to_le_bytes());
        v1.extend_from_slice(&1u32.to_le_bytes());
        let old = BudgetState::decode(&v1).unwrap();
        assert_eq!(old.retries_in_window(&P, at(3)), 1);
        assert_eq!(BudgetState::decode(&v1[..10]), None);
    }

    #[test]
    fn the_layout_is_fixed_and_buckets_must_be_in_order() {
        let mut s = BudgetState::default();
        s.record_firsts(&P, at(0x0102), 0x0304);
        s.withdraw(&P, at(0x0102), 5);
        s.record_failures(&P, at(0x0102), 6);
        let bytes = s.encode();
        assert_eq!(
            bytes,
            [2, 2, 1, 0, 0, 0, 0, 0, 0, 4, 3, 0, 0, 5, 0, 0, 0, 6, 0, 0, 0]
        );
        let bucket = |second: u64| {
            let mut b = second.to_le_bytes().to_vec();
            b.extend_from_slice(&[0; 12]);
            b
        };
        let record = |seconds: &[u64]| {
            let mut r = vec![2u8];
            for &s in seconds {
                r.extend_from_slice(&bucket(s));
            }
            r
        };
        assert!(BudgetState::decode(&record(&[5, 6, 9])).is_some());
        assert_eq!(
            BudgetState::decode(&record(&[5, 9, 6])),
            None,
            "out of order"
        );
        assert_eq!(BudgetState::decode(&record(&[5, 5])), None, "repeated");
        let full: Vec<u64> = (0..61).collect();
        assert!(BudgetState::decode(&record(&full)).is_some());
        let over: Vec<u64> = (0..62).collect();
        assert_eq!(BudgetState::decode(&record(&over)), None, "too long");
    }
}
