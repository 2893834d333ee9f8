//! A shared per-class rate limit across four workers under random interleavings, random
//! arrival gaps and forced lost compare-and-swap races, against its documented bound: in any
//! stretch of time from one admission to a later one, the admissions are at most
//! `per_second × its length + burst + 1` (GCRA), whichever workers made them.
//!
//! Why: the global limit is one 8-byte record in shared data, updated by compare-and-swap from
//! every worker; a lost race retries, and one that loses every attempt lets the request through
//! as contended (counted, never held against the bound here: it is the documented escape). Unit
//! tests alternate two workers at a fixed pace; only random interleavings of four check that
//! no ordering of reads and writes admits more than the limit.
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::cast_precision_loss
)] // test code

#[path = "common/mod.rs"]
mod common;

use ballast_policy::duration::{Nanos, SECOND};
use ballast_policy::shedding::rate::{ClassRateLimit, RateDecision};
use ballast_policy::shedding::{RateLimitParams, RateScope};
use ballast_policy::store::MemoryStore;
use common::Rng;

const WORKERS: usize = 4;
const SEEDS: u64 = 120;
const CHECKS_PER_SEED: usize = 600;

#[test]
fn a_shared_rate_limit_holds_across_four_workers_in_any_interleaving() {
    let mut contended_total = 0;
    let mut allowed_total = 0;
    for seed in 1..=SEEDS {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let per_second_n = 1 + rng.below(500);
        let per_second = per_second_n as f64;
        let burst = u32::try_from(rng.below(20)).unwrap();
        let params = RateLimitParams {
            per_second,
            burst,
            scope: RateScope::Shared,
        };
        let store = MemoryStore::new();
        let workers: Vec<ClassRateLimit> = (0..WORKERS)
            .map(|_| ClassRateLimit::new(&params, "ballast.t.ratelimit.v1.api.x".into()).unwrap())
            .collect();
        // Offered at up to 4× the limit, in bursts and gaps.
        let mean_gap = SECOND / (per_second_n * 4);
        let mut now: Nanos = SECOND;
        let mut allowed: Vec<Nanos> = Vec::new();
        for _ in 0..CHECKS_PER_SEED {
            now += rng.below(2 * mean_gap + 1);
            if rng.below(10) == 0 {
                store.lose_next_races(u32::try_from(rng.below(12)).unwrap());
            }
            let worker = &workers[rng.index(WORKERS)];
            match worker.check(&store, now) {
                RateDecision::Allowed => allowed.push(now),
                RateDecision::Contended => contended_total += 1,
                RateDecision::Limited(_) => {}
            }
        }
        allowed_total += allowed.len();
        for i in 0..allowed.len() {
            for j in i + 1..allowed.len() {
                let span = (allowed[j] - allowed[i]) as f64 / SECOND as f64;
                let admitted = (j - i + 1) as f64;
                assert!(
                    admitted <= per_second * span + f64::from(burst) + 1.0 + 1e-9,
                    "seed {seed}: {admitted} admissions in {span:.4} s at {per_second}/s, \
                     burst {burst}"
                );
            }
        }
    }
    assert!(
        allowed_total > 10_000,
        "the limit admitted work: {allowed_total}"
    );
    println!("rate limit model: {allowed_total} admitted, {contended_total} let through contended");
}
