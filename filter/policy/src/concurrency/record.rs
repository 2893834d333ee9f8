//! The limiter record's bytes in shared data, and a look at them that changes nothing.
//!
//! Why apart from the state: the layout is one decision (versioned, part of the shared-data
//! key), and a worker that only looks (a lease check at its tick, a waiting worker before it
//! tries, an idle worker's sweep) should not pay for building the whole state: [`Glance::read`]
//! reads the totals it needs in place, without allocating, where [`LimiterState::decode`]
//! builds the holder table that an update changes.

use super::holders::{self, Claim, Encoded, HolderId, Holders, NO_WAITER};
use super::noload::NoLoadSnapshot;
use super::state::waits;
use super::{Aimd, AlgorithmParams, Gradient2, LimitAlgorithm, LimiterState, ProbedLimit, Vegas};
use crate::duration::Nanos;

/// Words (little-endian `u64`) of the fixed part of the encoding; the holders follow.
///
/// 0: layout version (low byte), flags (next byte: probed, probe for a rise, rise pending,
///    slow start, a writer is named), probe windows (high half); 1: last RTT; 2: learned limit;
/// 3: no-load RTT; 4: next probe; 5: probing since; 6: probe sum; 7: rise since; 8: last
/// fastest; 9: slow start's base RTT; 10: when slow start last grew; 11: the last writer.
/// Whole words, so that encoding is one copy of an array and decoding reads words at fixed
/// places.
const FIXED_WORDS: usize = 12;
/// Bytes of the fixed part.
const FIXED_LEN: usize = 8 * FIXED_WORDS;

impl LimiterState {
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
        let flags = u8::from(noload.probed)
            | (u8::from(noload.for_rise) << 1)
            | (u8::from(noload.pending_rise) << 2)
            | (u8::from(slow_start) << 3)
            | (u8::from(self.writer.is_some()) << 4);
        let words: [u64; FIXED_WORDS] = [
            u64::from(Self::VERSION)
                | (u64::from(flags) << 8)
                | (u64::from(noload.probe_windows) << 32),
            self.last_rtt,
            limit.to_bits(),
            noload.rtt.to_bits(),
            noload.next_probe,
            noload.probing_since,
            noload.probe_sum.to_bits(),
            noload.rise_since,
            noload.last_fastest.to_bits(),
            slow_start_base.to_bits(),
            slow_start_grew_at,
            self.writer.unwrap_or(0),
        ];
        let mut out = Vec::with_capacity(FIXED_LEN + self.holders.encoded_len());
        out.extend_from_slice(words.map(u64::to_le_bytes).as_flattened());
        self.holders.encode_into(&mut out);
        out
    }

    /// Parses [`LimiterState::encode`] output for `params`; `None` when malformed.
    pub fn decode(params: &AlgorithmParams, bytes: &[u8]) -> Option<LimiterState> {
        let fixed = decode_fixed(params, bytes)?;
        Some(LimiterState {
            holders: Holders::decode(bytes.get(FIXED_LEN..)?)?,
            algorithm: fixed.algorithm,
            last_rtt: fixed.last_rtt,
            writer: fixed.writer,
        })
    }

    /// [`LimiterState::decode`] into this state, reusing its holder table's memory. Returns
    /// whether `bytes` were well-formed (if not, this state is left as it was).
    pub fn decode_into(&mut self, params: &AlgorithmParams, bytes: &[u8]) -> bool {
        let Some(fixed) = decode_fixed(params, bytes) else {
            return false;
        };
        let Some(table) = bytes.get(FIXED_LEN..) else {
            return false;
        };
        if !self.holders.decode_from(table) {
            return false;
        }
        self.algorithm = fixed.algorithm;
        self.last_rtt = fixed.last_rtt;
        self.writer = fixed.writer;
        true
    }
}

/// The fixed part of the encoding.
struct Fixed {
    algorithm: LimitAlgorithm,
    last_rtt: Nanos,
    writer: Option<HolderId>,
}

