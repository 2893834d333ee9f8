//! Request counters behind `GET /__demo/stats`, so tests can assert how many requests (per
//! path and per status) actually reached the upstream and how many were served at once.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::gate::{lock, Gate};

/// What `GET /__demo/stats` returns (also [`crate::RunningUpstream::stats`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Requests answered since the last reset (admin endpoints excluded).
    pub total: u64,
    /// Requests per URI path (query string excluded).
    pub by_path: BTreeMap<String, u64>,
    /// Requests per response status, keyed by the decimal code (`"200"`, `"503"`).
    pub by_status: BTreeMap<String, u64>,
    /// Requests holding a capacity slot right now.
    pub in_flight: usize,
    /// Highest `in_flight` since the last reset.
    pub max_in_flight_seen: usize,
    /// Requests waiting for a slot right now.
    #[serde(default)]
    pub queued: usize,
    /// Requests answered 503 at once because the queue was at its limit (also in `total`).
    #[serde(default)]
    pub rejected: u64,
    /// Slot-seconds spent serving since the upstream started (not reset): the difference
    /// over a run divided by `capacity × seconds` is how busy the upstream was kept.
    #[serde(default)]
    pub busy_slot_seconds: f64,
}

#[derive(Debug, Default)]
struct Counters {
    total: u64,
    by_path: BTreeMap<String, u64>,
    by_status: BTreeMap<String, u64>,
    rejected: u64,
}

/// Thread-safe counters; cheap enough that one mutex is fine at test loads.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    counters: Mutex<Counters>,
}

impl Stats {
    /// Counts one answered request.
    pub(crate) fn record(&self, path: &str, status: u16, rejected: bool) {
        let mut c = lock(&self.counters);
        c.total += 1;
        *c.by_path.entry(path.to_owned()).or_default() += 1;
        *c.by_status.entry(status.to_string()).or_default() += 1;
        if rejected {
            c.rejected += 1;
        }
    }

    /// Zeroes the counters and restarts the in-flight high-water mark.
    pub(crate) fn reset(&self, gate: &Gate) {
        *lock(&self.counters) = Counters::default();
        gate.reset_max();
    }

    pub(crate) fn snapshot(&self, gate: &Gate) -> StatsSnapshot {
        let (in_flight, max_in_flight_seen, queued) = gate.occupancy();
        let c = lock(&self.counters);
        StatsSnapshot {
            total: c.total,
            by_path: c.by_path.clone(),
            by_status: c.by_status.clone(),
            in_flight,
            max_in_flight_seen,
            queued,
            rejected: c.rejected,
            busy_slot_seconds: gate.busy_slot_seconds(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_resets() {
        let gate = Gate::new(0, None);
        let stats = Stats::default();
        stats.record("/a", 200, false);
        stats.record("/a", 503, false);
        stats.record("/b", 503, true);
        let s = stats.snapshot(&gate);
        assert_eq!(s.total, 3);
        assert_eq!(s.by_path["/a"], 2);
        assert_eq!(s.by_status["503"], 2);
        assert_eq!(s.rejected, 1);
        stats.reset(&gate);
        assert_eq!(stats.snapshot(&gate), StatsSnapshot::default());
    }
}
