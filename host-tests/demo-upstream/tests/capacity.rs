//! The service model under load: the capacity limit queues requests FIFO (latency grows),
//! the queue limit sheds, and seeded failure injection is accurate and reproducible.
// Test-only crate: its helpers (outside #[test] fns) may panic on failure too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use ballast_demo_upstream::{spawn, Settings, SplitMix64, UpstreamConfig};
use common::*;

fn config(seed: u64, settings: Settings) -> UpstreamConfig {
    UpstreamConfig {
        seed,
        settings,
        ..UpstreamConfig::default()
    }
}

#[tokio::test]
async fn capacity_limits_concurrency_and_queues() {
    let up = spawn(config(
        1,
        Settings {
            capacity: 2,
            service_time_ms: 50,
            ..Settings::default()
        },
    ))
    .unwrap();
    let addr = up.addr();
    tokio::time::timeout(TEST_TIMEOUT, async {
        let t = Instant::now();
        let statuses = concurrent(addr, "/work", 6).await;
        let elapsed = t.elapsed();
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
        // Three waves of two, 50 ms each.
        assert!(elapsed >= Duration::from_millis(148), "{elapsed:?}");
        let s = stats(addr).await;
        assert_eq!(s["max_in_flight_seen"], 2, "{s}");
        assert_eq!(s["in_flight"], 0);
        assert_eq!(s["total"], 6);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn unlimited_capacity_serves_all_at_once() {
    let up = spawn(config(
        1,
        Settings {
            service_time_ms: 1000,
            ..Settings::default()
        },
    ))
    .unwrap();
    tokio::time::timeout(TEST_TIMEOUT, async {
        let statuses = concurrent(up.addr(), "/work", 6).await;
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
        assert_eq!(up.stats().max_in_flight_seen, 6);
    })
    .await
    .expect("test timed out");
}

/// Polls the stats until `pred` holds (bounded), so the test does not rely on sleeps.
async fn wait_for(
    up: &ballast_demo_upstream::RunningUpstream,
    pred: impl Fn(&ballast_demo_upstream::StatsSnapshot) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pred(&up.stats()) {
        assert!(
            Instant::now() < deadline,
            "condition not reached: {:?}",
            up.stats()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn queue_limit_sheds_excess() {
    let up = spawn(config(
        1,
        Settings {
            capacity: 1,
            queue_limit: Some(1),
            ..Settings::default()
        },
    ))
    .unwrap();
    let addr = up.addr();
    tokio::time::timeout(TEST_TIMEOUT, async {
        // The first request holds the only slot for 2 s, the second waits behind it.
        let slow = [("x-demo-delay-ms", "2000")];
        let first = tokio::spawn(async move { send(addr, "GET", "/q", &slow, "").await.status });
        wait_for(&up, |s| s.in_flight == 1).await;
        let second = tokio::spawn(async move { get(addr, "/q").await.status });
        wait_for(&up, |s| s.queued == 1).await;

        let t = Instant::now();
        let third = get(addr, "/q").await;
        assert_eq!(third.status, 503);
        assert!(third.text().contains("queue full"));
        assert!(t.elapsed() < Duration::from_millis(1500), "shed at once");

        assert_eq!(first.await.unwrap(), 200);
        assert_eq!(second.await.unwrap(), 200);
        let s = up.stats();
        assert_eq!(s.rejected, 1);
        assert_eq!(s.by_status["200"], 2);
        assert_eq!(s.by_status["503"], 1);
        assert_eq!(s.max_in_flight_seen, 1);
    })
    .await
    .expect("test timed out");
}

/// Sends 1000 requests from 10 concurrent clients; returns the number of 503s.
async fn failures_for_seed(seed: u64) -> u64 {
    let up = spawn(config(
        seed,
        Settings {
            failure_ratio: 0.1,
            ..Settings::default()
        },
    ))
    .unwrap();
    let addr = up.addr();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..10 {
        set.spawn(async move {
            for _ in 0..100 {
                let status = get(addr, "/ratio").await.status;
                assert!(status == 200 || status == 503, "{status}");
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    let s = up.stats();
    assert_eq!(s.total, 1000);
    s.by_status.get("503").copied().unwrap_or(0)
}

#[tokio::test]
async fn failure_ratio_is_accurate_and_deterministic() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let first = failures_for_seed(42).await;
        let second = failures_for_seed(42).await;
        assert!(
            (70..=130).contains(&first),
            "{first} failures of 1000 at ratio 0.1"
        );
        assert_eq!(first, second, "same seed, same failure count");

        // Exactly the number of the seed's first 1000 draws below the ratio.
        let mut rng = SplitMix64::new(42);
        let expected = (0..1000).filter(|_| rng.next_f64() < 0.1).count() as u64;
        assert_eq!(first, expected);
    })
    .await
    .expect("test timed out");
}
