//! Adaptive concurrency limit with a bounded wait queue, enforced across Envoy's workers.
//!
//! Design: one [`LimiterState`] per policy set per Envoy process in shared data
//! (`ballast.<root id>.concurrency.v<layout>.<policy set>`): requests in flight and the learned
//! limit. Admission and release are each one compare-and-swap of that record, so in flight
//! stays within the limit across workers; if every CAS attempt loses, the request is admitted
//! anyway (fail open) and `concurrency_contended` counts it (the other, rarer ways past the
//! limit are listed in README, "Enforcement across workers").
//!
//! In flight is recorded per VM: each VM writes its own true count in every update (a lost
//! write is thus repaired by the next one, at the latest on the next tick) and refreshes it
//! every second while idle. Entries of a VM that stopped (crashed and was replaced under
//! `FAIL_RELOAD`) are removed after 5 s by a surviving VM, and their slots come back
//! (`concurrency_reclaimed`).
//!
//! RTT samples (request headers → response headers, or → end of stream) of admitted requests
//! are aggregated per worker over `window`; when a window is full its summary is fed to the
//! shared algorithm in the same CAS as the release. Local replies and cancelled requests are
//! not samples.
//!
//! A request over the limit waits (paused) in this worker's queue; a slot freed by a release
//! on this worker is handed to a waiter in the same CAS, and `on_tick` (every 10 ms) admits
//! waiters when other workers freed slots and rejects those whose wait ran out. A paused stream
//! is resumed with `set_effective_context` + `resume_http_request`. A waiter whose caller stated
//! a deadline leaves by that deadline less the learned no-load RTT (504 / DEADLINE_EXCEEDED):
//! a slot it got later would serve nobody.

mod entry;
mod reply;

use crate::metrics::ConcurrencyMetrics;
use crate::shared::{self, Update};
use ballast_policy::concurrency::holders::{HolderId, HEARTBEAT_PERIOD};
use ballast_policy::concurrency::queue::{Refused, WaitQueue};
use ballast_policy::concurrency::window::SampleWindow;
use ballast_policy::concurrency::{Holding, LimiterState};
use ballast_policy::config::{ConcurrencyConfig, Measure};
use ballast_policy::duration::Nanos;
use entry::handing_over;
use proxy_wasm::hostcalls;
use reply::Refusal;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

/// Where a paused request stands; shared between its HTTP context and the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ticket {
    /// Still waiting.
    Waiting,
    /// Admitted at this time (holds a slot).
    Admitted(Nanos),
    /// Rejected (a local reply was sent).
    Rejected,
}

/// Outcome of a request's arrival.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arrival {
    /// Admitted now.
    Admitted,
    /// Waiting: pause the request; the ticket changes when it leaves the queue.
    Waiting(Rc<Cell<Ticket>>),
    /// Rejected: a local reply was sent; pause the request.
    Rejected,
}

/// A waiting request's ticket and whether it is gRPC (for the shape of a rejection).
type WaitingRequest = (Rc<Cell<Ticket>>, bool);

/// What the limiter needs to know of a request it cannot admit at once; read from the host only
/// then, so admitted requests pay no header reads for it.
#[derive(Debug, Clone, Copy, Default)]
pub struct OverLimit {
    /// gRPC requests are answered with a grpc-status.
    pub grpc: bool,
    /// The caller's remaining time, if its headers state one.
    pub remaining: Option<Nanos>,
}

/// One policy set's limiter as this VM sees it.
pub struct Limiter {
    key: String,
    config: ConcurrencyConfig,
    metrics: ConcurrencyMetrics,
    window: RefCell<SampleWindow>,
    queue: RefCell<WaitQueue<u32>>,
    /// Waiting requests by context id: their ticket and whether they are gRPC.
    tickets: RefCell<HashMap<u32, WaitingRequest>>,
    /// In flight (all workers) as last seen here; enough for the algorithm's load test.
    last_in_flight: Cell<u32>,
    /// This VM's entry in the shared record (`None` until its first request).
    holder: Cell<Option<HolderId>>,
    /// Slots this VM truly holds; written into its entry with every update.
    held: Cell<u32>,
    /// The queue length this VM last wrote into its entry (the gauge sums the entries).
    written_queued: Cell<u32>,
    /// When this VM last proved it is alive and looked for stopped VMs (every second).
    last_heartbeat: Cell<Nanos>,
    /// Whether the entry is behind `held` because every CAS attempt of an update lost.
    behind: Cell<bool>,
}

impl Limiter {
    /// The limiter of policy set `set_name`; creates its shared record if missing.
    pub fn open(
        scope: &str,
        set_name: &str,
        config: ConcurrencyConfig,
        metrics: ConcurrencyMetrics,
        now: Nanos,
    ) -> Limiter {
        let key = format!(
            "ballast.{scope}.concurrency.v{}.{set_name}",
            LimiterState::VERSION
        );
        shared::ensure(&key, &LimiterState::new(&config.algorithm, now).encode());
        Limiter {
            key,
            queue: RefCell::new(WaitQueue::new(config.queue)),
            window: RefCell::new(SampleWindow::new(now)),
            config,
            metrics,
            tickets: RefCell::new(HashMap::new()),
            last_in_flight: Cell::new(0),
            holder: Cell::new(None),
            held: Cell::new(0),
            written_queued: Cell::new(0),
            last_heartbeat: Cell::new(now),
            behind: Cell::new(false),
        }
    }

