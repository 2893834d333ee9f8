//! The operations the seeded sequence draws from: first attempts (GET or POST), final responses
//! that say how many attempts Envoy made, resets before any response, and time passing with each
//! worker's once-a-second tick, with the request and response views they hand the pipeline.
//! Each writes what really happened into the ledger, and the assertions on its own immediate
//! outcome (what an arrival was granted, what a tick did) stay with it; they are apart from the
//! world so that each reads as what the host does, and from `checks`, which hold the budget
//! against the ledger.

use crate::checks::slot;
use crate::world::{InFlight, Life, Model};
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
        let vm = self.live[self.rng.index(WORKERS)];
        let get = self.rng.below(10) < 7;
        let id = self.next_id;
        self.next_id += 1;
        let contended_before = self.contended(vm);
        let reads_before = self.store.reads.get();
        let now = self.now;
        let begun = self.with_vm(vm, |pipeline, store| {
            pipeline.begin(
                store,
                &mut Request(if get { "GET" } else { "POST" }),
                id,
                now,
            )
        });
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
        let contended = self.contended(vm) > contended_before;
        let from_lease = self.store.reads.get() == reads_before;
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
            if from_lease {
                assert_eq!(
                    granted, self.max_retries,
                    "{ctx}: a lease lends a request all it wants or sends it to the budget"
                );
                self.seen.lease_grants += 1;
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
            vm,
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
            self.last_disruption = Some(self.now);
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
        let (vm, now) = (request.vm, self.now);
        let contended_before = self.contended(vm);
        let writes_before = self.store.writes.get();
        let exchange = &mut request.exchange;
        self.with_vm(vm, |pipeline, store| {
            pipeline.on_response_headers(
                store,
                exchange,
                &mut Response {
                    status,
                    attempts: used + 1,
                },
                end_of_stream,
                now,
            );
            if !end_of_stream {
                pipeline.on_response_end(store, exchange, now);
            }
            pipeline.on_done(store, exchange, now);
        });
        *slot(&mut self.ledger.used, request.second) += u64::from(used);
        // The unused retries go back to the VM's lease, or are owed until it next writes (a
        // write that lost every race keeps them owed): none is ever lost.
        *slot(&mut self.ledger.charged, request.second) -= u64::from(granted - used);
        // (A refund to a second that left the window is dropped: it counts nowhere.)
        let in_window = request.second + self.ttl() > self.second();
        if self.store.writes.get() == writes_before && in_window {
            self.vms[vm].owed += u64::from(granted - used);
        }
        if self.contended(vm) > contended_before {
            self.seen.contended_failure_writes += 1;
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
        let now = self.now;
        self.with_vm(request.vm, |pipeline, store| {
            pipeline.on_done(store, &mut request.exchange, now)
        });
        *slot(&mut self.ledger.used, request.second) += used;
        self.seen.resets += 1;
    }

    /// Advances time by `by`, ticking each running VM once a second on its own timer; a
    /// replaced configuration closes at its first tick with no request in flight.
    pub(crate) fn advance(&mut self, by: Nanos) {
        let target = self.now + by;
        loop {
            let next = self
                .vms
                .iter()
                .enumerate()
                .filter(|(_, vm)| matches!(vm.life, Life::Live | Life::Retired))
                .map(|(i, vm)| (vm.worker.next_tick, i))
                .min();
            let Some((at, vm)) = next.filter(|(at, _)| *at <= target) else {
                break;
            };
            self.now = at;
            self.vms[vm].worker.next_tick += TICK;
            let outcome = self.with_vm(vm, |pipeline, store| pipeline.tick(store, at));
            self.note_contention();
            assert!(
                outcome.reject.is_empty() && outcome.resume.is_empty(),
                "{}: a tick without a limiter acted on streams: {outcome:?}",
                self.ctx()
            );
            if self.vms[vm].life == Life::Retired && !self.in_flight.iter().any(|r| r.vm == vm) {
                self.close(vm);
            }
        }
        self.now = target;
    }
}
