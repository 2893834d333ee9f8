//! The virtual clock.
//!
//! Envoy gives a plugin wall-clock time (`proxy_get_current_time_nanoseconds`, WASI realtime)
//! and monotonic time (WASI monotonic), and fires `proxy_on_tick` from per-worker timers. A
//! test must control all of them to be deterministic, so the host owns one clock shared by
//! every worker: time only moves when the test calls `Host::advance`, and ticks fire at
//! their exact due instants, in time order across workers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::Result;
use crate::host::Host;

/// Wall-clock start used when the test does not choose one: 2025-01-01T00:00:00Z.
pub const DEFAULT_START_UNIX_NS: u64 = 1_735_689_600_000_000_000;

/// Monotonic time at the start (Envoy's monotonic clock is uptime-like, never 0).
const MONOTONIC_BASE_NS: u64 = 1_000_000_000;

#[derive(Debug, Clone)]
pub(crate) struct VirtualClock {
    start_unix_ns: u64,
    elapsed_ns: u64,
    /// Steps of the wall clock alone (NTP corrections), in ns; monotonic time ignores them.
    wall_step_ns: i64,
}

impl VirtualClock {
    pub(crate) fn new(start_unix_ns: u64) -> Self {
        Self {
            start_unix_ns,
            elapsed_ns: 0,
            wall_step_ns: 0,
        }
    }

    /// Nanoseconds since the Unix epoch.
    pub(crate) fn realtime_ns(&self) -> u64 {
        self.start_unix_ns
            .saturating_add(self.elapsed_ns)
            .saturating_add_signed(self.wall_step_ns)
    }

    /// Steps the wall clock alone by `by_ns` (either way), as an NTP correction does.
    pub(crate) fn step_wall(&mut self, by_ns: i64) {
        self.wall_step_ns = self.wall_step_ns.saturating_add(by_ns);
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

impl Host {
    /// Moves the virtual clock forward by `by` at once, as a process that was stopped (or a
    /// machine that slept) sees it: no tick fires in between; each timer that fell due fires
    /// once, at the new time. [`Host::advance`] fires every tick instead.
    pub fn jump(&mut self, by: Duration) -> Result<()> {
        self.settle()?;
        let by_ns = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let target = self.shared.clock.monotonic_ns().saturating_add(by_ns);
        self.shared.clock.set_monotonic_ns(target);
        for w in 0..self.workers.len() {
            if self.workers[w].failed.is_some() {
                continue;
            }
            for root in self.workers[w].store.data().overdue(target) {
                self.fire_tick(w, root, target)?;
            }
        }
        Ok(())
    }

    /// Steps the wall clock alone by `by_ns` nanoseconds, forward or back (an NTP
    /// correction): `proxy_get_current_time_nanoseconds` and WASI realtime move, monotonic
    /// time and timers do not.
    pub fn step_wall_clock(&mut self, by_ns: i64) {
        self.shared.clock.step_wall(by_ns);
    }
}
