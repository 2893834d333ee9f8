//! The limiter's state shared by every worker: requests in flight and the learned limit.
//!
//! Why one shared record: Envoy runs one VM per worker; a limit enforced per worker would let
//! through anywhere between limit/N and limit×N requests. Admission (`try_acquire`), release
//! and feeding a window's sample to the algorithm are each one compare-and-swap of this record,
//! so in flight stays within the limit across workers. In flight is kept per VM ([`Holders`])
//! so the slots of a VM that dies come back; the ways the limit can still be exceeded (lost
//! CAS races, a VM wrongly presumed dead) are described there.

use super::holders::{Claim, HolderId, Holders, Removed};
use super::ProbedLimit;
use super::{
    Aimd, AimdParams, Bounds, Gradient2, Gradient2Params, LimitAlgorithm, Sample, Vegas,
    VegasParams,
};
use crate::duration::Nanos;

/// Which algorithm, with its parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AlgorithmParams {
    /// Gradient2.
    Gradient2(Gradient2Params),
    /// Vegas.
    Vegas(VegasParams),
    /// AIMD.
    Aimd(AimdParams),
    /// A fixed limit.
    Fixed(Bounds),
}

impl AlgorithmParams {
    /// A fresh algorithm.
    pub fn start(&self) -> LimitAlgorithm {
        match *self {
            AlgorithmParams::Gradient2(p) => LimitAlgorithm::Gradient2(Gradient2::new(p)),
            AlgorithmParams::Vegas(p) => LimitAlgorithm::Vegas(Vegas::new(p)),
            AlgorithmParams::Aimd(p) => LimitAlgorithm::Aimd(Aimd::new(p)),
            AlgorithmParams::Fixed(b) => LimitAlgorithm::Fixed(b.initial),
        }
    }

    /// Stable name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            AlgorithmParams::Gradient2(_) => "gradient2",
            AlgorithmParams::Vegas(_) => "vegas",
            AlgorithmParams::Aimd(_) => "aimd",
            AlgorithmParams::Fixed(_) => "fixed",
        }
    }
}

/// Shared limiter record.
#[derive(Debug, Clone)]
pub struct LimiterState {
    /// Requests admitted and not yet released, per VM.
    pub holders: Holders,
    /// The algorithm with its learned state.
    pub algorithm: LimitAlgorithm,
    /// The last aggregated RTT fed to the algorithm.
    pub last_rtt: Nanos,
    /// The VM whose update was stored last (`None`: one without an entry, or none yet).
    pub writer: Option<HolderId>,
}

/// What one VM says of itself in an update: its entry (`None` before it has one), the slots its
/// requests truly hold, the spare slots it reserves beyond them (see `concurrency::lease`) and
/// the requests waiting in its queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Holding {
    /// Its entry, if it has one.
    pub id: Option<HolderId>,
    /// Slots its requests hold.
    pub held: u32,
    /// Spare slots it reserves beyond `held`.
    pub spare: u32,
    /// Requests waiting in its queue.
    pub queued: u32,
    /// The rank of its most important waiter (`holders::NO_WAITER`: none).
    pub best: u8,
}

impl Holding {
    /// What it writes of itself in its entry.
    pub fn claim(&self) -> Claim {
        Claim {
            reserved: self.held.saturating_add(self.spare),
            in_flight: self.held,
            queued: self.queued,
            best: self.best,
        }
    }

    /// The same VM with one more slot held (no spare: an acquisition through the record always
    /// weighs against the limit in force, and the lease is settled after it).
    pub fn one_more(self) -> Holding {
        Holding {
            held: self.held.saturating_add(1),
            spare: 0,
            ..self
        }
    }
}

impl LimiterState {
    /// Layout version of [`LimiterState::encode`]; part of the shared-data key, so VMs of two
    /// plugin versions side by side (during a reload) keep separate records instead of
    /// resetting each other's.
    pub const VERSION: u8 = 8;

    /// A fresh record for `params`, created at `now` (which tells its holder ids apart from
    /// those of any earlier record).
    pub fn new(params: &AlgorithmParams, now: Nanos) -> LimiterState {
        let epoch = crate::numeric::low_bits(now ^ (now >> 32));
        LimiterState {
            holders: Holders::new(epoch),
            algorithm: params.start(),
            last_rtt: 0,
            writer: None,
        }
    }

    /// Requests in flight, all VMs, as each last wrote.
    pub fn in_flight(&self) -> u32 {
        self.holders.in_flight()
    }

    /// Slots reserved by all VMs (in flight and spare): what the limit bounds.
    pub fn reserved(&self) -> u32 {
        self.holders.total()
    }

    /// The limit enforced at `now`.
    pub fn limit(&self, now: Nanos) -> u32 {
        self.algorithm.limit_at(now)
    }