/// Parses the fixed part of the encoding for `params`.
fn decode_fixed(params: &AlgorithmParams, bytes: &[u8]) -> Option<Fixed> {
    let mut rest = bytes.get(..FIXED_LEN)?;
    let mut next = || match rest.split_first_chunk::<8>() {
        Some((word, tail)) => {
            rest = tail;
            u64::from_le_bytes(*word)
        }
        None => 0,
    };
    let head = next();
    let [last_rtt, limit, rtt, next_probe, probing_since, probe_sum, rise_since, last_fastest, base, grew_at, writer] =
        [(); FIXED_WORDS - 1].map(|()| next());
    if head & 0xff != u64::from(LimiterState::VERSION) {
        return None;
    }
    let flags = (head >> 8) & 0xff;
    let noload = NoLoadSnapshot {
        rtt: f64::from_bits(rtt),
        next_probe,
        probing_since,
        probe_sum: f64::from_bits(probe_sum),
        probe_windows: crate::numeric::low_bits(head >> 32),
        rise_since,
        last_fastest: f64::from_bits(last_fastest),
        probed: flags & 1 != 0,
        for_rise: flags & 2 != 0,
        pending_rise: flags & 4 != 0,
    };
    let limit = f64::from_bits(limit);
    let algorithm = match *params {
        AlgorithmParams::Gradient2(p) => LimitAlgorithm::Gradient2(Gradient2::restore(
            p,
            (limit, noload),
            (flags & 8 != 0, grew_at, f64::from_bits(base)),
        )),
        AlgorithmParams::Vegas(p) => LimitAlgorithm::Vegas(Vegas::restore(p, (limit, noload))),
        AlgorithmParams::Aimd(p) => LimitAlgorithm::Aimd(Aimd::restore(p, limit)),
        AlgorithmParams::Fixed(b) => LimitAlgorithm::Fixed(b.initial),
    };
    Some(Fixed {
        algorithm,
        last_rtt,
        writer: (flags & 16 != 0).then_some(writer),
    })
}

/// The record as one VM sees it at `now`: the totals its gauges show, what its lease and its
/// waiters depend on, and its own entry as stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Glance {
    /// The limit in force.
    pub limit: u32,
    /// Slots reserved by all VMs.
    pub reserved: u32,
    /// Requests in flight on all VMs, as each last wrote.
    pub in_flight: u32,
    /// Requests waiting on all VMs, as each last wrote.
    pub queued: u32,
    /// The most important rank waiting on any VM ([`NO_WAITER`]: none).
    pub best_waiting: u8,
    /// Whether a VM other than this one has requests waiting.
    pub others_wait: bool,
    /// This VM's entry (`None`: it has none, or it was removed).
    pub mine: Option<Claim>,
    /// Whether an entry is old enough to be removed as a stopped VM's.
    pub has_dead: bool,
    /// Whether the algorithm is in slow start.
    pub slow_start: bool,
    /// The last aggregated RTT fed to the algorithm.
    pub last_rtt: Nanos,
    /// The learned no-load RTT (0: none).
    pub noload_rtt: Nanos,
    /// After an update by this VM: whether the update stored before it was this VM's too.
    pub repeat: bool,
}

impl Glance {
    /// How `state` looks to VM `me` at `now`.
    pub fn of(state: &LimiterState, me: Option<HolderId>, now: Nanos) -> Glance {
        let mut glance = Glance::of_algorithm(&state.algorithm, state.last_rtt, now);
        for h in state.holders.entries() {
            glance.count(h, me, now);
        }
        glance
    }

    /// How `state` looks to VM `me` after an update of `me`'s at `now` (`None`: a VM without
    /// an entry), which this signs.
    pub fn after_update(state: &mut LimiterState, me: Option<HolderId>, now: Nanos) -> Glance {
        let repeat = state.sign(me);
        Glance {
            repeat,
            ..Glance::of(state, me, now)
        }
    }

    /// How the encoded record looks to VM `me` at `now`, read in place (`None` when
    /// malformed or of another layout).
    pub fn read(
        params: &AlgorithmParams,
        bytes: &[u8],
        me: Option<HolderId>,
        now: Nanos,
    ) -> Option<Glance> {
        let fixed = decode_fixed(params, bytes)?;
        let table = Encoded::parse(bytes.get(FIXED_LEN..)?)?;
        let mut glance = Glance::of_algorithm(&fixed.algorithm, fixed.last_rtt, now);
        for h in table.entries() {
            glance.count(&h, me, now);
        }
        Some(glance)
    }

