//! This VM's entry in the shared limiter record: what it writes of itself (slots held, queue
//! length), how a lost write is repaired, the heartbeat, and the removal of stopped VMs.
//!
//! Why apart from `mod.rs`: admission and release decide; this part keeps the shared count
//! true across workers and crashes (see `ballast_policy::concurrency::holders`).

use super::Limiter;
use crate::shared::{self, Update};
use ballast_policy::concurrency::holders::{HolderId, Removed};
use ballast_policy::concurrency::{Holding, LimiterState};
use ballast_policy::duration::Nanos;

/// What a VM writes of itself when a slot it just acquired goes to one of its waiters: one more
/// slot held, one fewer waiting.
pub(super) fn handing_over(id: Option<HolderId>, me: Holding) -> Holding {
    Holding {
        id,
        held: me.held.saturating_add(1),
        queued: me.queued.saturating_sub(1),
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
        Holding {
            id: self.holder.get(),
            held: self.held.get(),
            queued: u32::try_from(self.queue.borrow().len()).unwrap_or(u32::MAX),
        }
    }

    /// An update that carried this VM's entry (`me`) was stored; `in_flight` and `queued` are
    /// the record's totals after it.
    pub(super) fn written(
        &self,
        holder: Option<HolderId>,
        me: Holding,
        in_flight: u32,
        queued: u32,
    ) {
        self.holder.set(holder);
        // Without an entry (table full) nothing of this VM was stored: still behind.
        self.behind.set(holder.is_none());
        self.written_queued.set(me.queued);
        self.last_in_flight.set(in_flight);
        self.metrics.in_flight.set(u64::from(in_flight));
        self.metrics.queued.set(u64::from(queued));
    }

    /// An update was lost to contention: the entry is behind until the next write.
    pub(super) fn lost(&self) {
        self.behind.set(true);
        self.metrics.contended.increment();
    }

    pub(super) fn add_held(&self, delta: i32) {
        self.held.set(self.held.get().saturating_add_signed(delta));
    }

    /// Returns one slot this VM took for a waiter it then could not find: the entry is written
    /// at once by the heartbeat's update, and stays marked behind (repaired at the next tick)
    /// if that write loses its race.
    pub(super) fn give_back(&self, now: Nanos) {
        self.add_held(-1);
        self.behind.set(true);
        self.heartbeat(now);
    }

    /// The shared record as it is now, read without writing (`None` if missing or unreadable).
    pub(super) fn peek(&self) -> Option<LimiterState> {
        shared::read(&self.key).and_then(|b| LimiterState::decode(&self.config.algorithm, &b))
    }

    /// Writes this VM's entry (repairing a lost update, proving it is alive, updating its
    /// queue length) and takes back the slots of VMs that stopped writing theirs.
    pub(super) fn heartbeat(&self, now: Nanos) {
        let me = self.me();
        let result = shared::update(&self.key, |bytes| {
            let mut state = self.state(bytes, now);
            // Dead entries first: they may be what keeps a full table from registering `me`.
            let removed = state.remove_dead(now, me.id);
            let holder = state.report(me, now);
            (
                state.encode(),
                (holder, removed, (state.in_flight(), state.queued())),
            )
        });
        if let Update::Stored((holder, removed, (in_flight, queued))) = result {
            self.written(holder, me, in_flight, queued);
            self.last_heartbeat.set(now);
            self.note_reclaimed(removed);
        }
    }

    /// A VM that has no entry yet (it has not served a request) still looks for stopped VMs
    /// once a second: read only, and a write only when there is an entry to remove.
    pub(super) fn sweep(&self, now: Nanos) {
        self.last_heartbeat.set(now);
        let dead = self
            .peek()
            .is_some_and(|state| state.holders.has_dead(now, None));
        if !dead {
            return;
        }
        let result = shared::update(&self.key, |bytes| {
            let mut state = self.state(bytes, now);
            let removed = state.remove_dead(now, None);
            (
                state.encode(),
                (removed, (state.in_flight(), state.queued())),
            )
        });
        if let Update::Stored((removed, (in_flight, queued))) = result {
            self.last_in_flight.set(in_flight);
            self.metrics.in_flight.set(u64::from(in_flight));
            self.metrics.queued.set(u64::from(queued));
            self.note_reclaimed(removed);
        }
    }

    pub(super) fn note_reclaimed(&self, removed: Removed) {
        if removed.held == 0 && removed.queued == 0 {
            return;
        }
        self.metrics.reclaimed.add(u64::from(removed.held));
        log::warn!(
            "concurrency limiter {}: reclaimed {} slot(s) of a worker VM that stopped \
             (its {} waiting request(s) went with it)",
            self.key,
            removed.held,
            removed.queued
        );
    }
}