    /// The learned no-load RTT (ns; 0 when not learned or the algorithm has none).
    pub fn noload_rtt(&self) -> Nanos {
        let rtt = match &self.algorithm {
            LimitAlgorithm::Gradient2(g) => g.noload_rtt(),
            LimitAlgorithm::Vegas(v) => v.noload_rtt(),
            LimitAlgorithm::Aimd(_) | LimitAlgorithm::Fixed(_) => 0.0,
        };
        crate::numeric::saturating_u64(rtt)
    }

    /// Requests waiting in all VMs' queues, as each last wrote.
    pub fn queued(&self) -> u32 {
        self.holders.queued()
    }

    /// A VM asks for one more slot at `now`: its entry is brought up to date with `me`
    /// (registered if it has none, its spare slots given back), then one slot is added if the
    /// limit allows. Returns its id (`None`: no room to register) and whether it was admitted;
    /// if it was, its entry is `me.one_more()`.
    ///
    /// `rank` is the shedding rank of the request the slot is for: a slot never goes to it
    /// while a more important request waits on any VM (that VM's next tick takes the slot).
    /// Without shedding every rank is 0 and this never holds a slot back.
    pub fn try_acquire(&mut self, me: Holding, rank: u8, now: Nanos) -> (Option<HolderId>, bool) {
        let me = Holding { spare: 0, ..me };
        let Some(id) = self.report(me, now) else {
            return (None, false);
        };
        let outranked = self.holders.best_waiting() < rank;
        if self.reserved() < self.limit(now) && !outranked {
            self.report(Holding { id: Some(id), ..me }.one_more(), now);
            (Some(id), true)
        } else {
            (Some(id), false)
        }
    }

    /// Writes what a VM says of itself at `now` (after releases, or as a heartbeat); returns
    /// its id (`None`: no room to register).
    pub fn report(&mut self, me: Holding, now: Nanos) -> Option<HolderId> {
        self.holders.set(me.id, me.claim(), now)
    }

    /// The spare slots VM `me` may reserve at `now` beyond its requests (see
    /// `concurrency::lease`): none while anyone waits on another VM, else half the room between
    /// the reservations (without its own spare ones) and half the limit, at most
    /// `lease::SPARE_MAX`.
    pub fn spare_room(&self, me: Option<HolderId>, now: Nanos) -> u32 {
        let mine = self.holders.claim_of(me).unwrap_or_default();
        let own_spare = mine.reserved.saturating_sub(mine.in_flight);
        let others_wait = self
            .holders
            .entries()
            .iter()
            .any(|h| Some(h.id) != me && waits(&h.claim));
        super::lease::spare_room(
            self.limit(now),
            self.reserved().saturating_sub(own_spare),
            others_wait,
        )
    }

    /// Removes the entries of VMs not seen for the holder timeout (never `me`'s) and returns
    /// what they held.
    pub fn remove_dead(&mut self, now: Nanos, me: Option<HolderId>) -> Removed {
        self.holders.remove_dead(now, me)
    }

    /// Feeds an aggregated window sample taken at `now`; returns the new limit.
    pub fn observe(&mut self, sample: Sample, now: Nanos) -> u32 {
        self.last_rtt = sample.rtt;
        self.algorithm.update(sample, now)
    }

    /// Signs an update by VM `id`; returns whether the update stored before it was that
    /// VM's too (then no other VM changed the record in between).
    pub fn sign(&mut self, id: Option<HolderId>) -> bool {
        let repeat = id.is_some() && self.writer == id;
        self.writer = id;
        repeat
    }

    /// Whether the algorithm is in slow start.
    pub fn in_slow_start(&self) -> bool {
        matches!(&self.algorithm, LimitAlgorithm::Gradient2(g) if g.in_slow_start())
    }
}

