//! The state shared by every connection (live settings, capacity gate, counters, seeded
//! RNGs) and [`Control`], the handle tests use to read and change it without HTTP.

use std::sync::{Arc, Mutex};

use crate::config::{ConfigPatch, Settings, UpstreamConfig};
use crate::gate::{lock, Gate};
use crate::rng::SplitMix64;
use crate::stats::{Stats, StatsSnapshot};
use crate::Error;

/// Mixed into the seed of the jitter RNG so jitter and failure draws are independent
/// streams: the failure count over N requests then depends only on the seed, not on how
/// requests with and without jitter interleave.
const JITTER_STREAM: u64 = 0x6A09_E667_F3BC_C908;

#[derive(Debug)]
pub(crate) struct App {
    settings: Mutex<Settings>,
    pub(crate) gate: Arc<Gate>,
    pub(crate) stats: Stats,
    fail_rng: Mutex<SplitMix64>,
    jitter_rng: Mutex<SplitMix64>,
}

impl App {
    pub(crate) fn new(config: &UpstreamConfig) -> Arc<Self> {
        let s = &config.settings;
        Arc::new(App {
            gate: Gate::new(s.capacity, s.queue_limit),
            settings: Mutex::new(s.clone()),
            stats: Stats::default(),
            fail_rng: Mutex::new(SplitMix64::new(config.seed)),
            jitter_rng: Mutex::new(SplitMix64::new(config.seed ^ JITTER_STREAM)),
        })
    }

    pub(crate) fn settings(&self) -> Settings {
        lock(&self.settings).clone()
    }

    /// Applies a patch atomically (validated first) and resizes the gate.
    pub(crate) fn update(&self, patch: &ConfigPatch) -> Result<Settings, Error> {
        let mut current = lock(&self.settings);
        let next = patch.apply_to(&current)?;
        self.gate.set_limits(next.capacity, next.queue_limit);
        *current = next.clone();
        Ok(next)
    }

    /// One draw in `[0, 1)` per served request decides failure injection.
    pub(crate) fn failure_draw(&self) -> f64 {
        lock(&self.fail_rng).next_f64()
    }

    pub(crate) fn jitter_ms(&self, max_ms: u64) -> u64 {
        if max_ms == 0 {
            0
        } else {
            lock(&self.jitter_rng).up_to(max_ms)
        }
    }
}

/// A cloneable handle on a running upstream's state: read stats, reset them, change
/// settings, all in-process (the same operations as the `/__demo/` admin endpoints).
#[derive(Debug, Clone)]
pub struct Control {
    pub(crate) app: Arc<App>,
}

impl Control {
    /// The counters, as `GET /__demo/stats` returns them.
    pub fn stats(&self) -> StatsSnapshot {
        self.app.stats.snapshot(&self.app.gate)
    }

    /// Zeroes the counters, as `POST /__demo/reset`.
    pub fn reset(&self) {
        self.app.stats.reset(&self.app.gate);
    }

    /// The current live settings.
    pub fn settings(&self) -> Settings {
        self.app.settings()
    }

    /// Changes live settings, as `POST /__demo/config`; returns the new settings.
    pub fn update(&self, patch: &ConfigPatch) -> Result<Settings, Error> {
        self.app.update(patch)
    }
}
