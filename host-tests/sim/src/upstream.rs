//! The upstream service model: C servers, a FIFO queue, service times, failures, outages.
//!
//! Why this shape: the policies ballast implements exist because real services saturate —
//! beyond capacity, requests queue and latency climbs without bound. A fixed number of servers
//! with a FIFO queue (an M/G/c queue) reproduces exactly that, and windows of outage or slower
//! service let a scenario test how a policy follows a changing upstream.

use crate::rng::Rng;
use crate::scenario::UpstreamSpec;
use ballast_policy::duration::Nanos;
use std::collections::VecDeque;

/// What happened to a request offered to the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Service started: it completes at `done_at` with `status`.
    Started {
        /// Completion time.
        done_at: Nanos,
        /// Response status.
        status: u16,
    },
    /// All servers busy: waiting in the queue.
    Queued,
    /// Answered at once (outage or full queue) with `status`.
    Refused {
        /// Response status.
        status: u16,
        /// Why, for reports.
        reason: &'static str,
    },
}

/// The upstream's state.
#[derive(Debug)]
pub struct Upstream {
    spec: UpstreamSpec,
    rng: Rng,
    busy: usize,
    queue: VecDeque<usize>,
    /// Requests offered to the upstream (including refused ones).
    pub requests: u64,
    /// Most requests in service at once.
    pub max_busy: usize,
    /// Longest queue seen.
    pub max_queue: usize,
}

impl Upstream {
    /// An idle upstream.
    pub fn new(spec: UpstreamSpec, rng: Rng) -> Upstream {
        Upstream {
            spec,
            rng,
            busy: 0,
            queue: VecDeque::new(),
            requests: 0,
            max_busy: 0,
            max_queue: 0,
        }
    }

    /// Offers job `job` at `now`.
    pub fn offer(&mut self, now: Nanos, job: usize) -> Offer {
        self.requests += 1;
        if let Some(status) = self.outage_status(now) {
            return Offer::Refused {
                status,
                reason: "upstream_outage",
            };
        }
        if self.spec.capacity == 0 || self.busy < self.spec.capacity {
            return self.start(now);
        }
        if self
            .spec
            .queue_limit
            .is_some_and(|limit| self.queue.len() >= limit)
        {
            return Offer::Refused {
                status: 503,
                reason: "upstream_queue_full",
            };
        }
        self.queue.push_back(job);
        self.max_queue = self.max_queue.max(self.queue.len());
        Offer::Queued
    }

    /// A job finished at `now`: frees its server and starts the next queued job, if any,
    /// returning it with its completion.
    pub fn complete(&mut self, now: Nanos) -> Option<(usize, Offer)> {
        self.busy = self.busy.saturating_sub(1);
        let job = self.queue.pop_front()?;
        Some((job, self.start(now)))
    }

    /// Requests in service.
    pub fn busy(&self) -> usize {
        self.busy
    }

    /// Requests waiting.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    fn start(&mut self, now: Nanos) -> Offer {
        self.busy += 1;
        self.max_busy = self.max_busy.max(self.busy);
        let factor = self
            .spec
            .latency_shifts
            .iter()
            .filter(|w| w.from.0 <= now && now < w.to.0)
            .map(|w| w.factor.unwrap_or(1.0))
            .product::<f64>();
        let service = (self.rng.sample(&self.spec.service_time) as f64 * factor) as Nanos;
        let failed = self.spec.failure_ratio > 0.0 && self.rng.unit() < self.spec.failure_ratio;
        let status = if failed {
            self.spec.failure_status
        } else {
            200
        };
        Offer::Started {
            done_at: now.saturating_add(service.max(1)),
            status,
        }
    }

    fn outage_status(&self, now: Nanos) -> Option<u16> {
        self.spec
            .outages
            .iter()
            .find(|w| w.from.0 <= now && now < w.to.0)
            .map(|w| w.status.unwrap_or(503))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Distribution, Dur, Window};

    fn spec(capacity: usize, queue_limit: Option<usize>) -> UpstreamSpec {
        UpstreamSpec {
            capacity,
            queue_limit,
            service_time: Distribution::Fixed(Dur(10)),
            failure_ratio: 0.0,
            failure_status: 503,
            outages: vec![Window {
                from: Dur(100),
                to: Dur(200),
                status: Some(502),
                factor: None,
            }],
            latency_shifts: vec![Window {
                from: Dur(300),
                to: Dur(400),
                status: None,
                factor: Some(3.0),
            }],
        }
    }

    #[test]
    fn queues_beyond_capacity_and_refuses_beyond_the_queue() {
        let mut u = Upstream::new(spec(2, Some(1)), Rng::new(1, 0));
        assert_eq!(
            u.offer(0, 0),
            Offer::Started {
                done_at: 10,
                status: 200
            }
        );
        assert_eq!(
            u.offer(0, 1),
            Offer::Started {
                done_at: 10,
                status: 200
            }
        );
        assert_eq!(u.offer(0, 2), Offer::Queued);
        assert!(matches!(
            u.offer(0, 3),
            Offer::Refused {
                status: 503,
                reason: "upstream_queue_full"
            }
        ));
        assert_eq!(
            u.complete(10),
            Some((
                2,
                Offer::Started {
                    done_at: 20,
                    status: 200
                }
            ))
        );
        assert_eq!(u.complete(10), None);
        assert_eq!((u.busy(), u.max_busy, u.max_queue), (1, 2, 1));
    }

    #[test]
    fn outages_and_latency_shifts() {
        let mut u = Upstream::new(spec(0, None), Rng::new(1, 0));
        assert!(matches!(
            u.offer(150, 0),
            Offer::Refused { status: 502, .. }
        ));
        assert_eq!(
            u.offer(350, 1),
            Offer::Started {
                done_at: 380,
                status: 200
            }
        );
        assert_eq!(
            u.offer(450, 2),
            Offer::Started {
                done_at: 460,
                status: 200
            }
        );
    }
}