    /// Requests in flight on the other VMs, as they last wrote.
    pub fn others_in_flight(&self) -> u32 {
        self.in_flight
            .saturating_sub(self.mine.map_or(0, |c| c.in_flight))
    }

    fn of_algorithm(algorithm: &LimitAlgorithm, last_rtt: Nanos, now: Nanos) -> Glance {
        let noload_rtt = match algorithm {
            LimitAlgorithm::Gradient2(g) => g.noload_rtt(),
            LimitAlgorithm::Vegas(v) => v.noload_rtt(),
            LimitAlgorithm::Aimd(_) | LimitAlgorithm::Fixed(_) => 0.0,
        };
        Glance {
            limit: algorithm.limit_at(now),
            best_waiting: NO_WAITER,
            slow_start: matches!(algorithm, LimitAlgorithm::Gradient2(g) if g.in_slow_start()),
            last_rtt,
            noload_rtt: crate::numeric::saturating_u64(noload_rtt),
            ..Glance::default()
        }
    }

    fn count(&mut self, h: &holders::Holder, me: Option<HolderId>, now: Nanos) {
        let c = &h.claim;
        self.reserved = self.reserved.saturating_add(c.reserved);
        self.in_flight = self.in_flight.saturating_add(c.in_flight);
        self.queued = self.queued.saturating_add(c.queued);
        self.best_waiting = self.best_waiting.min(c.best);
        if Some(h.id) == me {
            self.mine = Some(*c);
        } else {
            self.others_wait |= waits(c);
        }
        self.has_dead |= !holders::is_alive(h, now, me);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::concurrency::script::steady;
    use crate::concurrency::state::tests::gradient;
    use crate::concurrency::{Bounds, Holding};
    use crate::duration::{MILLISECOND, SECOND};
    use crate::test_support::test;

    #[test]
    fn round_trips_learned_state() {
        let params = gradient();
        let mut s = LimiterState::new(&params, 0);
        s.report(
            Holding {
                id: None,
                held: 2,
                spare: 3,
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
        assert_eq!(
            (decoded.in_flight(), decoded.reserved(), decoded.queued()),
            (2, 5, 1)
        );
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

    #[test]
    fn a_glance_at_the_bytes_sees_what_the_decoded_state_shows() {
        let params = gradient();
        let mut s = LimiterState::new(&params, 0);
        let vm = |id, held, spare, queued, best| Holding {
            id,
            held,
            spare,
            queued,
            best,
        };
        let a = s.report(vm(None, 2, 3, 0, NO_WAITER), 0);
        let b = s.report(vm(None, 1, 0, 2, 1), 4 * SECOND);
        for (i, sample) in (1..).zip(steady(30, 10, 100)) {
            s.observe(sample, i * 100 * MILLISECOND);
        }
        let bytes = s.encode();
        for (me, now) in [(a, 4 * SECOND), (b, 6 * SECOND), (None, 0)] {
            let read = Glance::read(&params, &bytes, me, now).unwrap();
            assert_eq!(read, Glance::of(&s, me, now), "{me:?} at {now}");
        }
        let seen_by_a = Glance::read(&params, &bytes, a, 6 * SECOND).unwrap();
        assert_eq!(
            (seen_by_a.reserved, seen_by_a.in_flight, seen_by_a.queued),
            (6, 3, 2)
        );
        assert_eq!(seen_by_a.others_in_flight(), 1);
        assert!(seen_by_a.others_wait && seen_by_a.best_waiting == 1);
        assert!(!seen_by_a.has_dead, "its own entry is never dead to a VM");
        let seen_by_b = Glance::read(&params, &bytes, b, 6 * SECOND).unwrap();
        assert!(!seen_by_b.others_wait);
        assert!(seen_by_b.has_dead, "a, last seen 6 s ago");
        assert_eq!(seen_by_b.mine.map(|c| c.queued), Some(2));
        assert!(Glance::read(&params, &bytes[..bytes.len() - 1], a, 0).is_none());
        assert!(Glance::read(&params, &[LimiterState::VERSION], a, 0).is_none());
    }
}
