//! One policy set's adaptive concurrency limiter as one worker VM runs it: admission, the wait
//! queue, releases and the tick, enforced across workers through a [`SharedStore`].
//!
//! Design: one [`LimiterState`] per policy set per proxy process in the store: the slots each VM
//! reserves, its requests in flight and its queue, and the learned limit. The sum of the
//! reservations stays within the limit, so in flight does across workers. An admission that
//! needs a slot from the record, and a release that gives one back, are each one
//! compare-and-swap of it; if every CAS attempt loses, the request is admitted anyway (fail
//! open) and `concurrency_contended` counts it (the other, rarer ways past the limit are listed
//! in README, "Enforcement across workers").
//!
//! A VM that keeps admitting while the limit is far away reserves a few spare slots beyond its
//! requests (a lease, [`crate::concurrency::lease`]): it admits into them and releases back
//! into them without shared data, looks at the record at every tick while it holds them, and
//! gives them back when anyone waits or the record fills past half the limit.
//!
//! Each VM writes its own true state in every update (a lost write is thus repaired by the next
//! one, at the latest on the next tick) and refreshes it every second. Entries of a VM that
//! stopped (crashed and was replaced) are removed after 5 s by a surviving VM, and their slots
//! come back (`concurrency_reclaimed`).
//!
//! RTT samples (request headers → response headers, or → end of stream) of admitted requests
//! are aggregated per worker over `window`; when a window is full its summary is fed to the
//! shared algorithm in an update at that release. Local replies and cancelled requests are not
//! samples.
//!
//! A request over the limit waits in this worker's queue ([`Arrival::Waiting`]: the caller
//! pauses it). A slot freed by a release on this worker is handed to a waiter in the same CAS
//! ([`Limiter::release`] names the stream to resume), and [`Limiter::tick`] (every 10 ms)
//! admits waiters when other workers freed slots and answers those whose wait ran out. A waiter
//! whose caller stated a deadline leaves by that deadline less the learned no-load RTT (504 /
//! DEADLINE_EXCEEDED): a slot it got later would serve nobody.

mod entry;
mod local;
mod refusal;
mod tick;

use super::holders::HolderId;
use super::queue::{Refused, WaitQueue, Waiter};
use super::window::SampleWindow;
use super::{Glance, Holding, LimiterState};
use crate::config::{ConcurrencyConfig, Measure};
use crate::duration::Nanos;
use crate::env::Env;
use crate::metrics::Metric;
use crate::reply::LocalReply;
use crate::shedding::level::Pressure;
use crate::store::{self, Update};
use entry::{handing_over, Shown};
pub use refusal::Refusal;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

/// A stream, as the host names it (proxy-wasm's context id).
pub type StreamId = u32;

/// Where a paused request stands; shared between its stream and the limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ticket {
    /// Still waiting.
    Waiting,
    /// Admitted at this time (holds a slot).
    Admitted(Nanos),
    /// Rejected (answered with a local reply).
    Rejected,
}

/// Outcome of a request's arrival.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arrival {
    /// Admitted now.
    Admitted,
    /// Waiting: pause the request; the ticket changes when it leaves the queue.
    Waiting(Rc<Cell<Ticket>>),
    /// Rejected: send this reply (the request stays paused).
    Rejected(LocalReply, Refusal),
}

/// What the limiter needs to know of a request it cannot admit at once; the caller reads it
/// only then, so admitted requests pay no header reads for it.
#[derive(Debug, Clone, Copy, Default)]
pub struct OverLimit {
    /// gRPC requests are answered with a grpc-status.
    pub grpc: bool,
    /// The caller's remaining time, if its headers state one.
    pub remaining: Option<Nanos>,
}

/// What a tick decided: streams to answer (whose wait ran out), then streams to resume
/// (admitted into slots freed elsewhere).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TickOutcome {
    /// Answer each of these streams with its reply (and why).
    pub reject: Vec<(StreamId, LocalReply, Refusal)>,
    /// Resume each of these streams: it holds a slot now.
    pub resume: Vec<StreamId>,
}

/// A waiting request's ticket and whether it is gRPC (for the shape of a rejection).
type WaitingRequest = (Rc<Cell<Ticket>>, bool);

