//! Leases of slots: a worker VM reserves a few spare slots in the shared record beyond its
//! requests in flight, and admits into them and releases back into them without shared data.
//!
//! Why: the limiter's record lives in proxy-wasm shared data, which Envoy keeps in one
//! process-wide locked map and copies on every get and set. With one compare-and-swap of the
//! record per admission and one per release, every request paid four shared-data calls and two
//! decodings and encodings of the record, even far below the limit, where the answer is always
//! "admit". With a lease the record stays exact about what the other workers need to know:
//! every slot a worker may fill is reserved in it, so the sum of reservations, which the limit
//! bounds, bounds what is in flight across workers. What lags is each worker's count of
//! requests in flight (for the gauges), refreshed at its next write: a window's sample, a
//! change of lease, or its heartbeat (every second).
//!
//! The rules, each for a bound of README's "Enforcement across workers":
//! - spare slots are reserved only while nobody waits on any VM, and only up to half of what
//!   lies between the reservations and *half* the limit, at most [`SPARE_MAX`] per worker: the
//!   sum of reservations with spare slots in it stays within half the limit. A limiter that is
//!   more than half used works slot by slot, each admission and release one compare-and-swap
//!   that sees the limit in force, as without leases. And since no algorithm lowers the limit
//!   while in-flight load stays below half of it, the spare slots are not what a falling limit
//!   finds in use.
//! - a worker reserves them only while it admits requests (one within [`LEASE_IDLE`]).
//! - a worker holding spare slots looks at the record at every tick (one read, no write) and
//!   gives them all back when anyone waits on another VM, when the reservations pass half the
//!   limit (other workers' load, or a lower limit), when its own entry is gone (it was taken
//!   for dead), or after [`LEASE_IDLE`] without an admission. A waiter on another worker finds
//!   the record full only after it passed half, so it gets those slots at its own next tick
//!   after that worker's: within two ticks (20 ms).
//! - a release that would leave more than [`SPARE_KEEP`] spare slots writes at once (keeping
//!   at most [`SPARE_MAX`]); one that hands the slot to a waiter, ends a window, or follows a
//!   lost race writes as without leases.

use crate::duration::{Nanos, MILLISECOND};

/// Most spare slots one worker reserves at once. With a worker's load moving by less than
/// this between two writes, its requests touch no shared data.
pub const SPARE_MAX: u32 = 8;
/// A release that would leave more spare slots than this gives the excess back at once.
pub const SPARE_KEEP: u32 = 2 * SPARE_MAX;
/// A worker that admitted nothing for this long gives its spare slots back (at its next tick).
pub const LEASE_IDLE: Nanos = 100 * MILLISECOND;

/// Spare slots a worker may reserve with the limit at `limit`, the reservations of every VM at
/// `reserved` (without any spare of its own), and whether anyone waits on another VM: half of
/// the room below half the limit, at most [`SPARE_MAX`]; none while anyone waits.
pub fn spare_room(limit: u32, reserved: u32, others_wait: bool) -> u32 {
    if others_wait {
        return 0;
    }
    ((limit / 2).saturating_sub(reserved) / 2).min(SPARE_MAX)
}

/// Whether a worker may keep the spare slots it reserved, seeing the reservations of every VM
/// (its spare ones included) at `reserved` against `limit`, and whether anyone waits on another
/// VM.
pub fn may_keep(limit: u32, reserved: u32, others_wait: bool) -> bool {
    !others_wait && reserved <= limit / 2
}

/// Whether a worker that last admitted a request at `last_admit` (`None`: never) still
/// admits at `now`, so that a lease is worth holding. A clock that stepped back counts as
/// recent.
pub fn in_use(last_admit: Option<Nanos>, now: Nanos) -> bool {
    last_admit.is_some_and(|at| now.saturating_sub(at) < LEASE_IDLE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::test;

    #[test]
    fn spare_slots_fill_at_most_half_of_the_room_below_half_the_limit() {
        let rows = [
            // (limit, reserved, others wait, spare room)
            (4, 1, false, 0),
            (6, 4, false, 0),
            (10, 0, false, 2),
            (10, 1, false, 2),
            (64, 1, false, SPARE_MAX),
            (64, 30, false, 1),
            (64, 32, false, 0),
            (64, 60, false, 0),
            (1000, 0, true, 0),
            (1, 0, false, 0),
        ];
        for (limit, reserved, wait, room) in rows {
            assert_eq!(
                spare_room(limit, reserved, wait),
                room,
                "limit {limit}, reserved {reserved}, others wait {wait}"
            );
            let after = reserved + room;
            assert!(
                room == 0 || may_keep(limit, after, wait),
                "a grant is kept at the next look: limit {limit}, reserved {reserved}"
            );
        }
    }

    #[test]
    fn spare_slots_go_back_past_half_the_limit_or_when_anyone_waits() {
        assert!(may_keep(64, 32, false));
        assert!(!may_keep(64, 33, false));
        assert!(!may_keep(64, 2, true));
    }

    #[test]
    fn a_lease_is_in_use_while_requests_come() {
        assert!(!in_use(None, 0));
        assert!(in_use(Some(5), 5 + LEASE_IDLE - 1));
        assert!(!in_use(Some(5), 5 + LEASE_IDLE));
        assert!(in_use(Some(5 * LEASE_IDLE), 0), "a clock step back");
    }
}
