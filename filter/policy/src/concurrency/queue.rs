//! The bounded wait queue in front of the limit.
//!
//! Why wait instead of rejecting at once: a request that finds the limit full usually finds a
//! free slot a few milliseconds later; rejecting it turns a short wait into an error and a
//! client retry. The queue is bounded in size and in wait time, and a request whose deadline
//! would pass before it could be served is dropped early rather than served uselessly. LIFO
//! order (as in Netflix's blocking limiter and Facebook's adaptive LIFO) serves the freshest
//! requests first under overload, when the oldest are the likeliest to have been abandoned.
//! The default, adaptive order is FIFO for a rank until that rank overflows (see
//! [`super::overflow`]), then LIFO with a shorter wait for it alone.
//!
//! Each waiter has a rank (load shedding's priority order; 0 is the most important, and every
//! waiter has rank 0 without shedding): the most important waiter is served first, in the
//! queue's order within its rank, and a full queue makes room for a more important arrival by
//! displacing its least important waiter (the one it would serve last) rather than refusing
//! the arrival.

use super::overflow::{Overflow, OVERFLOW_WAIT_DIVISOR};
use crate::duration::Nanos;
use std::collections::VecDeque;

/// Which waiter is admitted first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Oldest first.
    Fifo,
    /// Newest first.
    Lifo,
    /// Oldest first within a rank until that rank overflows; newest first (and a quarter of
    /// the wait) while it does.
    Adaptive,
}

/// Queue parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueParams {
    /// Most waiters (0 disables the queue).
    pub size: usize,
    /// Longest wait.
    pub max_wait: Nanos,
    /// Admission order.
    pub order: Order,
    /// Whether a caller's deadline shortens its wait (see [`WaitQueue::push`]).
    pub respect_deadlines: bool,
}

/// A waiting request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiter<T> {
    /// Caller's handle (the plugin uses the stream's context id).
    pub id: T,
    /// When it started waiting.
    pub since: Nanos,
    /// When it must have left the queue: `since + max_wait`, or earlier if its deadline says so.
    pub leave_by: Nanos,
    /// Whether `leave_by` comes from the caller's deadline rather than `max_wait`: such a waiter
    /// leaving unserved is a deadline drop, not a queue timeout.
    pub deadline_bound: bool,
    /// Its shedding rank (smaller is more important).
    pub rank: u8,
}

/// Why a request could not wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The queue is disabled or full.
    Full,
    /// Its deadline passes before it could reasonably be served.
    DeadlineTooClose,
}

/// The queue.
#[derive(Debug, Clone)]
pub struct WaitQueue<T> {
    params: QueueParams,
    waiters: VecDeque<Waiter<T>>,
    overflow: Overflow,
}

impl<T: Copy + PartialEq> WaitQueue<T> {
    /// An empty queue.
    pub fn new(params: QueueParams) -> WaitQueue<T> {
        WaitQueue {
            params,
            waiters: VecDeque::new(),
            overflow: Overflow::default(),
        }
    }

    /// The order the queue serves `rank` in at `now`: the configured one, or for the adaptive
    /// order, LIFO while that rank overflows.
    fn order_of(&self, rank: u8, now: Nanos) -> Order {
        match self.params.order {
            Order::Adaptive if self.overflow.is_overflowing(rank, now) => Order::Lifo,
            Order::Adaptive => Order::Fifo,
            fixed => fixed,
        }
    }

    /// The wait of a new waiter of `rank` with `patience` at `now`: `patience` × `max_wait`, or
    /// a fraction of that while an adaptive queue's rank overflows (a patient waiter keeps its
    /// multiple of the shorter wait: an overflowing rank cannot all be served anyway).
    fn max_wait_of(&self, rank: u8, patience: u32, now: Nanos) -> Nanos {
        let shortened =
            self.params.order == Order::Adaptive && self.overflow.is_overflowing(rank, now);
        let whole = self
            .params
            .max_wait
            .saturating_mul(u64::from(patience.max(1)));
        if shortened {
            (whole / OVERFLOW_WAIT_DIVISOR).max(1)
        } else {
            whole
        }
    }

    /// Adds a waiter of `rank` at `now`. `start_by`, if known, is the latest time it can be
    /// admitted and still be answered before its caller gives up (the caller's deadline less
    /// the expected service time); with `respect_deadlines` it bounds the wait, and a request
    /// already past it is refused rather than queued. A full queue displaces its least
    /// important waiter for a more important arrival: that waiter comes back, to be answered.
    pub fn push(
        &mut self,
        id: T,
        now: Nanos,
        start_by: Option<Nanos>,
        rank: u8,
    ) -> Result<Option<Waiter<T>>, Refused> {
        self.push_patient(id, now, start_by, rank, 1)
    }

