//! The limiter's state shared by every worker: requests in flight and the learned limit.
//!
//! Why one shared record: Envoy runs one VM per worker; a limit enforced per worker would let
//! through anywhere between limit/N and limit×N requests. Admission (`try_acquire`), release
//! and feeding a window's sample to the algorithm are each one compare-and-swap of this record,
//! so in flight stays within the limit across workers. In flight is kept per VM ([`Holders`])
//! so the slots of a VM that dies come back; the ways the limit can still be exceeded (lost
//! CAS races, a VM wrongly presumed dead) are described there.

use super::holders::{HolderId, Holders, Removed};
use super::noload::NoLoadSnapshot;
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
}

/// What one VM says of itself in an update: its entry (`None` before it has one), the slots it
/// truly holds and the requests waiting in its queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Holding {
    /// Its entry, if it has one.
    pub id: Option<HolderId>,
    /// Slots it holds.
    pub held: u32,
    /// Requests waiting in its queue.
    pub queued: u32,
    /// The rank of its most important waiter (`holders::NO_WAITER`: none).
    pub best: u8,
}

/// Length of the fixed part of the encoding (the holders follow).
const FIXED_LEN: usize = 1 + 8 + 8 + 8 + 8 + 8 + 8 + 4 + 8 + 8 + 1 + 8 + 8;

impl LimiterState {
    /// Layout version of [`LimiterState::encode`]; part of the shared-data key, so VMs of two
    /// plugin versions side by side (during a reload) keep separate records instead of
    /// resetting each other's.
    pub const VERSION: u8 = 6;

    /// A fresh record for `params`, created at `now` (which tells its holder ids apart from
    /// those of any earlier record).
    pub fn new(params: &AlgorithmParams, now: Nanos) -> LimiterState {
        let epoch = crate::numeric::low_bits(now ^ (now >> 32));
        LimiterState {
            holders: Holders::new(epoch),
            algorithm: params.start(),
            last_rtt: 0,
        }
    }

