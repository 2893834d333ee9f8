//! The limiter's periodic work on one VM (every 10 ms): answer waiters whose time ran out, keep
//! its entry true (repairs, heartbeat, its lease), and admit waiters into slots freed on other
//! workers.
//!
//! Why apart from `mod.rs`: arrivals and releases happen inside a stream's callbacks and decide
//! for that stream; the tick is where this VM catches up with what the other workers did.

use super::entry::handing_over;
use super::{Acquired, Limiter, Refusal, TickOutcome};
use crate::concurrency::holders::HEARTBEAT_PERIOD;
use crate::concurrency::{Glance, Holding};
use crate::duration::Nanos;
use crate::env::Env;
use crate::metrics::Metric;
use crate::store::{self, Update};

impl Limiter {
    /// Periodic work: answer waiters whose time ran out, write this VM's entry when due, check
    /// its lease, admit waiters into slots freed elsewhere.
    pub fn tick(&self, env: Env<'_>, now: Nanos) -> TickOutcome {
        let mut outcome = TickOutcome::default();
        let displaced = std::mem::take(&mut *self.displaced.borrow_mut());
        for (stream, grpc) in displaced {
            let reply = self.refuse(env, grpc, Refusal::Displaced);
            outcome.reject.push((stream, reply, Refusal::Displaced));
        }
        let expired = self.queue.borrow_mut().expire(now);
        for waiter in expired {
            let grpc = self.reject_ticket(waiter.id);
            let why = if waiter.deadline_bound {
                Refusal::Deadline
            } else {
                env.metrics.add(Metric::ConcurrencyQueueTimeouts, 1);
                Refusal::Limit
            };
            outcome
                .reject
                .push((waiter.id, self.refuse(env, grpc, why), why));
        }
        let registered = self.holder.get().is_some() || self.held.get() > 0;
        let last = self.last_heartbeat.get();
        // A clock that stepped back makes the heartbeat due at once rather than never.
        let heartbeat_due = now < last || now.saturating_sub(last) >= HEARTBEAT_PERIOD;
        let me = self.me();
        let queue_changed =
            me.queued != self.written_queued.get() || me.best != self.written_best.get();
        if registered && (self.behind.get() || heartbeat_due || queue_changed) {
            self.heartbeat(env, now);
        } else if self.leasing.get() {
            self.check_lease(env, now);
        } else if !registered && heartbeat_due {
            self.sweep(env, now);
        }
        self.admit_waiters(env, now, &mut outcome);
        outcome
    }

    /// Admits this VM's waiters while the record has room for them.
    fn admit_waiters(&self, env: Env<'_>, now: Nanos, outcome: &mut TickOutcome) {
        while self.queue.borrow().has_live(now) {
            // Under overload the record is usually full: look before writing, so waiting
            // workers do not add a CAS every tick to the races arrivals must win.
            // A more important waiter on another VM gets the next free slot there.
            let me = self.me();
            let full = self
                .glance(env, now)
                .is_some_and(|seen| seen.reserved >= seen.limit || seen.best_waiting < me.best);
            if full {
                break;
            }
            let result = store::update(env.store, &self.key, |bytes| {
                let mut state = self.state(bytes, now);
                let (holder, admitted) = state.try_acquire(me, me.best, now);
                let written = if admitted {
                    let written = handing_over(holder, me);
                    state.report(written, now);
                    written
                } else {
                    Holding { id: holder, ..me }
                };
                let seen = Glance::after_update(&mut state, holder, now);
                (
                    state.encode(),
                    (Acquired { holder, admitted }, written, seen),
                )
            });
            let Update::Stored((acquired, written, seen)) = result else {
                break;
            };
            self.written(env, acquired.holder, written, seen);
            if !acquired.admitted {
                break;
            }
            self.add_held(1);
            let next = self.queue.borrow_mut().pop(now);
            match next {
                Some(waiter) => outcome.resume.push(self.admit_waiter(waiter, now)),
                None => {
                    self.give_back(env, now);
                    break;
                }
            }
        }
    }
}
