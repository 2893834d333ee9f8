//! Who holds the limiter's in-flight slots: one entry per VM, so a VM that dies gives its slots
//! back.
//!
//! Why: the in-flight count is shared by every worker VM. A VM that crashes (Envoy's
//! `FAIL_RELOAD` then starts a fresh one) never releases the requests it had admitted; with a
//! bare counter those slots stay taken forever and every crash lowers the usable limit. Here the
//! count is the sum of per-VM entries. Each VM writes its own true count (`held`) and the time
//! (`seen`) in every update it makes anyway, plus a heartbeat while idle; an entry not seen for
//! [`HOLDER_TIMEOUT`] is removed by whichever VM notices, returning its slots.
//!
//! Because each VM writes its *true* count rather than a delta, the record also heals itself:
//! an admission made without a write (every CAS attempt lost), or a live VM removed by mistake
//! (stalled longer than the timeout, or a clock step), is put right at that VM's next successful
//! update.

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

/// A VM's handle on its entry.
pub type HolderId = u32;

/// One VM's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    /// Its handle.
    pub id: HolderId,
    /// Requests it holds slots for.
    pub held: u32,
    /// When it last wrote its entry.
    pub seen: Nanos,
}

/// Bytes per encoded entry.
const ENTRY_LEN: usize = 4 + 4 + 8;

/// The entries of all VMs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holders {
    next_id: HolderId,
    entries: Vec<Holder>,
}

impl Holders {
    /// Slots held by all VMs.
    pub fn total(&self) -> u32 {
        self.entries
            .iter()
            .fold(0u32, |sum, h| sum.saturating_add(h.held))
    }

    /// Slots held by `id` (0 if it has no entry).
    pub fn held_by(&self, id: Option<HolderId>) -> u32 {
        self.find(id).map_or(0, |h| h.held)
    }

    /// Registered VMs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no VM is registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn find(&self, id: Option<HolderId>) -> Option<&Holder> {
        id.and_then(|id| self.entries.iter().find(|h| h.id == id))
    }

    /// Writes that VM `id` holds `held` slots at `now`. A VM without an entry (never
    /// registered, or removed as dead) gets a new one. Returns the id to use from now on, or
    /// `None` when the table is full.
    pub fn set(&mut self, id: Option<HolderId>, held: u32, now: Nanos) -> Option<HolderId> {
        if let Some(entry) = id.and_then(|id| self.entries.iter_mut().find(|h| h.id == id)) {
            entry.held = held;
            entry.seen = now;
            return Some(entry.id);
        }
        if self.entries.len() >= MAX_HOLDERS {
            return None;
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.entries.push(Holder {
            id,
            held,
            seen: now,
        });
        Some(id)
    }

    /// Removes the entries of VMs not seen for [`HOLDER_TIMEOUT`] (never `keep`'s); returns the
    /// slots they held. An entry seen "in the future" (the clock stepped back) is kept.
    pub fn remove_dead(&mut self, now: Nanos, keep: Option<HolderId>) -> u32 {
        let mut freed = 0u32;
        self.entries.retain(|h| {
            let alive = Some(h.id) == keep || now.saturating_sub(h.seen) < HOLDER_TIMEOUT;
            if !alive {
                freed = freed.saturating_add(h.held);
            }
            alive
        });
        freed
    }

    /// Appends the encoding: next id, entry count, then each entry.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.next_id.to_le_bytes());
        let count = u16::try_from(self.entries.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&count.to_le_bytes());
        for h in self.entries.iter().take(usize::from(count)) {
            out.extend_from_slice(&h.id.to_le_bytes());
            out.extend_from_slice(&h.held.to_le_bytes());
            out.extend_from_slice(&h.seen.to_le_bytes());
        }
    }

    /// Parses [`Holders::encode_into`] output that must fill `bytes` exactly.
    pub fn decode(bytes: &[u8]) -> Option<Holders> {
        let next_id = u32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?);
        let count = usize::from(u16::from_le_bytes(bytes.get(4..6)?.try_into().ok()?));
        let body = bytes.get(6..)?;
        if count > MAX_HOLDERS || body.len() != count * ENTRY_LEN {
            return None;
        }
        let entries = body
            .chunks_exact(ENTRY_LEN)
            .map(|e| {
                Some(Holder {
                    id: u32::from_le_bytes(e.get(0..4)?.try_into().ok()?),
                    held: u32::from_le_bytes(e.get(4..8)?.try_into().ok()?),
                    seen: u64::from_le_bytes(e.get(8..16)?.try_into().ok()?),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Holders { next_id, entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::test;

    #[test]
    fn each_vm_writes_its_true_count_and_the_total_is_their_sum() {
        let mut h = Holders::default();
        let a = h.set(None, 3, 0);
        let b = h.set(None, 2, 0);
        assert_ne!(a, b);
        assert_eq!(h.total(), 5);
        assert_eq!(h.set(a, 4, 10), a, "an existing entry keeps its id");
        assert_eq!((h.total(), h.held_by(a), h.len()), (6, 4, 2));
    }

    #[test]
    fn dead_vms_give_their_slots_back_and_the_living_re_register() {
        let mut h = Holders::default();
        let live = h.set(None, 2, 0);
        h.set(None, 7, 0); // stops writing
        h.set(live, 2, 4 * SECOND);
        assert_eq!(h.remove_dead(HOLDER_TIMEOUT - 1, live), 0, "not yet");
        assert_eq!(h.remove_dead(HOLDER_TIMEOUT, live), 7);
        assert_eq!((h.total(), h.len()), (2, 1));
        // `live` stalls past the timeout and another VM removes it; at its next write it
        // registers again with its true count, so nothing is lost or counted twice.
        let other = h.set(None, 1, 9 * SECOND + 1);
        assert_eq!(h.remove_dead(9 * SECOND + 1, other), 2);
        let again = h.set(live, 2, 9 * SECOND + 2);
        assert_ne!(again, live, "a removed entry comes back under a new id");
        assert_eq!(h.total(), 3);
    }

    #[test]
    fn own_entry_and_entries_from_the_future_are_kept() {
        let mut h = Holders::default();
        let me = h.set(None, 1, 0);
        let ahead = h.set(None, 1, 100 * SECOND);
        assert_eq!(
            h.remove_dead(50 * SECOND, me),
            0,
            "clock stepped back: keep"
        );
        assert_eq!(h.total(), 2);
        assert!(ahead.is_some());
    }

    #[test]
    fn a_full_table_refuses_new_vms() {
        let mut h = Holders::default();
        for _ in 0..MAX_HOLDERS {
            assert!(h.set(None, 0, 0).is_some());
        }
        assert_eq!(h.set(None, 1, 0), None);
        assert_eq!(h.set(Some(0), 1, 0), Some(0), "registered VMs still write");
    }

    #[test]
    fn round_trip_and_malformed_input() {
        let mut h = Holders::default();
        h.set(None, 3, 17);
        h.set(None, 0, u64::MAX);
        let mut bytes = Vec::new();
        h.encode_into(&mut bytes);
        assert_eq!(Holders::decode(&bytes), Some(h.clone()));
        assert_eq!(Holders::decode(&bytes[..bytes.len() - 1]), None);
        assert_eq!(Holders::decode(&[0, 0, 0]), None);
        let mut too_many = vec![0u8; 4];
        too_many.extend_from_slice(&u16::MAX.to_le_bytes());
        assert_eq!(Holders::decode(&too_many), None);
    }
}
