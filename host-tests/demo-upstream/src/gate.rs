//! The capacity model: at most `capacity` requests hold a slot at once and the rest wait
//! in FIFO order, optionally bounded by a queue limit. Written by hand (instead of a bare
//! `tokio::sync::Semaphore`) because the capacity can shrink live while slots are held, and
//! the stats need the number in use, its high-water mark and the slot time spent busy
//! (how much of its capacity the upstream actually used: a proxy in front that leaves slots
//! idle while work waits wastes capacity, whatever the machine's speed).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::oneshot;

/// Locks a mutex, recovering the data if a panicking thread poisoned it (the counters
/// stay usable; nothing here leaves them half-updated).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Debug)]
struct State {
    /// `0` = unlimited.
    capacity: usize,
    queue_limit: Option<usize>,
    in_use: usize,
    max_in_use: usize,
    waiters: VecDeque<oneshot::Sender<()>>,
    /// Slot-seconds held since the gate was made, up to `changed`.
    busy_slot_seconds: f64,
    /// When `in_use` last changed.
    changed: Instant,
}

impl State {
    fn has_room(&self) -> bool {
        self.capacity == 0 || self.in_use < self.capacity
    }

    /// Adds the slot time held since the last change; called before `in_use` changes.
    fn account(&mut self) {
        let now = Instant::now();
        self.busy_slot_seconds += self.in_use as f64 * (now - self.changed).as_secs_f64();
        self.changed = now;
    }

    fn take(&mut self) {
        self.account();
        self.in_use += 1;
        self.max_in_use = self.max_in_use.max(self.in_use);
    }

    /// Hands free slots to waiters in arrival order, skipping those that gave up.
    fn grant_waiting(&mut self) {
        while self.has_room() {
            let Some(tx) = self.waiters.pop_front() else {
                break;
            };
            if tx.send(()).is_ok() {
                self.take();
            }
        }
    }
}

/// Why a request got no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejected {
    /// The wait queue is at its limit.
    QueueFull,
}

/// The FIFO capacity gate shared by all connections.
#[derive(Debug)]
pub(crate) struct Gate {
    state: Mutex<State>,
}

impl Gate {
    pub(crate) fn new(capacity: usize, queue_limit: Option<usize>) -> Arc<Self> {
        Arc::new(Gate {
            state: Mutex::new(State {
                capacity,
                queue_limit,
                in_use: 0,
                max_in_use: 0,
                waiters: VecDeque::new(),
                busy_slot_seconds: 0.0,
                changed: Instant::now(),
            }),
        })
    }

    /// Waits (FIFO) for a slot; the slot is given back when the returned [`Slot`] drops.
    pub(crate) async fn acquire(self: &Arc<Self>) -> Result<Slot, Rejected> {
        let rx = {
            let mut s = lock(&self.state);
            s.waiters.retain(|tx| !tx.is_closed());
            if s.has_room() && s.waiters.is_empty() {
                s.take();
                return Ok(Slot { gate: self.clone() });
            }
            if s.queue_limit.is_some_and(|limit| s.waiters.len() >= limit) {
                return Err(Rejected::QueueFull);
            }
            let (tx, rx) = oneshot::channel();
            s.waiters.push_back(tx);
            rx
        };
        let mut waiting = Waiting {
            gate: self.clone(),
            rx,
            granted: false,
        };
        match (&mut waiting.rx).await {
            Ok(()) => {
                waiting.granted = true;
                Ok(Slot { gate: self.clone() })
            }
            // The sender only disappears unsent when the queue is trimmed; treat as full.
            Err(_) => Err(Rejected::QueueFull),
        }
    }

    fn release(&self) {
        let mut s = lock(&self.state);
        s.account();
        s.in_use = s.in_use.saturating_sub(1);
        s.grant_waiting();
    }

