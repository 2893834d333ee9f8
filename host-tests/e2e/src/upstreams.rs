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