    /// Whether a caller's deadline bounds its wait (`queue.respect_deadlines`).
    pub fn respects_deadlines(&self) -> bool {
        self.config.queue.respect_deadlines
    }

    /// A request arrives: admit it, queue it, or reject it (with a local reply).
    pub fn arrive(
        &self,
        context_id: u32,
        now: Nanos,
        dry_run: bool,
        over_limit: impl FnOnce() -> OverLimit,
    ) -> Arrival {
        let me = self.me();
        let result = shared::update(&self.key, |bytes| {
            let mut state = self.state(bytes, now);
            // A worker that stopped must not keep its slots just because no registered worker
            // is left to notice (one worker; or all traffic on one worker's connection).
            let removed = state.remove_dead(now, me.id);
            let (holder, admitted) = state.try_acquire(me, now);
            if !admitted && dry_run {
                let counted = Holding {
                    id: holder,
                    held: me.held.saturating_add(1),
                    ..me
                };
                state.report(counted, now);
            }
            (
                state.encode(),
                (
                    (holder, admitted, removed),
                    state.limit(now),
                    (state.in_flight(), state.queued()),
                    state.noload_rtt(),
                ),
            )
        });
        let mut noload_rtt = 0;
        let admitted = match result {
            Update::Stored(((holder, admitted, removed), limit, (in_flight, queued), noload)) => {
                self.written(holder, me, in_flight, queued);
                self.note_reclaimed(removed);
                noload_rtt = noload;
                self.metrics.limit.set(u64::from(limit));
                if holder.is_none() {
                    // No room to register this VM (more than MAX_HOLDERS): fail open.
                    self.metrics.contended.increment();
                    true
                } else {
                    admitted
                }
            }
            Update::Contended | Update::Failed => {
                // Fail open; the slot is written with this VM's next update.
                self.lost();
                true
            }
        };
        if admitted || dry_run {
            self.add_held(1);
        }
        if admitted {
            return Arrival::Admitted;
        }
        self.window.borrow_mut().mark_turned_away();
        if dry_run {
            self.metrics.rejected.increment();
            return Arrival::Admitted;
        }
        let request = over_limit();
        // The latest admission that can still answer in time: the deadline less an estimate of
        // the fastest answer, the learned no-load RTT of the fastest requests to response
        // headers (0 for aimd and fixed, which learn none; not used when RTTs are measured to
        // the end of the stream, which can be far longer than a caller waits for headers).
        let margin = match self.config.measure {
            Measure::Headers => noload_rtt,
            Measure::EndOfStream => 0,
        };
        let start_by = request
            .remaining
            .map(|remaining| now.saturating_add(remaining).saturating_sub(margin));
        let grpc = request.grpc;
        // The queue's borrow ends here: `reject` below makes host calls.
        let pushed = self.queue.borrow_mut().push(context_id, now, start_by);
        match pushed {
            Ok(()) => {
                let ticket = Rc::new(Cell::new(Ticket::Waiting));
                self.tickets
                    .borrow_mut()
                    .insert(context_id, (ticket.clone(), grpc));
                Arrival::Waiting(ticket)
            }
            Err(Refused::Full) => {
                self.reject(grpc, Refusal::Limit);
                Arrival::Rejected
            }
            Err(Refused::DeadlineTooClose) => {
                self.reject(grpc, Refusal::Deadline);
                Arrival::Rejected
            }
        }
    }

