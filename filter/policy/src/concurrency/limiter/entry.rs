//! This VM's entry in the shared limiter record: what it writes of itself (slots reserved and
//! held, queue length), how a lost write is repaired, the heartbeat, the removal of stopped VMs,
//! and the gauges that show what it saw.
//!
//! Why apart from `mod.rs`: admission and release decide; this part keeps the shared count
//! true across workers and crashes (see `concurrency::holders`).

use super::{settle_lease, Limiter};
use crate::concurrency::holders::{HolderId, Removed, NO_WAITER};
use crate::concurrency::{Glance, Holding, LimiterState};
use crate::duration::Nanos;
use crate::env::Env;
use crate::metrics::Metric;
use crate::store::{self, Update};
use std::cell::RefMut;

/// What a VM writes of itself when a slot it just acquired goes to one of its waiters: one more
/// slot held, one fewer waiting (its best rank is rewritten with its next update, at the
/// latest on the next tick).
pub(super) fn handing_over(id: Option<HolderId>, me: Holding) -> Holding {
    Holding {
        id,
        held: me.held.saturating_add(1),
        spare: 0,
        queued: me.queued.saturating_sub(1),
        best: me.best,
    }
}

/// What a VM saw of the record, for which gauges it writes (see `Limiter::saw`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sight {
    /// Its own update.
    Update,
    /// A read while it has no entry (an idle VM's sweep), or an update that took its entry
    /// away.
    Read,
    /// A look while it holds spare slots.
    Look,
}

/// The gauges as this VM last wrote them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Shown {
    limit: Option<u32>,
    in_flight: Option<u32>,
    queued: Option<u32>,
}

