//! Who holds the limiter's in-flight slots: one entry per VM, so a VM that dies gives its slots
//! back.
//!
//! Why: the in-flight count is shared by every worker VM. A VM that crashes (Envoy's
//! `FAIL_RELOAD` then starts a fresh one) never releases the requests it had admitted; with a
//! bare counter those slots stay taken forever and every crash lowers the usable limit. Here the
//! count is the sum of per-VM entries. Each VM writes its own true state (the slots it reserves,
//! its requests in flight and its queue length) and the time (`seen`) in every update it makes
//! anyway, plus a heartbeat while idle; an entry not seen for [`HOLDER_TIMEOUT`] is removed by
//! whichever VM notices, returning its slots.
//!
//! Because each VM writes its *true* state rather than a delta, the record also heals itself:
//! an admission made without a write (every CAS attempt lost), or a live VM removed by mistake
//! (stalled longer than the timeout, or a clock step), is put right at that VM's next successful
//! update. Until then the limit can be exceeded by that VM's count.

use crate::duration::{Nanos, SECOND};

/// An entry not refreshed for this long belongs to a dead VM. Live VMs refresh at least every
/// [`HEARTBEAT_PERIOD`] (on their timer), so only a VM stalled this long is mistaken for dead,
/// and it re-registers at its next update.
pub const HOLDER_TIMEOUT: Nanos = 5 * SECOND;
/// How often an idle VM refreshes its entry.
pub const HEARTBEAT_PERIOD: Nanos = SECOND;
/// Most entries: more VMs than this per limiter (far beyond Envoy's worker counts) cannot
/// register, and admit without the limit (the plugin counts them as contended).
pub const MAX_HOLDERS: usize = 256;

/// A VM's handle on its entry: the table's epoch (high 32 bits) and a sequence number.
///
/// Why the epoch: if the record is ever recreated (it could not be read), its sequence starts
/// again, and a VM still holding an id from the old table must not share an entry with a VM
/// registered in the new one.
pub type HolderId = u64;

/// What a VM writes of itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Claim {
    /// Slots it reserves: those its requests hold, plus spare ones it may fill without asking
    /// (see `concurrency::lease`). The limit bounds the sum of these.
    pub reserved: u32,
    /// Requests it holds slots for (at most `reserved`, unless a lost race made it admit
    /// without a write): the process-wide in-flight gauge sums these.
    pub in_flight: u32,
    /// Requests waiting in its queue (for the process-wide gauge, and for other VMs' spare
    /// slots, which go back while anyone waits).
    pub queued: u32,
    /// The rank of its most important waiter ([`NO_WAITER`]: none), so that a slot freed on
    /// one VM goes to the most important waiter of any VM.
    pub best: u8,
}

/// One VM's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    /// Its handle.
    pub id: HolderId,
    /// What it wrote of itself.
    pub claim: Claim,
    /// When it last wrote its entry.
    pub seen: Nanos,
}

/// The rank an entry carries when its VM has nobody waiting.
pub const NO_WAITER: u8 = u8::MAX;

/// What [`Holders::remove_dead`] took back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    /// Slots the removed VMs reserved (held and spare).
    pub slots: u32,
    /// Of those, the slots their requests held when they last wrote.
    pub in_flight: u32,
    /// Requests that were waiting in their queues (gone with them).
    pub queued: u32,
}

impl Removed {
    fn add(&mut self, h: &Holder) {
        self.slots = self.slots.saturating_add(h.claim.reserved);
        self.in_flight = self.in_flight.saturating_add(h.claim.in_flight);
        self.queued = self.queued.saturating_add(h.claim.queued);
    }
}

/// Bytes per encoded entry: eight little-endian `u32`s (id low and high, reserved, in flight,
/// queued, best rank, seen low and high), so that one entry is one copy of an array.
const ENTRY_LEN: usize = 4 * 8;
/// Bytes before the entries: epoch, next sequence number, count (`u32` each).
const HEADER_LEN: usize = 4 * 3;

/// The entries of all VMs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holders {
    epoch: u32,
    next_seq: u32,
    entries: Vec<Holder>,
}

impl Holders {
    /// An empty table; `epoch` tells its ids from those of any earlier table (the plugin uses
    /// the creation time).
    pub fn new(epoch: u32) -> Holders {
        Holders {
            epoch,
            next_seq: 0,
            entries: Vec::new(),
        }
    }

