//! The engine's events and their order in the queue.
//!
//! Why a module of its own: the order of events at the same instant decides every simulation's
//! outcome; keeping it in one small place makes the determinism argument easy to check.

use ballast_policy::duration::Nanos;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Event {
    Arrival { class: usize },
    Retry { class: usize, number: u32 },
    UpstreamDone { attempt: usize, status: u16 },
    Timeout { attempt: usize, generation: u32 },
    Sample,
}

/// An event due at `at`; `seq` (unique, increasing) keeps events at the same instant in the
/// order they were scheduled. Ordered for a min-heap: the earliest (then first scheduled)
/// is the greatest. Only `(at, seq)` is compared: being unique, it decides every order.
#[derive(Debug, Clone, Copy)]
pub(super) struct Scheduled {
    pub(super) at: Nanos,
    pub(super) seq: u64,
    pub(super) event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}
