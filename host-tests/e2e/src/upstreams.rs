//! Demo upstreams the end-to-end tests start: the truth a test counts against.

use ballast_demo_upstream::{spawn, RunningUpstream, Settings, UpstreamConfig};

/// A loopback demo upstream that answers 503 to `failure_ratio` of its requests (seeded, so a
/// run is repeatable) and counts every request it saw.
pub fn failing(failure_ratio: f64) -> Result<RunningUpstream, String> {
    spawn(UpstreamConfig {
        settings: Settings {
            failure_ratio,
            failure_status: 503,
            ..Settings::default()
        },
        ..UpstreamConfig::default()
    })
    .map_err(|e| format!("demo upstream: {e}"))
}

/// A loopback demo upstream that serves `capacity` requests at a time, each for `service_ms`
/// plus up to `jitter_ms` (seeded), and queues the rest without bound, as a service with no
/// protection of its own does (`capacity` 0: unlimited).
pub fn limited(
    capacity: usize,
    service_ms: u64,
    jitter_ms: u64,
) -> Result<RunningUpstream, String> {
    spawn(UpstreamConfig {
        settings: Settings {
            capacity,
            queue_limit: None,
            service_time_ms: service_ms,
            service_jitter_ms: jitter_ms,
            ..Settings::default()
        },
        ..UpstreamConfig::default()
    })
    .map_err(|e| format!("demo upstream: {e}"))
}