    /// Every entry.
    pub fn entries(&self) -> &[Holder] {
        &self.entries
    }

    /// Slots reserved by all VMs (what the limit bounds).
    pub fn total(&self) -> u32 {
        self.entries
            .iter()
            .fold(0u32, |sum, h| sum.saturating_add(h.claim.reserved))
    }

    /// Requests in flight on all VMs, as each last wrote.
    pub fn in_flight(&self) -> u32 {
        self.entries
            .iter()
            .fold(0u32, |sum, h| sum.saturating_add(h.claim.in_flight))
    }

    /// Requests waiting in all VMs' queues, as they last wrote.
    pub fn queued(&self) -> u32 {
        self.entries
            .iter()
            .fold(0u32, |sum, h| sum.saturating_add(h.claim.queued))
    }

    /// The most important rank waiting on any VM, as each last wrote ([`NO_WAITER`]: none).
    pub fn best_waiting(&self) -> u8 {
        self.entries
            .iter()
            .map(|h| h.claim.best)
            .min()
            .unwrap_or(NO_WAITER)
    }

    /// What `id` last wrote (`None` if it has no entry).
    pub fn claim_of(&self, id: Option<HolderId>) -> Option<Claim> {
        let id = id?;
        self.entries.iter().find(|h| h.id == id).map(|h| h.claim)
    }

    /// Slots reserved by `id` (0 if it has no entry).
    pub fn held_by(&self, id: Option<HolderId>) -> u32 {
        self.claim_of(id).map_or(0, |c| c.reserved)
    }

    /// Registered VMs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no VM is registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes VM `id`'s `claim` at `now`. A VM without an entry (never registered, or removed
    /// as dead) gets a new one. Returns the id to use from now on, or `None` when the table is
    /// full.
    pub fn set(&mut self, id: Option<HolderId>, claim: Claim, now: Nanos) -> Option<HolderId> {
        if let Some(entry) = id.and_then(|id| self.entries.iter_mut().find(|h| h.id == id)) {
            entry.claim = claim;
            entry.seen = now;
            return Some(entry.id);
        }
        if self.entries.len() >= MAX_HOLDERS {
            return None;
        }
        let id = (u64::from(self.epoch) << 32) | u64::from(self.next_seq);
        self.next_seq = self.next_seq.wrapping_add(1);
        self.entries.push(Holder {
            id,
            claim,
            seen: now,
        });
        Some(id)
    }

    /// Removes VM entry `id` (its limiter closed) and returns what it held.
    pub fn remove(&mut self, id: HolderId) -> Removed {
        let mut removed = Removed::default();
        self.entries.retain(|h| {
            if h.id != id {
                return true;
            }
            removed.add(h);
            false
        });
        removed
    }

    /// Whether [`Holders::remove_dead`] would remove anything.
    pub fn has_dead(&self, now: Nanos, keep: Option<HolderId>) -> bool {
        self.entries.iter().any(|h| !is_alive(h, now, keep))
    }

    /// Removes the entries of VMs not seen for [`HOLDER_TIMEOUT`] (never `keep`'s) and returns
    /// what they held. An entry seen more than the timeout *after* `now` is removed too: the
    /// clock stepped back, and a live VM re-registers at its next write (within a second).
    pub fn remove_dead(&mut self, now: Nanos, keep: Option<HolderId>) -> Removed {
        let mut removed = Removed::default();
        self.entries.retain(|h| {
            let alive = is_alive(h, now, keep);
            if !alive {
                removed.add(h);
            }
            alive
        });
        removed
    }

