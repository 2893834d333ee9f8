//! One policy set's retry budget as a worker VM uses it: the record in a
//! [`SharedStore`](crate::store::SharedStore) that all workers update with compare-and-swap,
//! and this worker's [`Lease`] on it.
//!
//! Why apart from [`super::policy`]: the policy decides what a request may do (eligibility,
//! metrics, the explanation, the final mark); this module is the protocol over shared data
//! that pays for it, and the one place where a request touches the store. Most requests do not:
//! a request of a second whose batch covers its reservation is served from the lease, and its
//! unused retries go back to it. Shared data is written when a batch runs out or its second
//! ends, at a final failure (the floor shrinks with it at once, as before leases), and once a
//! second by [`SharedBudget::flush`], which returns everything the worker holds.

use super::lease::{self, Lease};
use super::{BudgetParams, BudgetState};
use crate::duration::Nanos;
use crate::env::Env;
use crate::store::{self, Update};
use std::cell::RefCell;

/// The shared budget of one policy set, as this VM sees it.
#[derive(Debug)]
pub(super) struct SharedBudget {
    key: String,
    params: BudgetParams,
    /// Spare retries this worker may hold.
    spare_cap: u32,
    lease: RefCell<Lease>,
}

impl SharedBudget {
    /// The budget stored under `key` (created if missing), for requests reserving up to
    /// `max_retries` retries each.
    pub(super) fn open(env: Env<'_>, key: String, params: BudgetParams, max_retries: u32) -> Self {
        store::ensure(env.store, &key, &BudgetState::default().encode());
        SharedBudget {
            key,
            params,
            spare_cap: max_retries.saturating_mul(lease::SPARE_REQUESTS),
            lease: RefCell::new(Lease::default()),
        }
    }

    fn state(bytes: Option<&[u8]>) -> BudgetState {
        bytes.and_then(BudgetState::decode).unwrap_or_default()
    }

    /// Counts a first attempt that reserves nothing (written with the next write).
    pub(super) fn count_first(&self) {
        if let Ok(mut lease) = self.lease.try_borrow_mut() {
            lease.count_first();
        }
    }

    /// Counts this first attempt and reserves `wanted` retries, from the lease when it holds
    /// them for this second, else with a new batch from the shared budget (fewer when the
    /// budget has fewer). Returns the grant and the budget second it is booked in.
    pub(super) fn reserve(&self, env: Env<'_>, now: Nanos, wanted: u32) -> Update<(u32, u64)> {
        // The lease is borrowed only within these methods, which never call each other.
        let Ok(mut lease) = self.lease.try_borrow_mut() else {
            return Update::Failed;
        };
        lease.count_first();
        if let Some(second) = lease.lend(now, wanted) {
            return Update::Stored((wanted, second));
        }
        let held: &Lease = &lease;
        let result = store::update(env.store, &self.key, |bytes| {
            let mut state = Self::state(bytes);
            let renewal = held.renew(&mut state, &self.params, now, wanted, self.spare_cap);
            (state.encode(), renewal)
        });
        match result {
            Update::Stored(renewal) => {
                lease.renewed(renewal);
                Update::Stored((renewal.granted, renewal.second))
            }
            // The first attempt still counts: the lease keeps it for the next write.
            Update::Contended => Update::Contended,
            Update::Failed => Update::Failed,
        }
    }

    /// Gives back `n` unused retries booked in second `reserved_in`, and counts a request
    /// whose final response `failed`. A failure is written at once with everything the worker
    /// holds (the floor shrinks with the failures' share, and the next batch sees it); unused
    /// retries go back to the lease, unless no slot is left to owe them in.
    pub(super) fn settle(
        &self,
        env: Env<'_>,
        now: Nanos,
        reserved_in: u64,
        n: u32,
        failed: bool,
    ) -> Update<()> {
        let Ok(mut lease) = self.lease.try_borrow_mut() else {
            return Update::Failed;
        };
        let oldest = lease::oldest_live(&self.params, now);
        let unplaced = lease.give_back(reserved_in, n, self.spare_cap, oldest);
        if failed {
            lease.count_failure();
        } else if unplaced == 0 {
            return Update::Stored(());
        }
        let held: &Lease = &lease;
        let result = store::update(env.store, &self.key, |bytes| {
            let mut state = Self::state(bytes);
            held.write_into(&mut state, &self.params, now, false);
            if unplaced > 0 {
                state.refund(&self.params, now, reserved_in, unplaced);
            }
            (state.encode(), ())
        });
        // Lost races keep what is owed for the next write (but for `unplaced`, which found no
        // slot: it stays counted until its second leaves the window, which only under-spends).
        if result.stored().is_some() {
            lease.written(false);
        }
        result
    }

    /// Writes everything the worker holds and owes (if anything) and returns the whole
    /// retries available now.
    pub(super) fn flush(&self, env: Env<'_>, now: Nanos) -> Option<u64> {
        let available = |state: &BudgetState| {
            u64::try_from(state.available_milli(&self.params, now).max(0) / 1_000).ok()
        };
        let mut lease = self.lease.try_borrow_mut().ok()?;
        if lease.is_idle() {
            return available(&Self::state(store::read(env.store, &self.key).as_deref()));
        }
        let held: &Lease = &lease;
        let result = store::update(env.store, &self.key, |bytes| {
            let mut state = Self::state(bytes);
            held.write_into(&mut state, &self.params, now, false);
            let left = available(&state);
            (state.encode(), left)
        });
        let left = result.stored()?;
        lease.written(false);
        left
    }
}