/// Whether an entry says its VM has requests waiting.
pub(super) fn waits(claim: &Claim) -> bool {
    claim.queued > 0 || claim.best != super::holders::NO_WAITER
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::concurrency::noload::ProbeParams;
    use crate::duration::{MILLISECOND, SECOND};
    use crate::test_support::test;

    const GRADIENT: Gradient2Params = Gradient2Params {
        bounds: Bounds {
            initial: 3.0,
            min: 1.0,
            max: 100.0,
        },
        smoothing: 0.2,
        rtt_tolerance: 1.5,
        queue_size: 4.0,
        queue_fraction: 0.0,
        probe: ProbeParams {
            interval: 10 * SECOND,
            duration: 500 * MILLISECOND,
        },
        slow_start: false,
    };

    pub(crate) fn gradient() -> AlgorithmParams {
        AlgorithmParams::Gradient2(GRADIENT)
    }

    fn fixed(limit: u32) -> AlgorithmParams {
        let limit = f64::from(limit);
        AlgorithmParams::Fixed(Bounds {
            initial: limit,
            min: limit,
            max: limit,
        })
    }

    fn vm(id: Option<HolderId>, held: u32) -> Holding {
        Holding {
            id,
            held,
            spare: 0,
            queued: 0,
            best: crate::concurrency::holders::NO_WAITER,
        }
    }

    #[test]
    fn a_slot_is_held_back_for_a_more_important_waiter_on_any_vm() {
        let mut s = LimiterState::new(&gradient(), 0);
        let (a, _) = s.try_acquire(vm(None, 0), 0, 0);
        // VM b has a rank-0 waiter: a rank-2 arrival on VM a gets no slot, rank 0 does.
        let waiting = Holding {
            best: 0,
            queued: 1,
            ..vm(None, 0)
        };
        let (b, _) = s.try_acquire(waiting, 0, 0);
        let (_, admitted) = s.try_acquire(vm(a, 1), 2, 0);
        assert!(!admitted, "outranked by b's waiter");
        assert_eq!(s.in_flight(), 2);
        assert!(s.try_acquire(Holding { id: b, ..waiting }, 0, 0).1);
        // Once b's queue is empty, rank 2 is admitted again (up to the limit of 3: full now).
        s.report(
            Holding {
                id: b,
                held: 1,
                ..vm(b, 1)
            },
            0,
        );
        s.report(vm(a, 0), 0);
        assert!(s.try_acquire(vm(a, 0), 2, 0).1);
    }

    #[test]
    fn acquire_up_to_the_limit_across_vms_then_release() {
        let mut s = LimiterState::new(&gradient(), 0);
        let (a, admitted) = s.try_acquire(vm(None, 0), 0, 0);
        assert!(admitted);
        let (b, admitted) = s.try_acquire(vm(None, 0), 0, 0);
        assert!(admitted && a != b, "a second VM registers separately");
        assert!(s.try_acquire(vm(a, 1), 0, 0).1);
        assert_eq!(
            s.try_acquire(vm(b, 1), 0, 0),
            (b, false),
            "limit 3, across VMs"
        );
        assert_eq!(s.in_flight(), 3);
        s.report(vm(a, 1), 0); // a released one
        assert!(s.try_acquire(vm(b, 1), 0, 0).1);
        assert_eq!(
            (s.holders.held_by(a), s.holders.held_by(b), s.in_flight()),
            (1, 2, 3)
        );
    }

    #[test]
    fn a_dead_vms_slots_come_back() {
        use crate::concurrency::holders::HOLDER_TIMEOUT;
        let mut s = LimiterState::new(&gradient(), 0);
        let (dead, _) = s.try_acquire(vm(None, 0), 0, 0);
        s.try_acquire(vm(dead, 1), 0, 0);
        let (live, _) = s.try_acquire(vm(None, 0), 0, 0);
        assert_eq!(s.try_acquire(vm(live, 1), 0, SECOND), (live, false), "full");
        assert_eq!(s.remove_dead(SECOND + HOLDER_TIMEOUT, live).slots, 2);
        assert_eq!(
            s.try_acquire(vm(live, 1), 0, SECOND + HOLDER_TIMEOUT),
            (live, true)
        );
    }

    #[test]
    fn an_acquisition_gives_spare_slots_back_and_weighs_the_limit_in_force() {
        let mut s = LimiterState::new(&gradient(), 0);
        let leased = Holding {
            spare: 2,
            ..vm(None, 1)
        };
        let a = s.report(leased, 0);
        assert_eq!(
            (s.reserved(), s.in_flight()),
            (3, 1),
            "limit 3: all reserved"
        );
        assert!(
            !s.try_acquire(vm(None, 0), 0, 0).1,
            "another VM finds no room beside the spare slots"
        );
        // Through the record, `a`'s spare slots go back first: then it has room.
        assert_eq!(s.try_acquire(Holding { id: a, ..leased }, 0, 0), (a, true));
        assert_eq!(
            s.holders.claim_of(a).map(|c| (c.reserved, c.in_flight)),
            Some((2, 2))
        );
    }

    #[test]
    fn spare_room_counts_other_reservations_but_not_its_own_spare() {
        let mut s = LimiterState::new(&fixed(40), 0);
        let a = s.report(vm(None, 3), 0);
        assert_eq!(s.spare_room(a, 0), 8, "(20 - 3) / 2, at most 8");
        s.report(
            Holding {
                spare: 8,
                ..vm(a, 3)
            },
            0,
        );
        assert_eq!(
            s.spare_room(a, 0),
            8,
            "its own spare slots are its to re-take"
        );
        let b = s.report(vm(None, 10), 0);
        assert_eq!(s.spare_room(b, 0), 0, "(20 - 21) < 0");
        assert_eq!(s.spare_room(a, 0), 3, "(20 - 13) / 2");
        s.report(
            Holding {
                queued: 1,
                best: 0,
                ..vm(b, 10)
            },
            0,
        );
        assert_eq!(s.spare_room(a, 0), 0, "another VM has a waiter");
    }
}