    /// Bytes of the encoding.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + ENTRY_LEN * self.entries.len()
    }

    /// Appends the encoding: epoch, next sequence number, entry count, then each entry.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let count = self.entries.len().min(MAX_HOLDERS);
        let header = [self.epoch, self.next_seq, u32::try_from(count).unwrap_or(0)];
        out.reserve(HEADER_LEN + ENTRY_LEN * count);
        out.extend_from_slice(header.map(u32::to_le_bytes).as_flattened());
        for h in self.entries.iter().take(count) {
            let words = [
                crate::numeric::low_bits(h.id),
                crate::numeric::low_bits(h.id >> 32),
                h.claim.reserved,
                h.claim.in_flight,
                h.claim.queued,
                u32::from(h.claim.best),
                crate::numeric::low_bits(h.seen),
                crate::numeric::low_bits(h.seen >> 32),
            ];
            out.extend_from_slice(words.map(u32::to_le_bytes).as_flattened());
        }
    }

    /// Parses [`Holders::encode_into`] output that must fill `bytes` exactly.
    pub fn decode(bytes: &[u8]) -> Option<Holders> {
        let table = Encoded::parse(bytes)?;
        let mut entries = Vec::with_capacity(table.count);
        entries.extend(table.entries());
        Some(Holders {
            epoch: table.epoch,
            next_seq: table.next_seq,
            entries,
        })
    }

    /// [`Holders::decode`] into this table, reusing its memory. Returns whether `bytes` were
    /// well-formed (if not, the table is left as it was).
    pub fn decode_from(&mut self, bytes: &[u8]) -> bool {
        let Some(table) = Encoded::parse(bytes) else {
            return false;
        };
        self.epoch = table.epoch;
        self.next_seq = table.next_seq;
        self.entries.clear();
        self.entries.extend(table.entries());
        true
    }
}

/// An encoded table read in place, without copying its entries: a look at the record that
/// changes nothing needs no allocation.
#[derive(Debug, Clone, Copy)]
pub struct Encoded<'a> {
    epoch: u32,
    next_seq: u32,
    count: usize,
    body: &'a [u8],
}

impl<'a> Encoded<'a> {
    /// Checks [`Holders::encode_into`] output that must fill `bytes` exactly.
    pub fn parse(bytes: &'a [u8]) -> Option<Encoded<'a>> {
        let u32_at = |at: usize| -> Option<u32> {
            Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
        };
        let count = usize::try_from(u32_at(8)?).ok()?;
        let body = bytes.get(HEADER_LEN..)?;
        if count > MAX_HOLDERS || body.len() != count * ENTRY_LEN {
            return None;
        }
        Some(Encoded {
            epoch: u32_at(0)?,
            next_seq: u32_at(4)?,
            count,
            body,
        })
    }

    /// The entries, in order.
    pub fn entries(self) -> impl ExactSizeIterator<Item = Holder> + 'a {
        self.body.chunks_exact(ENTRY_LEN).map(read_entry)
    }
}

/// One entry of [`Holders::encode_into`] output (`e` is [`ENTRY_LEN`] bytes long).
fn read_entry(e: &[u8]) -> Holder {
    let word = |i: usize| {
        e.get(4 * i..4 * i + 4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_le_bytes)
    };
    Holder {
        id: u64::from(word(0)) | (u64::from(word(1)) << 32),
        claim: Claim {
            reserved: word(2),
            in_flight: word(3),
            queued: word(4),
            best: u8::try_from(word(5)).unwrap_or(NO_WAITER),
        },
        seen: u64::from(word(6)) | (u64::from(word(7)) << 32),
    }
}