impl Limiter {
    /// The shared record, decoded into this VM's scratch state so that its holder table's
    /// memory is reused (a fresh record if it is missing or unreadable). For the body of one
    /// update: the borrow ends with it.
    pub(super) fn state(&self, bytes: Option<&[u8]>, now: Nanos) -> RefMut<'_, LimiterState> {
        let mut state = RefMut::map(self.scratch.borrow_mut(), |b| &mut **b);
        let decoded = bytes.is_some_and(|b| state.decode_into(&self.config.algorithm, b));
        if !decoded {
            *state = LimiterState::new(&self.config.algorithm, now);
        }
        state
    }

    /// What this VM writes of itself: its true count and queue, no spare slots (an update
    /// settles those, see `settle_lease`).
    pub(super) fn me(&self) -> Holding {
        let queue = self.queue.borrow();
        Holding {
            id: self.holder.get(),
            held: self.held.get(),
            spare: 0,
            queued: u32::try_from(queue.len()).unwrap_or(u32::MAX),
            best: queue.best_rank().unwrap_or(NO_WAITER),
        }
    }

    /// An update that wrote this VM's entry as `written` was stored and left the record as
    /// `seen`.
    pub(super) fn written(
        &self,
        env: Env<'_>,
        holder: Option<HolderId>,
        written: Holding,
        seen: Glance,
    ) {
        self.holder.set(holder);
        // Without an entry (table full) nothing of this VM was stored: still behind.
        self.behind.set(holder.is_none());
        let stored = if holder.is_some() {
            written
        } else {
            Holding::default()
        };
        self.reserved.set(stored.held.saturating_add(stored.spare));
        self.leasing.set(stored.spare > 0);
        self.written_queued.set(written.queued);
        self.written_best.set(written.best);
        self.saw(env, seen, written.held, Sight::Update);
    }

    /// Keeps what this VM saw of the record, and shows it in the gauges (in flight with this
    /// VM's own count, `held`). The process-wide gauges show what whichever VM wrote them last
    /// saw, so after its own update, whose view is the freshest, a VM writes in flight, and
    /// the limit and the queue length too unless the update before was its own (then they
    /// still show what it wrote with that one) and they did not change. A read without an
    /// entry writes every gauge; a look while holding spare slots, only what changed since
    /// this VM last wrote it.
    pub(super) fn saw(&self, env: Env<'_>, seen: Glance, held: u32, sight: Sight) {
        self.others_in_flight.set(seen.others_in_flight());
        self.slow_start.set(seen.slow_start);
        let now_shown = Shown {
            limit: Some(seen.limit),
            in_flight: Some(seen.others_in_flight().saturating_add(held)),
            queued: Some(seen.queued),
        };
        let before = self.shown.get();
        let (all, in_flight) = match sight {
            Sight::Update => (!seen.repeat, true),
            Sight::Read => (true, true),
            Sight::Look => (false, false),
        };
        let gauges = [
            (Metric::ConcurrencyLimit, before.limit, now_shown.limit, all),
            (
                Metric::ConcurrencyInFlight,
                before.in_flight,
                now_shown.in_flight,
                in_flight || all,
            ),
            (
                Metric::ConcurrencyQueued,
                before.queued,
                now_shown.queued,
                all,
            ),
        ];
        for (metric, before, now, always) in gauges {
            if let (Some(value), true) = (now, always || before != now) {
                env.metrics.set(metric, u64::from(value));
            }
        }
        self.shown.set(now_shown);
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

    /// The shared record as it looks to this VM now, read without writing or decoding it whole
    /// (`None` if missing or unreadable).
    pub(super) fn glance(&self, env: Env<'_>, now: Nanos) -> Option<Glance> {
        let bytes = store::read(env.store, &self.key)?;
        Glance::read(&self.config.algorithm, &bytes, self.holder.get(), now)
    }

    /// Writes this VM's entry (repairing a lost update, proving it is alive, updating its
    /// queue length, settling its spare slots) and takes back the slots of VMs that stopped
    /// writing theirs.
    pub(super) fn heartbeat(&self, env: Env<'_>, now: Nanos) {
        let me = self.me();
        let lease = self.wants_lease(now);
        let result = store::update(env.store, &self.key, |bytes| {
            let mut state = self.state(bytes, now);
            // Dead entries first: they may be what keeps a full table from registering `me`.
            let removed = state.remove_dead(now, me.id);
            let holder = state.report(me, now);
            let written = settle_lease(&mut state, Holding { id: holder, ..me }, lease, now);
            let seen = Glance::after_update(&mut state, holder, now);
            (state.encode(), (holder, written, removed, seen))
        });
        if let Update::Stored((holder, written, removed, seen)) = result {
            self.written(env, holder, written, seen);
            self.last_heartbeat.set(now);
            self.note_reclaimed(env, removed);
        }
    }

    /// A VM that has no entry yet (it has not served a request) still looks for stopped VMs
    /// once a second: read only, and a write only when there is an entry to remove.
    pub(super) fn sweep(&self, env: Env<'_>, now: Nanos) {
        self.last_heartbeat.set(now);
        let Some(seen) = self.glance(env, now) else {
            return;
        };
        if !seen.has_dead {
            // Nothing to remove: the read still refreshes this VM's gauges, which would
            // otherwise keep what it saw at its last write for as long as it stays idle.
            self.saw(env, seen, self.held.get(), Sight::Read);
            return;
        }
        let result = store::update(env.store, &self.key, |bytes| {
            let mut state = self.state(bytes, now);
            let removed = state.remove_dead(now, None);
            let seen = Glance::after_update(&mut state, None, now);
            (state.encode(), (removed, seen))
        });
        if let Update::Stored((removed, seen)) = result {
            self.saw(env, seen, self.held.get(), Sight::Read);
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
            let seen = Glance::after_update(&mut state, None, now);
            (state.encode(), (removed, seen))
        });
        if let Update::Stored((removed, seen)) = result {
            self.holder.set(None);
            self.reserved.set(0);
            self.leasing.set(false);
            self.saw(env, seen, self.held.get(), Sight::Read);
            // Spare slots of a lease are no news: only requests still counted here are.
            if removed.in_flight > 0 || removed.queued > 0 {
                env.metrics.warn(&format!(
                    "concurrency limiter {}: closed with {} slot(s) held and {} request(s) \
                     waiting; they were given back",
                    self.key, removed.in_flight, removed.queued
                ));
            }
        }
    }

    /// Counts the slots of stopped VMs that an update took back.
    pub(super) fn note_reclaimed(&self, env: Env<'_>, removed: Removed) {
        if removed.slots == 0 && removed.queued == 0 {
            return;
        }
        env.metrics
            .add(Metric::ConcurrencyReclaimed, u64::from(removed.slots));
        env.metrics.warn(&format!(
            "concurrency limiter {}: reclaimed {} slot(s) of a worker VM that stopped \
             (its {} waiting request(s) went with it)",
            self.key, removed.slots, removed.queued
        ));
    }
}