    /// [`WaitQueue::push`] for a waiter that may wait `patience` times `max_wait`.
    pub fn push_patient(
        &mut self,
        id: T,
        now: Nanos,
        start_by: Option<Nanos>,
        rank: u8,
        patience: u32,
    ) -> Result<Option<Waiter<T>>, Refused> {
        let max_wait = self.max_wait_of(rank, patience, now);
        let max_wait_end = now.saturating_add(max_wait);
        let start_by = start_by.filter(|_| self.params.respect_deadlines);
        if start_by.is_some_and(|start_by| start_by <= now) {
            return Err(Refused::DeadlineTooClose);
        }
        if self.params.size == 0 {
            return Err(Refused::Full);
        }
        let mut displaced = None;
        if self.waiters.len() >= self.params.size {
            let victim = self
                .last_served(now)
                .filter(|(_, waiter)| waiter.rank > rank);
            let Some((index, victim)) = victim else {
                self.overflow.record(rank, now);
                return Err(Refused::Full);
            };
            self.overflow.record(victim.rank, now);
            displaced = self.waiters.remove(index);
        }
        let (leave_by, deadline_bound) = match start_by {
            Some(start_by) if start_by < max_wait_end => (start_by, true),
            _ => (max_wait_end, false),
        };
        self.waiters.push_back(Waiter {
            id,
            since: now,
            leave_by,
            deadline_bound,
            rank,
        });
        Ok(displaced)
    }