    /// Changes capacity and queue limit live; a larger capacity admits waiters at once, a
    /// smaller one takes effect as slots are released.
    pub(crate) fn set_limits(&self, capacity: usize, queue_limit: Option<usize>) {
        let mut s = lock(&self.state);
        s.capacity = capacity;
        s.queue_limit = queue_limit;
        s.grant_waiting();
    }

    /// `(in use, max in use since reset, waiting)`.
    pub(crate) fn occupancy(&self) -> (usize, usize, usize) {
        let s = lock(&self.state);
        let waiting = s.waiters.iter().filter(|tx| !tx.is_closed()).count();
        (s.in_use, s.max_in_use, waiting)
    }

    /// Slot-seconds held since the gate was made (never reset: callers take differences).
    pub(crate) fn busy_slot_seconds(&self) -> f64 {
        let mut s = lock(&self.state);
        s.account();
        s.busy_slot_seconds
    }

    /// Restarts the high-water mark from the current occupancy.
    pub(crate) fn reset_max(&self) {
        let mut s = lock(&self.state);
        s.max_in_use = s.in_use;
    }
}

/// A held slot; dropping it admits the next waiter.
#[derive(Debug)]
pub(crate) struct Slot {
    gate: Arc<Gate>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gate.release();
    }
}

/// A queued request. If the request is cancelled (client went away) just as a slot was
/// handed to it, the slot is passed on instead of leaking.
struct Waiting {
    gate: Arc<Gate>,
    rx: oneshot::Receiver<()>,
    granted: bool,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if !self.granted {
            self.rx.close();
            if self.rx.try_recv().is_ok() {
                self.gate.release();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::time::timeout;

    #[tokio::test]
    async fn fifo_and_capacity() {
        let gate = Gate::new(1, None);
        let first = gate.acquire().await.unwrap();
        let g2 = gate.clone();
        let second = tokio::spawn(async move { g2.acquire().await.map(|_slot| ()) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(gate.occupancy(), (1, 1, 1));
        drop(first);
        timeout(Duration::from_secs(2), second)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(gate.occupancy(), (0, 1, 0));
    }

    #[tokio::test]
    async fn busy_time_counts_held_slots_only() {
        let gate = Gate::new(2, None);
        let idle = gate.busy_slot_seconds();
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(gate.busy_slot_seconds(), idle, "no slot held, no busy time");
        let a = gate.acquire().await.unwrap();
        let b = gate.acquire().await.unwrap();
        let before = std::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop((a, b));
        let held = before.elapsed().as_secs_f64();
        let busy = gate.busy_slot_seconds() - idle;
        assert!(busy >= 2.0 * 0.050, "two slots for 50 ms: {busy}");
        assert!(busy <= 2.0 * held + 0.01, "two slots for {held} s: {busy}");
    }

    #[tokio::test]
    async fn queue_limit_rejects() {
        let gate = Gate::new(1, Some(0));
        let _held = gate.acquire().await.unwrap();
        assert_eq!(gate.acquire().await.unwrap_err(), Rejected::QueueFull);
    }

    #[tokio::test]
    async fn cancelled_waiter_does_not_leak_slot() {
        let gate = Gate::new(1, None);
        let held = gate.acquire().await.unwrap();
        let waiting = timeout(Duration::from_millis(20), gate.acquire()).await;
        assert!(waiting.is_err(), "should still be waiting");
        drop(held);
        let again = timeout(Duration::from_secs(2), gate.acquire()).await;
        assert!(again.unwrap().is_ok());
    }

    #[tokio::test]
    async fn raising_capacity_admits_waiters() {
        let gate = Gate::new(1, None);
        let _held = gate.acquire().await.unwrap();
        let g2 = gate.clone();
        let waiter = tokio::spawn(async move { g2.acquire().await.map(|_slot| ()) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        gate.set_limits(2, None);
        timeout(Duration::from_secs(2), waiter)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(gate.occupancy().1, 2);
    }
}
