//! The virtual clock.
//!
//! Envoy gives a plugin wall-clock time (`proxy_get_current_time_nanoseconds`, WASI realtime)
//! and monotonic time (WASI monotonic), and fires `proxy_on_tick` from per-worker timers. A
//! test must control all of them to be deterministic, so the host owns one clock shared by
//! every worker: time only moves when the test calls `Host::advance`, and ticks fire at
//! their exact due instants, in time order across workers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall-clock start used when the test does not choose one: 2025-01-01T00:00:00Z.
pub const DEFAULT_START_UNIX_NS: u64 = 1_735_689_600_000_000_000;

/// Monotonic time at the start (Envoy's monotonic clock is uptime-like, never 0).
const MONOTONIC_BASE_NS: u64 = 1_000_000_000;

#[derive(Debug, Clone)]
pub(crate) struct VirtualClock {
    start_unix_ns: u64,
    elapsed_ns: u64,
}

impl VirtualClock {
    pub(crate) fn new(start_unix_ns: u64) -> Self {
        Self {
            start_unix_ns,
            elapsed_ns: 0,
        }
    }

    /// Nanoseconds since the Unix epoch.
    pub(crate) fn realtime_ns(&self) -> u64 {
        self.start_unix_ns.saturating_add(self.elapsed_ns)
    }

    /// Monotonic nanoseconds (timers are kept on this scale).
    pub(crate) fn monotonic_ns(&self) -> u64 {
        MONOTONIC_BASE_NS.saturating_add(self.elapsed_ns)
    }

    /// Time elapsed since the host was built.
    pub(crate) fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.elapsed_ns)
    }

    /// Moves to an absolute monotonic instant (never backwards).
    pub(crate) fn set_monotonic_ns(&mut self, monotonic_ns: u64) {
        let elapsed = monotonic_ns.saturating_sub(MONOTONIC_BASE_NS);
        if elapsed > self.elapsed_ns {
            self.elapsed_ns = elapsed;
        }
    }

    pub(crate) fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.realtime_ns())
    }
}

/// Converts a `SystemTime` to Unix nanoseconds (0 for times before the epoch).
pub(crate) fn unix_ns(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