    /// The waiter this queue would serve last at `now` (least important; within its rank the
    /// newest when served FIFO, the oldest when served LIFO), with its position.
    fn last_served(&self, now: Nanos) -> Option<(usize, Waiter<T>)> {
        let rank = self.waiters.iter().map(|w| w.rank).max()?;
        let mut of_rank = self
            .waiters
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, w)| w.rank == rank);
        match self.order_of(rank, now) {
            Order::Lifo => of_rank.next(),
            _ => of_rank.last(),
        }
    }

    /// The next waiter to admit at `now` (most important first, by order within a rank),
    /// removed from the queue. Waiters that had to leave by `now` are passed over (a slot must
    /// not go to a request that can no longer be answered in time) and left for
    /// [`WaitQueue::expire`].
    pub fn pop(&mut self, now: Nanos) -> Option<Waiter<T>> {
        let live = |w: &Waiter<T>| w.leave_by > now;
        let rank = self
            .waiters
            .iter()
            .filter(|w| live(w))
            .map(|w| w.rank)
            .min()?;
        let mut of_rank = self
            .waiters
            .iter()
            .enumerate()
            .filter(|(_, w)| w.rank == rank && live(w))
            .map(|(index, _)| index);
        let index = match self.order_of(rank, now) {
            Order::Lifo => of_rank.last(),
            _ => of_rank.next(),
        }?;
        self.waiters.remove(index)
    }

    /// The rank of the most important waiter (expired ones included: they leave at the next
    /// tick, which rewrites the rank).
    pub fn best_rank(&self) -> Option<u8> {
        self.waiters.iter().map(|w| w.rank).min()
    }

    /// Whether some waiter can still be admitted at `now` (what [`WaitQueue::pop`] would find).
    pub fn has_live(&self, now: Nanos) -> bool {
        self.waiters.iter().any(|w| w.leave_by > now)
    }

    /// Removes and returns the waiters that must leave by `now` (timed out).
    pub fn expire(&mut self, now: Nanos) -> Vec<Waiter<T>> {
        let mut expired = Vec::new();
        self.waiters.retain(|w| {
            if w.leave_by <= now {
                expired.push(*w);
                false
            } else {
                true
            }
        });
        for waiter in expired.iter().filter(|w| !w.deadline_bound) {
            self.overflow.record(waiter.rank, now);
        }
        expired
    }

    /// Records a sign, from outside the queue, that `rank` gets more work than slots (load
    /// shedding's level refuses some of it).
    pub fn note_overflow(&mut self, rank: u8, now: Nanos) {
        self.overflow.record(rank, now);
    }

    /// Removes a waiter that went away (its stream was reset).
    pub fn remove(&mut self, id: T) -> bool {
        let before = self.waiters.len();
        self.waiters.retain(|w| w.id != id);
        before != self.waiters.len()
    }

    /// Waiters now.
    pub fn len(&self) -> usize {
        self.waiters.len()
    }

    /// Whether nobody waits.
    pub fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::test;

    fn q(order: Order) -> WaitQueue<u32> {
        WaitQueue::new(QueueParams {
            size: 3,
            max_wait: 100,
            order,
            respect_deadlines: true,
        })
    }

    #[test]
    fn bounded_fifo_and_lifo() {
        let mut fifo = q(Order::Fifo);
        let mut lifo = q(Order::Lifo);
        for id in 1..=3 {
            fifo.push(id, id.into(), None, 0).unwrap();
            lifo.push(id, id.into(), None, 0).unwrap();
        }
        assert_eq!(fifo.push(4, 4, None, 0), Err(Refused::Full));
        assert_eq!(fifo.pop(4).map(|w| w.id), Some(1));
        assert_eq!(lifo.pop(4).map(|w| w.id), Some(3));
        assert_eq!(fifo.len(), 2);
    }

    #[test]
    fn expiry_by_max_wait_and_deadline() {
        let mut queue = q(Order::Fifo);
        queue.push(1, 0, None, 0).unwrap(); // leaves by 100
        queue.push(2, 10, Some(50), 0).unwrap(); // deadline first: leaves by 50
        queue.push(4, 20, Some(500), 0).unwrap(); // max_wait first: leaves by 120
        assert_eq!(
            queue.push(3, 60, Some(60), 0),
            Err(Refused::DeadlineTooClose)
        );
        assert!(queue.expire(49).is_empty());
        let at_50 = queue.expire(50);
        assert_eq!(
            at_50
                .iter()
                .map(|w| (w.id, w.deadline_bound))
                .collect::<Vec<_>>(),
            [(2, true)]
        );
        assert_eq!(
            queue
                .expire(120)
                .iter()
                .map(|w| (w.id, w.deadline_bound))
                .collect::<Vec<_>>(),
            [(1, false), (4, false)]
        );
        assert!(queue.is_empty());
    }

    #[test]
    fn a_past_deadline_is_named_even_when_the_queue_is_full_or_off() {
        let mut queue = q(Order::Fifo);
        for id in 1..=3 {
            queue.push(id, 0, None, 0).unwrap();
        }
        assert_eq!(queue.push(9, 5, Some(5), 0), Err(Refused::DeadlineTooClose));
        assert_eq!(queue.push(9, 5, Some(6), 0), Err(Refused::Full));
        let mut off: WaitQueue<u32> = WaitQueue::new(QueueParams {
            size: 0,
            max_wait: 100,
            order: Order::Fifo,
            respect_deadlines: true,
        });
        assert_eq!(off.push(1, 5, Some(5), 0), Err(Refused::DeadlineTooClose));
        assert_eq!(off.push(1, 5, None, 0), Err(Refused::Full));
    }

    #[test]
    fn a_waiter_past_its_time_is_passed_over() {
        for (order, first) in [(Order::Fifo, 1), (Order::Lifo, 2)] {
            let mut queue = q(order);
            queue.push(1, 0, Some(30), 0).unwrap();
            queue.push(2, 0, None, 0).unwrap();
            queue.push(3, 0, Some(20), 0).unwrap(); // must leave by 20
            assert!(queue.has_live(25));
            assert_eq!(queue.pop(25).map(|w| w.id), Some(first), "{order:?}");
            assert_eq!(
                queue.expire(25).iter().map(|w| w.id).collect::<Vec<_>>(),
                [3],
                "{order:?}: left for expire"
            );
            assert!(queue.has_live(25), "one is left");
            assert!(!queue.has_live(100), "all past their time at 100");
        }
    }

    #[test]
    fn deadlines_can_be_ignored() {
        let mut queue: WaitQueue<u32> = WaitQueue::new(QueueParams {
            size: 3,
            max_wait: 100,
            order: Order::Fifo,
            respect_deadlines: false,
        });
        queue.push(1, 10, Some(10), 0).unwrap();
        queue.push(2, 10, Some(20), 0).unwrap();
        assert!(queue.expire(100).is_empty(), "both wait the full max_wait");
        assert_eq!(queue.expire(110).len(), 2);
    }

    #[test]
    fn disabled_queue_refuses_and_remove_works() {
        let mut none: WaitQueue<u32> = WaitQueue::new(QueueParams {
            size: 0,
            max_wait: 10,
            order: Order::Fifo,
            respect_deadlines: true,
        });
        assert_eq!(none.push(1, 0, None, 0), Err(Refused::Full));
        let mut queue = q(Order::Lifo);
        queue.push(7, 0, None, 0).unwrap();
        assert!(queue.remove(7));
        assert!(!queue.remove(7));
    }

    #[test]
    fn the_most_important_waiter_is_served_first_in_order_within_its_rank() {
        for (order, expected) in [(Order::Fifo, [3, 4, 1, 2]), (Order::Lifo, [4, 3, 2, 1])] {
            let mut queue: WaitQueue<u32> = WaitQueue::new(QueueParams {
                size: 10,
                max_wait: 100,
                order,
                respect_deadlines: true,
            });
            queue.push(1, 0, None, 4).unwrap();
            queue.push(2, 1, None, 4).unwrap();
            queue.push(3, 2, None, 0).unwrap();
            queue.push(4, 3, None, 0).unwrap();
            let served: Vec<u32> = std::iter::from_fn(|| queue.pop(5).map(|w| w.id)).collect();
            assert_eq!(served, expected, "{order:?}");
        }
    }

    #[test]
    fn a_full_queue_displaces_its_least_important_waiter_for_a_more_important_arrival() {
        for (order, victim) in [(Order::Fifo, 3), (Order::Lifo, 2)] {
            let mut queue = q(order);
            queue.push(1, 0, None, 2).unwrap();
            queue.push(2, 1, None, 4).unwrap();
            queue.push(3, 2, None, 4).unwrap();
            // Same rank as the least important: no room.
            assert_eq!(queue.push(8, 3, None, 4), Err(Refused::Full), "{order:?}");
            let displaced = queue.push(9, 3, None, 0).unwrap().map(|w| (w.id, w.rank));
            assert_eq!(
                displaced,
                Some((victim, 4)),
                "{order:?}: the one served last goes"
            );
            assert_eq!(queue.len(), 3);
            assert_eq!(
                queue.pop(4).map(|w| w.id),
                Some(9),
                "{order:?}: the arrival first"
            );
            // A past deadline is still refused as such, before any displacement.
            assert_eq!(
                queue.push(10, 5, Some(5), 0),
                Err(Refused::DeadlineTooClose)
            );
        }
    }
}
#[cfg(test)]
mod adaptive_tests {
    use super::*;
    use crate::concurrency::overflow::OVERFLOW_SIGNS;
    use crate::test_support::test;

