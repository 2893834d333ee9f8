//! The operations the seeded sequence draws from: first attempts (GET or POST), final responses
//! that say how many attempts Envoy made, resets before any response, and time passing with each
//! worker's once-a-second tick, with the request and response views they hand the pipeline.
//! Each writes what really happened into the ledger, and the assertions on its own immediate
//! outcome (what an arrival was granted, what a tick did) stay with it; they are apart from the
//! world so that each reads as what the host does, and from `checks`, which hold the budget
//! against the ledger.

use crate::checks::slot;
use crate::world::{InFlight, Model};
use crate::{TICK, WORKERS};
use ballast_policy::duration::Nanos;
use ballast_policy::pipeline::{ResponseView, Verdict};
use ballast_policy::routing::RequestView;

/// A first attempt without headers of interest (no retry mark, no idempotency key).
struct Request(&'static str);

impl RequestView for Request {
    fn authority(&mut self) -> Option<&str> {
        Some("api.example")
    }
    fn path(&mut self) -> Option<&str> {
        Some("/orders")
    }
    fn method(&mut self) -> Option<&str> {
        Some(self.0)
    }
    fn header(&mut self, _name: &str) -> Option<&str> {
        None
    }
    fn route_name(&mut self) -> Option<&str> {
        None
    }
}

/// A final response: its status and `x-envoy-attempt-count`.
struct Response {
    status: u16,
    attempts: u32,
}

impl ResponseView for Response {
    fn header(&mut self, name: &str) -> Option<String> {
        match name {
            ":status" => Some(self.status.to_string()),
            "x-envoy-attempt-count" => Some(self.attempts.to_string()),
            _ => None,
        }
    }
}

impl Model {
    pub(crate) fn arrive(&mut self) {
        let worker = self.rng.index(WORKERS);
        let get = self.rng.below(10) < 7;
        let id = self.next_id;
        self.next_id += 1;
        let contended_before = self.contended(worker);
        let now = self.now;
        let begun = self.workers[worker].pipeline.begin(
            &self.store,
            &mut Request(if get { "GET" } else { "POST" }),
            id,
            now,
        );
        let ctx = self.ctx();
        let (exchange, effects) = begun.unwrap_or_else(|| panic!("{ctx}: routed to no set"));
        assert_eq!(effects.verdict, Verdict::Continue, "{ctx}");
        let header = effects
            .headers
            .iter()
            .find(|(name, _)| *name == "x-envoy-max-retries");
        let Some((_, Some(value))) = header else {
            panic!("{ctx}: no x-envoy-max-retries in {:?}", effects.headers);
        };
        let granted: u32 = value.parse().unwrap();
        let contended = self.contended(worker) > contended_before;
        let second = self.second();
        *slot(&mut self.ledger.firsts, second) += 1;
        self.ledger.arrivals.push(now);
        if get {
            assert!(
                granted <= self.max_retries,
                "{ctx}: GET granted {granted}, more than {}",
                self.max_retries
            );
            if contended {
                assert_eq!(
                    granted, 0,
                    "{ctx}: granted by an update that was not stored"
                );
                self.seen.contended_reserves += 1;
            } else if granted < self.max_retries {
                let left = self.budget().available_milli(&self.params, now);
                assert!(
                    left < 1_000,
                    "{ctx}: GET granted {granted} of {} with {left} thousandths of a retry left",
                    self.max_retries
                );
            }
            match granted {
                0 if !contended => self.seen.denied_grants += 1,
                0 => {}
                g if g == self.max_retries => self.seen.full_grants += 1,
                _ => self.seen.partial_grants += 1,
            }
            *slot(&mut self.ledger.charged, second) += u64::from(granted);
            if granted > 0 {
                self.check_at_grant();
            }
            if !contended && granted < self.max_retries {
                self.check_earned(granted);
            }
        } else {
            assert_eq!(granted, 0, "{ctx}: POST granted {granted} retries");
        }
        self.in_flight.push(InFlight {
            worker,
            exchange,
            get,
            granted,
            second,
        });
    }

    /// Notes when an update lost every race.
    pub(crate) fn note_contention(&mut self) {
        let updates = self.store.contended_updates.get();
        if updates != self.contended_seen {
            self.contended_seen = updates;
            self.last_contended = Some(self.now);
        }
    }

    /// A final response: Envoy made `used` of the granted retries.
    pub(crate) fn respond(&mut self) {
        if self.in_flight.is_empty() {
            return;
        }
        // Half the time the oldest, so requests do not linger for ever.
        let at = if self.rng.below(2) == 0 {
            0
        } else {
            self.rng.index(self.in_flight.len())
        };
        let mut request = self.in_flight.remove(at);
        let granted = request.granted;
        let used = match self.rng.below(2) {
            _ if granted == 0 => 0,
            0 => granted,
            _ => u32::try_from(self.rng.below(u64::from(granted) + 1)).unwrap(),
        };
        let status = if used == granted && self.rng.below(5) != 0 {
            503
        } else {
            200
        };
        let end_of_stream = self.rng.below(2) == 0;
        let (worker, now) = (request.worker, self.now);
        let contended_before = self.contended(worker);
        let pipeline = &self.workers[worker].pipeline;
        pipeline.on_response_headers(
            &self.store,
            &mut request.exchange,
            &mut Response {
                status,
                attempts: used + 1,
            },
            end_of_stream,
            now,
        );
        if !end_of_stream {
            pipeline.on_response_end(&self.store, &mut request.exchange, now);
        }
        pipeline.on_done(&self.store, &mut request.exchange, now);
        let refund_lost = self.contended(worker) > contended_before;
        *slot(&mut self.ledger.used, request.second) += u64::from(used);
        if refund_lost {
            self.seen.contended_refunds += 1;
        } else {
            let charged = slot(&mut self.ledger.charged, request.second);
            *charged -= u64::from(granted - used);
        }
        if granted > used && request.second + self.ttl() <= self.second() {
            self.seen.stale_refunds += 1;
        }
        self.allowed += u64::from(used);
        if status >= 500 {
            self.ledger.failures.push(now);
            if !request.get {
                self.denied_not_idempotent += 1;
            } else if used == granted && granted < self.max_retries {
                self.denied_budget += 1;
            }
        }
    }

    /// A request reset before any response: Envoy may have made some of its retries, ballast
    /// cannot know how many and refunds nothing.
    pub(crate) fn reset(&mut self) {
        if self.in_flight.is_empty() {
            return;
        }
        let at = self.rng.index(self.in_flight.len());
        let mut request = self.in_flight.remove(at);
        let used = self.rng.below(u64::from(request.granted) + 1);
        self.workers[request.worker]
            .pipeline
            .on_done(&self.store, &mut request.exchange, self.now);
        *slot(&mut self.ledger.used, request.second) += used;
        self.seen.resets += 1;
    }

    /// Advances time by `by`, ticking each worker once a second on its own timer.
    pub(crate) fn advance(&mut self, by: Nanos) {
        let target = self.now + by;
        loop {
            let (at, worker) = (0..WORKERS)
                .map(|i| (self.workers[i].next_tick, i))
                .min()
                .unwrap();
            if at > target {
                break;
            }
            self.now = at;
            self.workers[worker].next_tick += TICK;
            let outcome = self.workers[worker].pipeline.tick(&self.store, at);
            self.note_contention();
            assert!(
                outcome.reject.is_empty() && outcome.resume.is_empty(),
                "{}: a tick without a limiter acted on streams: {outcome:?}",
                self.ctx()
            );
        }
        self.now = target;
    }
}