/// One policy set's limiter as this VM sees it.
pub struct Limiter {
    key: String,
    config: ConcurrencyConfig,
    window: RefCell<SampleWindow>,
    queue: RefCell<WaitQueue<StreamId>>,
    /// Waiting requests by stream: their ticket and whether they are gRPC.
    tickets: RefCell<HashMap<StreamId, WaitingRequest>>,
    /// In flight on the other workers as last seen here; with this VM's own count, the load
    /// a window's sample reports.
    others_in_flight: Cell<u32>,
    /// This VM's entry in the shared record (`None` until its first request).
    holder: Cell<Option<HolderId>>,
    /// Requests this VM admitted and has not released: the slots it truly holds.
    held: Cell<u32>,
    /// Slots its entry reserves (held and spare) as last written.
    reserved: Cell<u32>,
    /// Whether its entry reserves spare slots that it fills and releases into without shared
    /// data (a lease, see `concurrency::lease`).
    leasing: Cell<bool>,
    /// When it last admitted a request (`None`: never): a lease is held only while it does.
    last_admit: Cell<Option<Nanos>>,
    /// The queue length this VM last wrote into its entry (the gauge sums the entries).
    written_queued: Cell<u32>,
    /// The best waiting rank this VM last wrote into its entry.
    written_best: Cell<u8>,
    /// When this VM last proved it is alive and looked for stopped VMs (every second).
    last_heartbeat: Cell<Nanos>,
    /// Whether the entry is behind `held` because every CAS attempt of an update lost.
    behind: Cell<bool>,
    /// Waiters displaced from the full queue, to answer at the next tick (never inside another
    /// stream's callback, see [`Limiter::release`]): stream and whether it is gRPC.
    displaced: RefCell<Vec<(StreamId, bool)>>,
    /// What the queue saw since load shedding last asked ([`Limiter::take_pressure`]).
    pressure: Cell<Pressure>,
    /// Whether the algorithm was in slow start when this VM last read the record.
    slow_start: Cell<bool>,
    /// The gauges as this VM last wrote them.
    shown: Cell<Shown>,
    /// The record as the update under way decoded it; kept between updates for its memory
    /// (boxed, so that the limiter itself stays small).
    scratch: RefCell<Box<LimiterState>>,
}

impl Limiter {
    /// The limiter stored under `key` (one per policy set and plugin instance); creates its
    /// shared record if missing.
    pub fn open(env: Env<'_>, key: String, config: ConcurrencyConfig, now: Nanos) -> Limiter {
        let fresh = LimiterState::new(&config.algorithm, now);
        store::ensure(env.store, &key, &fresh.encode());
        Limiter {
            key,
            queue: RefCell::new(WaitQueue::new(config.queue)),
            window: RefCell::new(SampleWindow::new(now)),
            config,
            tickets: RefCell::new(HashMap::new()),
            others_in_flight: Cell::new(0),
            holder: Cell::new(None),
            held: Cell::new(0),
            reserved: Cell::new(0),
            leasing: Cell::new(false),
            last_admit: Cell::new(None),
            written_queued: Cell::new(0),
            written_best: Cell::new(super::holders::NO_WAITER),
            last_heartbeat: Cell::new(now),
            behind: Cell::new(false),
            displaced: RefCell::new(Vec::new()),
            pressure: Cell::new(Pressure::default()),
            slow_start: Cell::new(false),
            shown: Cell::new(Shown::default()),
            scratch: RefCell::new(Box::new(fresh)),
        }
    }

    /// Load shedding refuses some requests of `rank` at the door: that rank overflows, and an
    /// adaptive queue serves it newest first.
    pub fn rank_overflows(&self, rank: u8, now: Nanos) {
        self.queue.borrow_mut().note_overflow(rank, now);
    }

    /// The queue's pressure since the last call (for load shedding's admission level).
    pub fn take_pressure(&self) -> Pressure {
        self.pressure.take()
    }

    /// Counts a refusal for want of room or time: as a waiter that waited the whole
    /// `max_wait` (a timed-out waiter did; a full or displacing queue is as bad).
    fn pressure_refused(&self) {
        let mut pressure = self.pressure.get();
        pressure.left_queue(self.config.queue.max_wait, true);
        self.pressure.set(pressure);
    }

    /// The shared-data key of its record, `<prefix>.concurrency.v<layout>.<policy set>`.
    pub fn key_for(prefix: &str, set_name: &str) -> String {
        format!("{prefix}.concurrency.v{}.{set_name}", LimiterState::VERSION)
    }

    /// Whether a caller's deadline bounds its wait (`queue.respect_deadlines`).
    pub fn respects_deadlines(&self) -> bool {
        self.config.queue.respect_deadlines
    }

    /// Whether RTTs end at the response headers (else at the end of the stream).
    pub fn measures_at_headers(&self) -> bool {
        self.config.measure == Measure::Headers
    }