    fn adaptive(size: usize) -> WaitQueue<u32> {
        WaitQueue::new(QueueParams {
            size,
            max_wait: 100,
            order: Order::Adaptive,
            respect_deadlines: true,
        })
    }

    #[test]
    fn a_rank_whose_waiters_time_out_is_served_newest_first_with_a_shorter_wait() {
        let mut queue = adaptive(100);
        let signs = OVERFLOW_SIGNS;
        for id in 0..signs {
            queue.push(id, 0, None, 0).unwrap();
        }
        assert_eq!(queue.expire(100).len(), signs as usize);
        queue.push(100, 100, None, 0).unwrap();
        queue.push(101, 101, None, 0).unwrap();
        queue.push(200, 102, None, 1).unwrap(); // rank 1 never overflowed: FIFO, full wait
        queue.push(201, 103, None, 1).unwrap();
        assert_eq!(queue.pop(104).map(|w| w.id), Some(101), "newest first");
        assert_eq!(
            queue.expire(100 + 100 / 4).len(),
            1,
            "a quarter of max_wait"
        );
        assert_eq!(queue.pop(126).map(|w| w.id), Some(200), "oldest first");
    }

    #[test]
    fn a_few_timeouts_leave_the_order_fifo_and_signs_from_shedding_count() {
        let mut queue = adaptive(100);
        queue.push(1, 0, None, 0).unwrap();
        assert_eq!(queue.expire(100).len(), 1);
        queue.push(2, 100, None, 0).unwrap();
        queue.push(3, 101, None, 0).unwrap();
        assert_eq!(
            queue.pop(102).map(|w| w.id),
            Some(2),
            "one timeout is a burst"
        );
        for _ in 0..OVERFLOW_SIGNS {
            queue.note_overflow(0, 102);
        }
        queue.push(4, 103, None, 0).unwrap();
        assert_eq!(queue.pop(104).map(|w| w.id), Some(4));
    }
}

#[cfg(test)]
mod patience_tests {
    use super::*;
    use crate::concurrency::overflow::OVERFLOW_SIGNS;
    use crate::test_support::test;

    #[test]
    fn a_patient_waiter_keeps_its_multiple_of_the_shorter_wait_when_its_rank_overflows() {
        let mut queue = WaitQueue::new(QueueParams {
            size: 100,
            max_wait: 100,
            order: Order::Adaptive,
            respect_deadlines: true,
        });
        for _ in 0..OVERFLOW_SIGNS {
            queue.note_overflow(0, 0);
        }
        queue.push_patient(1, 0, None, 0, 2).unwrap();
        queue.push_patient(2, 1, None, 0, 2).unwrap();
        assert!(
            queue.expire(49).is_empty(),
            "twice a quarter of max_wait, not one quarter"
        );
        assert_eq!(queue.pop(49).map(|w| w.id), Some(2), "newest first");
        assert_eq!(
            queue.expire(51).iter().map(|w| w.id).collect::<Vec<_>>(),
            [1],
            "and not its whole doubled wait"
        );
    }
}