    /// Requests admitted and not yet released, all VMs.
    pub fn in_flight(&self) -> u32 {
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
    /// (registered if it has none), then one slot is added if the limit allows. Returns its id
    /// (`None`: no room to register) and whether it was admitted.
    ///
    /// `rank` is the shedding rank of the request the slot is for: a slot never goes to it
    /// while a more important request waits on any VM (that VM's next tick takes the slot).
    /// Without shedding every rank is 0 and this never holds a slot back.
    pub fn try_acquire(&mut self, me: Holding, rank: u8, now: Nanos) -> (Option<HolderId>, bool) {
        let Some(id) = self.report(me, now) else {
            return (None, false);
        };
        let outranked = self.holders.best_waiting() < rank;
        if self.in_flight() < self.limit(now) && !outranked {
            let one_more = Holding {
                id: Some(id),
                held: me.held.saturating_add(1),
                ..me
            };
            self.report(one_more, now);
            (Some(id), true)
        } else {
            (Some(id), false)
        }
    }

    /// Writes what a VM says of itself at `now` (after releases, or as a heartbeat); returns
    /// its id (`None`: no room to register).
    pub fn report(&mut self, me: Holding, now: Nanos) -> Option<HolderId> {
        self.holders
            .set_ranked(me.id, me.held, me.queued, me.best, now)
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

    /// Whether the algorithm is in slow start.
    pub fn in_slow_start(&self) -> bool {
        matches!(&self.algorithm, LimitAlgorithm::Gradient2(g) if g.in_slow_start())
    }

    /// Bytes for shared data.
    pub fn encode(&self) -> Vec<u8> {
        let (limit, noload) = match &self.algorithm {
            LimitAlgorithm::Gradient2(g) => g.snapshot(),
            LimitAlgorithm::Vegas(v) => v.snapshot(),
            LimitAlgorithm::Aimd(a) => (a.limit(), NoLoadSnapshot::default()),
            LimitAlgorithm::Fixed(l) => (*l, NoLoadSnapshot::default()),
        };
        let (slow_start, slow_start_grew_at, slow_start_base) = match &self.algorithm {
            LimitAlgorithm::Gradient2(g) => g.slow_start_state(),
            _ => (false, 0, 0.0),
        };
        let mut out = Vec::with_capacity(FIXED_LEN + self.holders.encoded_len());
        out.push(Self::VERSION);
        out.extend_from_slice(&self.last_rtt.to_le_bytes());
        out.extend_from_slice(&limit.to_le_bytes());
        out.extend_from_slice(&noload.rtt.to_le_bytes());
        out.extend_from_slice(&noload.next_probe.to_le_bytes());
        out.extend_from_slice(&noload.probing_since.to_le_bytes());
        out.extend_from_slice(&noload.probe_sum.to_le_bytes());
        out.extend_from_slice(&noload.probe_windows.to_le_bytes());
        out.extend_from_slice(&noload.rise_since.to_le_bytes());
        out.extend_from_slice(&noload.last_fastest.to_le_bytes());
        out.push(
            u8::from(noload.probed)
                | (u8::from(noload.for_rise) << 1)
                | (u8::from(noload.pending_rise) << 2)
                | (u8::from(slow_start) << 3),
        );
        out.extend_from_slice(&slow_start_base.to_le_bytes());
        out.extend_from_slice(&slow_start_grew_at.to_le_bytes());
        self.holders.encode_into(&mut out);
        out
    }

    /// Parses [`LimiterState::encode`] output for `params`; `None` when malformed.
    pub fn decode(params: &AlgorithmParams, bytes: &[u8]) -> Option<LimiterState> {
        if bytes.len() < FIXED_LEN || bytes.first() != Some(&Self::VERSION) {
            return None;
        }
        let u32_at = |at: usize| {
            bytes
                .get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_le_bytes)
        };
        let u64_at = |at: usize| {
            bytes
                .get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
        };
        let f64_at = |at: usize| u64_at(at).map(f64::from_bits);
        let last_rtt = u64_at(1)?;
        let limit = f64_at(9)?;
        let flags = *bytes.get(69)?;
        let holders = Holders::decode(bytes.get(FIXED_LEN..)?)?;
        let noload = NoLoadSnapshot {
            rtt: f64_at(17)?,
            next_probe: u64_at(25)?,
            probing_since: u64_at(33)?,
            probe_sum: f64_at(41)?,
            probe_windows: u32_at(49)?,
            rise_since: u64_at(53)?,
            last_fastest: f64_at(61)?,
            probed: flags & 1 != 0,
            for_rise: flags & 2 != 0,
            pending_rise: flags & 4 != 0,
        };
        let algorithm = match *params {
            AlgorithmParams::Gradient2(p) => LimitAlgorithm::Gradient2(Gradient2::restore(
                p,
                (limit, noload),
                (flags & 8 != 0, u64_at(78)?, f64_at(70)?),
            )),
            AlgorithmParams::Vegas(p) => LimitAlgorithm::Vegas(Vegas::restore(p, (limit, noload))),
            AlgorithmParams::Aimd(p) => LimitAlgorithm::Aimd(Aimd::restore(p, limit)),
            AlgorithmParams::Fixed(b) => LimitAlgorithm::Fixed(b.initial),
        };
        Some(LimiterState {
            holders,
            algorithm,
            last_rtt,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::concurrency::noload::ProbeParams;
    use crate::concurrency::script::steady;
    use crate::duration::{MILLISECOND, SECOND};
    use crate::test_support::test;

    fn gradient() -> AlgorithmParams {
        AlgorithmParams::Gradient2(Gradient2Params {
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
        })
    }

    fn vm(id: Option<HolderId>, held: u32) -> Holding {
        Holding {
            id,
            held,
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
        assert_eq!(s.remove_dead(SECOND + HOLDER_TIMEOUT, live).held, 2);
        assert_eq!(
            s.try_acquire(vm(live, 1), 0, SECOND + HOLDER_TIMEOUT),
            (live, true)
        );
    }

    #[test]
    fn round_trips_learned_state() {
        let params = gradient();
        let mut s = LimiterState::new(&params, 0);
        s.report(
            Holding {
                id: None,
                held: 2,
                queued: 1,
                best: 3,
            },
            5,
        );
        for (i, sample) in (1..).zip(steady(150, 10, 100)) {
            s.observe(sample, i * 100 * MILLISECOND);
        }
        assert!(
            matches!(&s.algorithm, LimitAlgorithm::Gradient2(g) if g.noload_rtt() > 0.0),
            "learned a no-load RTT"
        );
        let decoded = LimiterState::decode(&params, &s.encode()).unwrap();
        assert_eq!((decoded.in_flight(), decoded.queued()), (2, 1));
        assert_eq!(decoded.holders.best_waiting(), 3);
        assert_eq!(decoded.holders, s.holders);
        assert_eq!(decoded.limit(0), s.limit(0));
        assert_eq!(decoded.last_rtt, s.last_rtt);
        assert_eq!(decoded.encode(), s.encode());
        assert!(LimiterState::decode(&params, &[1, 2, 3]).is_none());
        let fixed = AlgorithmParams::Fixed(Bounds {
            initial: 7.0,
            min: 7.0,
            max: 7.0,
        });
        assert_eq!(LimiterState::new(&fixed, 0).limit(0), 7);
    }
}