    /// A request arrives: admit it, queue it, or reject it. `over_limit` is asked only when it
    /// cannot be admitted at once.
    ///
    /// `rank` is the request's shedding rank (`None` without shedding): the queue serves the
    /// most important first, and the first attempts of the most important class (rank 0)
    /// may wait twice `max_wait`, since they are the work shedding exists to keep.
    pub fn arrive(
        &self,
        env: Env<'_>,
        stream: StreamId,
        rank: Option<u8>,
        now: Nanos,
        dry_run: bool,
        over_limit: impl FnOnce() -> OverLimit,
    ) -> Arrival {
        let (patience, rank) = match rank {
            Some(0) => (2, 0),
            Some(rank) => (1, rank),
            None => (1, 0),
        };
        if self.admit_locally(now) {
            return Arrival::Admitted;
        }
        let me = self.me();
        let lease = self.wants_lease(now);
        let result = store::update(env.store, &self.key, |bytes| {
            let mut state = self.state(bytes, now);
            // A worker that stopped must not keep its slots just because no registered worker
            // is left to notice (one worker; or all traffic on one worker's connection).
            let removed = state.remove_dead(now, me.id);
            let (holder, admitted) = state.try_acquire(me, rank, now);
            let mut written = Holding { id: holder, ..me };
            if admitted {
                written = settle_lease(&mut state, written.one_more(), lease, now);
            } else if dry_run {
                written = written.one_more();
                state.report(written, now);
            }
            let seen = Glance::after_update(&mut state, holder, now);
            (
                state.encode(),
                (Acquired { holder, admitted }, written, removed, seen),
            )
        });
        let mut noload_rtt = 0;
        let admitted = match result {
            Update::Stored((acquired, written, removed, seen)) => {
                self.written(env, acquired.holder, written, seen);
                self.note_reclaimed(env, removed);
                noload_rtt = seen.noload_rtt;
                if acquired.holder.is_none() {
                    // No room to register this VM (more than MAX_HOLDERS): fail open.
                    env.metrics.add(Metric::ConcurrencyContended, 1);
                    true
                } else {
                    acquired.admitted
                }
            }
            Update::Contended | Update::Failed => {
                // Fail open; the slot is written with this VM's next update.
                self.lost(env);
                true
            }
        };
        if admitted || dry_run {
            self.add_held(1);
            self.last_admit.set(Some(now));
        }
        if admitted {
            return Arrival::Admitted;
        }
        self.window.borrow_mut().mark_turned_away();
        if dry_run {
            env.metrics.add(Metric::ConcurrencyRejected, 1);
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
        let pushed = self
            .queue
            .borrow_mut()
            .push_patient(stream, now, start_by, rank, patience);
        match pushed {
            Ok(displaced) => {
                if let Some(waiter) = displaced {
                    self.displace(waiter.id);
                }
                let ticket = Rc::new(Cell::new(Ticket::Waiting));
                self.tickets
                    .borrow_mut()
                    .insert(stream, (ticket.clone(), request.grpc));
                Arrival::Waiting(ticket)
            }
            Err(Refused::Full) => Arrival::Rejected(
                self.refuse(env, request.grpc, Refusal::Limit),
                Refusal::Limit,
            ),
            Err(Refused::DeadlineTooClose) => Arrival::Rejected(
                self.refuse(env, request.grpc, Refusal::Deadline),
                Refusal::Deadline,
            ),
        }
    }

    /// A waiter lost its place to a more important arrival: it is refused (its ticket says so
    /// at once, so its stream settles as a local reply) and answered at the next tick.
    fn displace(&self, stream: StreamId) {
        let grpc = self.reject_ticket(stream);
        self.displaced.borrow_mut().push((stream, grpc));
    }

    /// A waiter leaves the queue refused: its ticket says so. Returns whether it is gRPC.
    fn reject_ticket(&self, stream: StreamId) -> bool {
        self.tickets
            .borrow_mut()
            .remove(&stream)
            .map(|(ticket, grpc)| {
                ticket.set(Ticket::Rejected);
                grpc
            })
            .unwrap_or(false)
    }

    /// An admitted request finished (`rtt` is `None` when it is not a sample: cancelled, or a
    /// local reply). Frees its slot, or hands it to a local waiter: returns the stream to
    /// resume, if any.
    ///
    /// Never answers another stream's waiter: this runs inside an HTTP callback, and a local
    /// reply sent during one makes the host stop iteration of the *current* stream
    /// (proxy-wasm-cpp-host's `stopNextIteration`). Waiters past their time are answered by
    /// the tick.
    pub fn release(
        &self,
        env: Env<'_>,
        now: Nanos,
        rtt: Option<Nanos>,
        status: u16,
    ) -> Option<StreamId> {
        // Only a waiter that can still be answered in time may take the slot.
        let has_waiter = self.queue.borrow().has_live(now);
        let (window_done, summary) = {
            let mut window = self.window.borrow_mut();
            if let Some(rtt) = rtt {
                let in_flight = self.others_in_flight.get().saturating_add(self.held.get());
                window.add(rtt, in_flight, is_congestion(status));
            }
            // Slow start grows the limit once per window: its windows are half as long, so a
            // ramp waits less for room (the rise it looks for shows within half a window).
            let length = if self.slow_start.get() {
                self.config.window / 2
            } else {
                self.config.window
            };
            let due = now.saturating_sub(window.started) >= length
                && window.count() >= self.config.min_samples;
            if due {
                (true, window.summarize(self.config.aggregate))
            } else {
                (false, None)
            }
        };
        if summary.is_none() && !has_waiter && self.release_locally() {
            return None;
        }
        self.add_held(-1);
        let me = self.me();
        let lease = !has_waiter && self.wants_lease(now);
        let result = store::update(env.store, &self.key, |bytes| {
            let mut state = self.state(bytes, now);
            let holder = state.report(me, now);
            if let Some(sample) = summary {
                state.observe(sample, now);
            }
            let mut acquired = Acquired {
                holder,
                admitted: false,
            };
            let mut written = Holding { id: holder, ..me };
            if has_waiter {
                (acquired.holder, acquired.admitted) = state.try_acquire(written, me.best, now);
                if acquired.admitted {
                    // The waiter leaves the queue with the slot: write it so at once.
                    written = handing_over(acquired.holder, me);
                    state.report(written, now);
                }
            } else {
                written = settle_lease(&mut state, written, lease, now);
            }
            let seen = Glance::after_update(&mut state, acquired.holder, now);
            (state.encode(), (acquired, written, seen))
        });
        let handed = match result {
            Update::Stored((acquired, written, seen)) => {
                self.written(env, acquired.holder, written, seen);
                if window_done {
                    // Only now: a window whose summary was not stored keeps its samples.
                    *self.window.borrow_mut() = SampleWindow::new(now);
                }
                if summary.is_some() {
                    env.metrics
                        .set(Metric::ConcurrencySampleRttUs, seen.last_rtt / 1_000);
                    env.metrics
                        .set(Metric::ConcurrencyMinRttUs, seen.noload_rtt / 1_000);
                }
                acquired.admitted
            }
            Update::Contended | Update::Failed => {
                self.lost(env);
                false
            }
        };
        if !handed {
            return None;
        }
        self.add_held(1);
        let next = self.queue.borrow_mut().pop(now);
        match next {
            Some(waiter) => Some(self.admit_waiter(waiter, now)),
            // Not reached (`has_live` found one, and nothing ran since): give the slot back,
            // without a hand-off so this cannot recurse.
            None => {
                self.give_back(env, now);
                None
            }
        }
    }

    /// A waiting request's stream went away.
    pub fn abandon(&self, stream: StreamId) {
        if self.queue.borrow_mut().remove(stream) {
            self.tickets.borrow_mut().remove(&stream);
        }
        // Displaced but not answered yet: nobody is left to answer.
        self.displaced.borrow_mut().retain(|(id, _)| *id != stream);
    }

    /// A waiter leaves the queue holding a slot: its ticket says so, and its wait counts.
    fn admit_waiter(&self, waiter: Waiter<StreamId>, now: Nanos) -> StreamId {
        if let Some((ticket, _)) = self.tickets.borrow_mut().remove(&waiter.id) {
            ticket.set(Ticket::Admitted(now));
        }
        let mut pressure = self.pressure.get();
        pressure.left_queue(now.saturating_sub(waiter.since), false);
        self.pressure.set(pressure);
        waiter.id
    }
}

/// The response statuses that say the upstream is congested (a sample of a dropped request).
fn is_congestion(status: u16) -> bool {
    status == 503 || status == 504
}

/// What an update acquired: this VM's entry (`None`: no room to register) and whether a slot
/// was added.
#[derive(Debug, Clone, Copy)]
struct Acquired {
    holder: Option<HolderId>,
    admitted: bool,
}

/// Settles VM `me`'s spare slots in an update of `state` at `now`: as many as the lease rules
/// allow when `lease` (it admits requests and nobody waits on it), else none. Returns what it
/// wrote. Without an entry (no room to register) nothing is written.
fn settle_lease(state: &mut LimiterState, me: Holding, lease: bool, now: Nanos) -> Holding {
    if me.id.is_none() {
        return me;
    }
    let written = Holding {
        spare: if lease {
            state.spare_room(me.id, now)
        } else {
            0
        },
        ..me
    };
    state.report(written, now);
    written
}
