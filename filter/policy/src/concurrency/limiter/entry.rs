//! This VM's entry in the shared limiter record: what it writes of itself (slots held, queue
//! length), how a lost write is repaired, the heartbeat, and the removal of stopped VMs.
//!
//! Why apart from `mod.rs`: admission and release decide; this part keeps the shared count
//! true across workers and crashes (see `concurrency::holders`).

use super::{Limiter, Seen};
use crate::concurrency::holders::{HolderId, Removed, NO_WAITER};
use crate::concurrency::{Holding, LimiterState};
use crate::duration::Nanos;
use crate::env::Env;
use crate::metrics::Metric;
use crate::store::{self, Update};

/// What a VM writes of itself when a slot it just acquired goes to one of its waiters: one more
/// slot held, one fewer waiting (its best rank is rewritten with its next update, at the
/// latest on the next tick).
pub(super) fn handing_over(id: Option<HolderId>, me: Holding) -> Holding {
    Holding {
        id,
        held: me.held.saturating_add(1),
        queued: me.queued.saturating_sub(1),
        best: me.best,
    }
}

impl Limiter {
    /// The shared record (a fresh one if it is missing or unreadable).
    pub(super) fn state(&self, bytes: Option<&[u8]>, now: Nanos) -> LimiterState {
        bytes
            .and_then(|b| LimiterState::decode(&self.config.algorithm, b))
            .unwrap_or_else(|| LimiterState::new(&self.config.algorithm, now))
    }

    /// What this VM writes of itself.
    pub(super) fn me(&self) -> Holding {
        let queue = self.queue.borrow();
        Holding {
            id: self.holder.get(),
            held: self.held.get(),
            queued: u32::try_from(queue.len()).unwrap_or(u32::MAX),
            best: queue.best_rank().unwrap_or(NO_WAITER),
        }
    }

    /// An update that carried this VM's entry (`me`) was stored and left the record as `seen`.
    pub(super) fn written(&self, env: Env<'_>, holder: Option<HolderId>, me: Holding, seen: Seen) {
        self.holder.set(holder);
        // Without an entry (table full) nothing of this VM was stored: still behind.
        self.behind.set(holder.is_none());
        self.written_queued.set(me.queued);
        self.written_best.set(me.best);
        self.saw_totals(env, seen);
    }

    /// Keeps the record's totals as this VM last saw them, and their gauges.
    fn saw_totals(&self, env: Env<'_>, seen: Seen) {
        self.last_in_flight.set(seen.in_flight);
        self.slow_start.set(seen.slow_start);
        env.metrics
            .set(Metric::ConcurrencyInFlight, u64::from(seen.in_flight));
        env.metrics
            .set(Metric::ConcurrencyQueued, u64::from(seen.queued));
    }

    /// An update was lost to contention: the entry is behind until the next write.
    pub(super) fn lost(&self, env: Env<'_>) {
        self.behind.set(true);
        env.metrics.add(Metric::ConcurrencyContended, 1);
    }

    pub(super) fn add_held(&self, delta: i32) {
        self.held.set(self.held.get().saturating_add_signed(delta));
    }

    /// Returns one slot this VM took for a waiter it then could not find: the entry is written
    /// at once by the heartbeat's update, and stays marked behind (repaired at the next tick)
    /// if that write loses its race.
    pub(super) fn give_back(&self, env: Env<'_>, now: Nanos) {
        self.add_held(-1);
        self.behind.set(true);
        self.heartbeat(env, now);
    }

    /// The shared record as it is now, read without writing (`None` if missing or unreadable).
    pub(super) fn peek(&self, env: Env<'_>) -> Option<LimiterState> {
        store::read(env.store, &self.key)
            .and_then(|b| LimiterState::decode(&self.config.algorithm, &b))
    }

    /// Writes this VM's entry (repairing a lost update, proving it is alive, updating its
    /// queue length) and takes back the slots of VMs that stopped writing theirs.
    pub(super) fn heartbeat(&self, env: Env<'_>, now: Nanos) {
        let me = self.me();
        let result = store::update(env.store, &self.key, |bytes| {
            let mut state = self.state(bytes, now);
            // Dead entries first: they may be what keeps a full table from registering `me`.
            let removed = state.remove_dead(now, me.id);
            let holder = state.report(me, now);
            let seen = Seen::of(&state, now);
            (state.encode(), (holder, removed, seen))
        });
        if let Update::Stored((holder, removed, seen)) = result {
            self.written(env, holder, me, seen);
            self.last_heartbeat.set(now);
            self.note_reclaimed(env, removed);
        }
    }

    /// A VM that has no entry yet (it has not served a request) still looks for stopped VMs
    /// once a second: read only, and a write only when there is an entry to remove.
    pub(super) fn sweep(&self, env: Env<'_>, now: Nanos) {
        self.last_heartbeat.set(now);
        let Some(seen) = self.peek(env) else {
            return;
        };
        if !seen.holders.has_dead(now, None) {
            // Nothing to remove: the read still refreshes this VM's gauges, which would
            // otherwise keep what it saw at its last write for as long as it stays idle.
            self.saw_totals(env, Seen::of(&seen, now));
            return;
        }
        let result = store::update(env.store, &self.key, |bytes| {
            let mut state = self.state(bytes, now);
            let removed = state.remove_dead(now, None);
            let seen = Seen::of(&state, now);
            (state.encode(), (removed, seen))
        });
        if let Update::Stored((removed, seen)) = result {
            self.saw_totals(env, seen);
            self.note_reclaimed(env, removed);
        }
    }

    /// The limiter is going away (its configuration was replaced and its streams are gone, or
    /// the plugin stops): its entry leaves the shared record now rather than after the holder
    /// timeout, so configuration updates cannot fill the table. A write lost to contention
    /// leaves the entry to the other VMs' sweep.
    pub fn close(&self, env: Env<'_>, now: Nanos) {
        let Some(id) = self.holder.get() else {
            return;
        };
        let result = store::update(env.store, &self.key, |bytes| {
            let mut state = self.state(bytes, now);
            let removed = state.holders.remove(id);
            let seen = Seen::of(&state, now);
            (state.encode(), (removed, seen))
        });
        if let Update::Stored((removed, seen)) = result {
            self.holder.set(None);
            self.saw_totals(env, seen);
            if removed.held > 0 || removed.queued > 0 {
                env.metrics.warn(&format!(
                    "concurrency limiter {}: closed with {} slot(s) held and {} request(s) \
                     waiting; they were given back",
                    self.key, removed.held, removed.queued
                ));
            }
        }
    }

    /// Counts the slots of stopped VMs that an update took back.
    pub(super) fn note_reclaimed(&self, env: Env<'_>, removed: Removed) {
        if removed.held == 0 && removed.queued == 0 {
            return;
        }
        env.metrics
            .add(Metric::ConcurrencyReclaimed, u64::from(removed.held));
        env.metrics.warn(&format!(
            "concurrency limiter {}: reclaimed {} slot(s) of a worker VM that stopped \
             (its {} waiting request(s) went with it)",
            self.key, removed.held, removed.queued
        ));
    }
}
