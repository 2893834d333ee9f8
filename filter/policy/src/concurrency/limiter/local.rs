//! This VM's side of a lease (`concurrency::lease`): admitting into its spare slots and
//! releasing back into them without shared data, and the look at the record at each tick that
//! decides whether it keeps them.
//!
//! Why apart from `mod.rs`: these are the only paths that decide without the record; keeping
//! them together makes it plain what they rely on (a slot reserved in the record for each
//! request they admit, and no waiter of this VM passed over).

use super::entry::Sight;
use super::Limiter;
use crate::concurrency::lease::{self, SPARE_KEEP};
use crate::duration::Nanos;
use crate::env::Env;

impl Limiter {
    /// Admits a request into a spare slot of this VM's lease, if it holds one, nobody waits
    /// here, and its entry is written (no lost race since).
    pub(super) fn admit_locally(&self, now: Nanos) -> bool {
        let held = self.held.get();
        if !self.leasing.get()
            || self.behind.get()
            || held >= self.reserved.get()
            || !self.queue.borrow().is_empty()
        {
            return false;
        }
        self.held.set(held.saturating_add(1));
        self.last_admit.set(Some(now));
        true
    }

    /// Releases a slot into this VM's lease, unless that would leave more than
    /// [`SPARE_KEEP`] spare slots (the caller has checked that no waiter of this VM can take
    /// it and that no window ends).
    pub(super) fn release_locally(&self) -> bool {
        if !self.leasing.get() || self.behind.get() {
            return false;
        }
        let held = self.held.get().saturating_sub(1);
        if self.reserved.get().saturating_sub(held) > SPARE_KEEP {
            return false;
        }
        self.held.set(held);
        true
    }

    /// Whether this VM should hold spare slots at `now`: it admits requests and nobody waits
    /// in its queue.
    pub(super) fn wants_lease(&self, now: Nanos) -> bool {
        self.queue.borrow().is_empty() && lease::in_use(self.last_admit.get(), now)
    }

    /// At a tick, a VM holding spare slots looks at the record (a read, no write). It keeps them
    /// while its entry is there, nobody waits on another VM, the reservations stay within half
    /// the limit, no stopped VM's entry is left to remove, and it still admits requests; else
    /// its heartbeat's update settles them (most often: gives them back). The look also
    /// refreshes its view of the other workers and the gauges that changed.
    pub(super) fn check_lease(&self, env: Env<'_>, now: Nanos) {
        let Some(seen) = self.glance(env, now) else {
            // Missing or unreadable: the update writes a fresh record with this VM's entry.
            self.heartbeat(env, now);
            return;
        };
        let keep = seen.mine.is_some()
            && !seen.has_dead
            && lease::may_keep(seen.limit, seen.reserved, seen.others_wait)
            && self.wants_lease(now);
        if keep {
            self.saw(env, seen, self.held.get(), Sight::Look);
        } else {
            self.heartbeat(env, now);
        }
    }
}