/// An entry is alive if it is `keep`'s or was written within the timeout of `now` (either
/// side: a clock that stepped back far makes old writes look far ahead).
pub fn is_alive(h: &Holder, now: Nanos, keep: Option<HolderId>) -> bool {
    Some(h.id) == keep || now.abs_diff(h.seen) < HOLDER_TIMEOUT
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::test;

    /// A claim of `held` slots, all in use, and `queued` waiters.
    fn c(held: u32, queued: u32) -> Claim {
        Claim {
            reserved: held,
            in_flight: held,
            queued,
            best: NO_WAITER,
        }
    }

    #[test]
    fn each_vm_writes_its_true_count_and_the_total_is_their_sum() {
        let mut h = Holders::new(7);
        let a = h.set(None, c(3, 1), 0);
        let b = h.set(None, c(2, 0), 0);
        assert_ne!(a, b);
        assert_eq!((h.total(), h.queued()), (5, 1));
        assert_eq!(h.set(a, c(4, 2), 10), a, "an existing entry keeps its id");
        assert_eq!((h.total(), h.queued(), h.held_by(a), h.len()), (6, 2, 4, 2));
    }

    #[test]
    fn a_closed_limiter_takes_only_its_own_entry_away() {
        let mut h = Holders::new(3);
        let a = h.set(None, c(0, 0), 0).unwrap();
        let b = h.set(Some(a), c(0, 0), 0);
        let third = h.set(None, c(2, 1), 0).unwrap();
        assert_eq!(b, Some(a));
        assert_eq!(h.remove(a), Removed::default());
        assert_eq!((h.len(), h.total(), h.queued()), (1, 2, 1));
        assert_eq!(
            h.remove(a),
            Removed::default(),
            "already gone: nothing happens"
        );
        assert_eq!(
            h.remove(third),
            Removed {
                slots: 2,
                in_flight: 2,
                queued: 1
            }
        );
        assert!(h.is_empty());
    }

    #[test]
    fn dead_vms_give_their_slots_back_and_the_living_re_register() {
        let mut h = Holders::new(1);
        let live = h.set(None, c(2, 0), 0);
        h.set(None, c(7, 3), 0); // stops writing
        h.set(live, c(2, 0), 4 * SECOND);
        assert!(!h.has_dead(HOLDER_TIMEOUT - 1, live));
        assert_eq!(h.remove_dead(HOLDER_TIMEOUT - 1, live), Removed::default());
        assert!(h.has_dead(HOLDER_TIMEOUT, live));
        assert_eq!(
            h.remove_dead(HOLDER_TIMEOUT, live),
            Removed {
                slots: 7,
                in_flight: 7,
                queued: 3
            }
        );
        assert_eq!((h.total(), h.len()), (2, 1));
        // `live` stalls past the timeout and another VM removes it; at its next write it
        // registers again with its true count, so nothing is lost or counted twice.
        let other = h.set(None, c(1, 0), 9 * SECOND + 1);
        assert_eq!(h.remove_dead(9 * SECOND + 1, other).slots, 2);
        let again = h.set(live, c(2, 0), 9 * SECOND + 2);
        assert_ne!(again, live, "a removed entry comes back under a new id");
        assert_eq!(h.total(), 3);
    }

    #[test]
    fn a_clock_step_back_keeps_near_entries_and_drops_far_ones() {
        let mut h = Holders::new(1);
        let me = h.set(None, c(1, 0), 0);
        h.set(None, c(1, 0), 3 * SECOND);
        h.set(None, c(5, 0), 100 * SECOND);
        let removed = h.remove_dead(0, me);
        assert_eq!(
            removed.slots, 5,
            "seen 100 s 'ahead': the clock stepped back"
        );
        assert_eq!(
            (h.total(), h.len()),
            (2, 2),
            "3 s ahead is within the timeout"
        );
    }

    #[test]
    fn ids_of_a_recreated_table_never_match_the_old_ones() {
        let mut old = Holders::new(1);
        let kept_by_a_vm = old.set(None, c(4, 0), 0);
        let mut fresh = Holders::new(2);
        let newcomer = fresh.set(None, c(1, 0), 0);
        assert_ne!(kept_by_a_vm, newcomer, "same sequence number, other epoch");
        let rejoined = fresh.set(kept_by_a_vm, c(4, 0), 0);
        assert_ne!(rejoined, newcomer, "the old VM gets its own entry");
        assert_eq!(fresh.total(), 5);
    }

    #[test]
    fn a_full_table_refuses_new_vms() {
        let mut h = Holders::new(0);
        for _ in 0..MAX_HOLDERS {
            assert!(h.set(None, c(0, 0), 0).is_some());
        }
        assert_eq!(h.set(None, c(1, 0), 0), None);
        assert_eq!(
            h.set(Some(0), c(1, 0), 0),
            Some(0),
            "registered VMs still write"
        );
    }

    #[test]
    fn round_trip_and_malformed_input() {
        let mut h = Holders::new(9);
        h.set(None, c(3, 1), 17);
        h.set(None, c(0, 0), u64::MAX);
        let mut bytes = Vec::new();
        h.encode_into(&mut bytes);
        assert_eq!(bytes.len(), h.encoded_len());
        assert_eq!(Holders::decode(&bytes), Some(h.clone()));
        assert_eq!(Holders::decode(&bytes[..bytes.len() - 1]), None);
        assert_eq!(Holders::decode(&[0, 0, 0]), None);
        // A count over the maximum is refused even when the body has that many entries.
        let over = MAX_HOLDERS + 1;
        let mut too_many = vec![0u8; 8];
        too_many.extend_from_slice(&u32::try_from(over).unwrap().to_le_bytes());
        too_many.resize(HEADER_LEN + over * ENTRY_LEN, 0);
        assert_eq!(Holders::decode(&too_many), None);
    }
}