    /// An admitted request finished (`rtt` is `None` when it is not a sample: cancelled, or a
    /// local reply). Frees its slot, or hands it to a local waiter; returns whether a waiter
    /// was resumed (the effective context then points at it: callers restore their own).
    ///
    /// Never answer another stream's waiter from here: this runs inside an HTTP callback, and a
    /// local reply sent during one makes the host stop iteration of the *current* stream
    /// (proxy-wasm-cpp-host's `stopNextIteration`). Waiters past their time are answered by
    /// the tick.
    pub fn release(&self, now: Nanos, rtt: Option<Nanos>, status: u16) -> bool {
        // Only a waiter that can still be answered in time may take the slot; those past their
        // time are answered by the tick.
        let has_waiter = self.queue.borrow().has_live(now);
        let (window_done, summary) = {
            let mut window = self.window.borrow_mut();
            if let Some(rtt) = rtt {
                let in_flight = self.last_in_flight.get();
                window.add(rtt, in_flight, status == 503 || status == 504);
            }
            let due = now.saturating_sub(window.started) >= self.config.window
                && window.count() >= self.config.min_samples;
            if due {
                (true, window.summarize(self.config.aggregate))
            } else {
                (false, None)
            }
        };
        self.add_held(-1);
        let me = self.me();
        let result = shared::update(&self.key, |bytes| {
            let mut state = self.state(bytes, now);
            let mut holder = state.report(me, now);
            if let Some(sample) = summary {
                state.observe(sample, now);
            }
            let mut handed = false;
            if has_waiter {
                (holder, handed) = state.try_acquire(Holding { id: holder, ..me }, now);
                if handed {
                    // The waiter leaves the queue with the slot: write it so at once.
                    state.report(handing_over(holder, me), now);
                }
            }
            (
                state.encode(),
                (
                    holder,
                    handed,
                    state.limit(now),
                    (state.in_flight(), state.queued()),
                    state.last_rtt,
                    state.noload_rtt(),
                ),
            )
        });
        let handed = match result {
            Update::Stored((holder, handed, limit, (in_flight, queued), last_rtt, noload_rtt)) => {
                let written = if handed { handing_over(holder, me) } else { me };
                self.written(holder, written, in_flight, queued);
                if window_done {
                    // Only now: a window whose summary was not stored keeps its samples.
                    *self.window.borrow_mut() = SampleWindow::new(now);
                }
                self.metrics.limit.set(u64::from(limit));
                if summary.is_some() {
                    self.metrics.sample_rtt_us.set(last_rtt / 1_000);
                    self.metrics.min_rtt_us.set(noload_rtt / 1_000);
                }
                handed
            }
            Update::Contended | Update::Failed => {
                self.lost();
                false
            }
        };
        if handed {
            self.add_held(1);
        }
        if !handed {
            return false;
        }
        let next = self.queue.borrow_mut().pop(now);
        match next {
            Some(waiter) => {
                self.resume(waiter.id, now);
                true
            }
            // Not reached (`has_live` found one, and nothing ran since): give the slot back,
            // without a hand-off so this cannot recurse.
            None => {
                self.give_back(now);
                false
            }
        }
    }

    fn resume(&self, context_id: u32, now: Nanos) {
        if let Some((ticket, _)) = self.tickets.borrow_mut().remove(&context_id) {
            ticket.set(Ticket::Admitted(now));
        }
        if hostcalls::set_effective_context(context_id).is_ok() {
            let _ = hostcalls::resume_http_request();
        }
    }

    /// A waiting request's stream went away.
    pub fn abandon(&self, context_id: u32) {
        if self.queue.borrow_mut().remove(context_id) {
            self.tickets.borrow_mut().remove(&context_id);
        }
    }

    /// Periodic work: time out waiters, write this VM's entry when due, admit waiters into
    /// slots freed elsewhere.
    pub fn tick(&self, now: Nanos) {
        let expired = self.queue.borrow_mut().expire(now);
        for waiter in expired {
            let grpc = self
                .tickets
                .borrow_mut()
                .remove(&waiter.id)
                .map(|(ticket, grpc)| {
                    ticket.set(Ticket::Rejected);
                    grpc
                })
                .unwrap_or(false);
            let why = if waiter.deadline_bound {
                Refusal::Deadline
            } else {
                Refusal::Limit
            };
            if hostcalls::set_effective_context(waiter.id).is_ok() {
                if why == Refusal::Limit {
                    self.metrics.queue_timeouts.increment();
                }
                self.reject(grpc, why);
            }
        }
        let registered = self.holder.get().is_some() || self.held.get() > 0;
        let last = self.last_heartbeat.get();
        // A clock that stepped back makes the heartbeat due at once rather than never.
        let heartbeat_due = now < last || now.saturating_sub(last) >= HEARTBEAT_PERIOD;
        let queue_changed = self.me().queued != self.written_queued.get();
        if registered && (self.behind.get() || heartbeat_due || queue_changed) {
            self.heartbeat(now);
        } else if !registered && heartbeat_due {
            self.sweep(now);
        }
        while self.queue.borrow().has_live(now) {
            // Under overload the record is usually full: look before writing, so waiting
            // workers do not add a CAS every tick to the races arrivals must win.
            let full = self
                .peek()
                .is_some_and(|state| state.in_flight() >= state.limit(now));
            if full {
                break;
            }
            let me = self.me();
            let result = shared::update(&self.key, |bytes| {
                let mut state = self.state(bytes, now);
                let (holder, admitted) = state.try_acquire(me, now);
                if admitted {
                    state.report(handing_over(holder, me), now);
                }
                (
                    state.encode(),
                    (holder, admitted, (state.in_flight(), state.queued())),
                )
            });
            let Update::Stored((holder, admitted, (in_flight, queued))) = result else {
                break;
            };
            let written = if admitted {
                handing_over(holder, me)
            } else {
                me
            };
            self.written(holder, written, in_flight, queued);
            if !admitted {
                break;
            }
            self.add_held(1);
            let next = self.queue.borrow_mut().pop(now);
            match next {
                Some(waiter) => self.resume(waiter.id, now),
                None => {
                    self.give_back(now);
                    break;
                }
            }
        }
    }
}
