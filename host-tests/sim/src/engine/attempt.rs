//! One request attempt's life: arrival at the proxy, pause and resumption by the plugin, the
//! upstream, the client's deadline, the response, and the client's retry.
//!
//! Why apart from `mod.rs`: the event loop there only dispatches; what an attempt goes through
//! is here, in the order it happens.

use super::event::Event;
use super::Engine;
use crate::scenario::DeadlineHeader;
use crate::upstream::Offer;
use ballast_mock_host::{Action, StreamId};
use ballast_policy::duration::Nanos;
use std::fmt::Write as _;

/// The source address of every simulated request (`source.address`).
const CLIENT_ADDRESS: &str = "127.0.0.1:40000";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Free,
    Paused,
    Upstream,
    /// The client gave up; the upstream is still working on it.
    Detached,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Attempt {
    pub(super) class: usize,
    pub(super) number: u32,
    pub(super) arrived: Nanos,
    pub(super) deadline_at: Option<Nanos>,
    pub(super) stream: StreamId,
    pub(super) state: State,
    pub(super) upstream_started: Option<Nanos>,
    pub(super) generation: u32,
}

impl Engine<'_> {
    pub(super) fn arrive(&mut self, class: usize, number: u32) -> Result<(), String> {
        if number == 1 {
            self.collector.offered(class, self.now);
        }
        if let Some(t) = self.collector.classes.get_mut(class) {
            t.attempts += 1;
            if number > 1 {
                t.retries += 1;
            }
        }
        let loaded = self.loaded;
        let spec = loaded
            .scenario
            .classes
            .get(class)
            .ok_or_else(|| format!("no class {class}"))?;
        let deadline = spec.deadline.as_ref().map(|d| self.rng.sample(d).max(1));
        // The headers that vary per request (idempotency key, retry mark, deadline): their
        // values are written into one reused buffer, the names borrowed from the spec.
        let mut values = std::mem::take(&mut self.header_values);
        values.clear();
        let mut extra: [(&str, usize, usize); 3] = [("", 0, 0); 3];
        let mut n_extra = 0;
        if spec.idempotency_key {
            let from = values.len();
            let _ = write!(values, "k-{}", self.streams);
            extra[n_extra] = ("idempotency-key", from, values.len());
            n_extra += 1;
        }
        if number > 1 {
            let from = values.len();
            let _ = write!(values, "{number}");
            extra[n_extra] = (spec.retries.mark_header.as_str(), from, values.len());
            n_extra += 1;
        }
        if let Some(d) = deadline {
            let ms = d.div_ceil(1_000_000).max(1);
            let header = match spec.deadline_header {
                DeadlineHeader::None => None,
                DeadlineHeader::GrpcTimeout => Some(("grpc-timeout", "m")),
                DeadlineHeader::XEnvoyExpectedRqTimeoutMs => {
                    Some(("x-envoy-expected-rq-timeout-ms", ""))
                }
            };
            if let Some((name, unit)) = header {
                let from = values.len();
                let _ = write!(values, "{ms}{unit}");
                extra[n_extra] = (name, from, values.len());
                n_extra += 1;
            }
        }
        let base = self
            .base_headers
            .get(class)
            .ok_or_else(|| format!("no class {class}"))?;
        let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(base.len() + n_extra);
        pairs.extend(base.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        for (name, from, to) in extra.iter().take(n_extra) {
            pairs.push((name, values.get(*from..*to).unwrap_or_default()));
        }
        let worker = self.next_worker;
        self.next_worker = (self.next_worker + 1) % self.loaded.scenario.workers;
        self.streams += 1;
        let mut stream = self.host.http_stream(worker).map_err(|e| e.to_string())?;
        // The simulated clients are local peers, as a sidecar's are: a policy that trusts
        // 127.0.0.0/8 believes their hints (deadline, priority, retry marks).
        stream
            .set_property("source.address", CLIENT_ADDRESS)
            .map_err(|e| e.to_string())?;
        if let Some(name) = &spec.route_name {
            stream
                .set_property("xds.route_name", name.as_str())
                .map_err(|e| e.to_string())?;
        }
        let action = stream
            .request_headers(&pairs, true)
            .map_err(|e| e.to_string())?;
        let id = stream.id();
        let local = stream.local_response();
        drop(pairs);
        self.header_values = values;
        let slot = self.allocate(Attempt {
            class,
            number,
            arrived: self.now,
            deadline_at: deadline.map(|d| self.now + d),
            stream: id,
            state: State::Paused,
            upstream_started: None,
            generation: 0,
        });
        if let Some(deadline_at) = self.attempts[slot].deadline_at {
            let generation = self.attempts[slot].generation;
            self.push(
                deadline_at,
                Event::Timeout {
                    attempt: slot,
                    generation,
                },
            );
        }
        match (local, action) {
            (Some(local), _) => self.rejected(slot, local.status_code, &local.headers),
            (None, Action::Continue) => self.admit_upstream(slot),
            (None, Action::Pause) => {
                self.paused.push(slot);
                Ok(())
            }
            (None, Action::Closed) => self.rejected(slot, 0, &[]),
        }
    }

    pub(super) fn allocate(&mut self, attempt: Attempt) -> usize {
        match self.free.pop() {
            Some(slot) => {
                let generation = self.attempts[slot].generation.wrapping_add(1);
                self.attempts[slot] = Attempt {
                    generation,
                    ..attempt
                };
                slot
            }
            None => {
                self.attempts.push(attempt);
                self.attempts.len() - 1
            }
        }
    }

    pub(super) fn release(&mut self, slot: usize) {
        self.attempts[slot].state = State::Free;
        self.free.push(slot);
    }

    /// Paused streams the plugin has since continued (or answered) move on.
    pub(super) fn check_resumed(&mut self) -> Result<(), String> {
        let mut i = 0;
        while i < self.paused.len() {
            let slot = self.paused[i];
            let id = self.attempts[slot].stream;
            let stream = self.host.stream(id).map_err(|e| e.to_string())?;
            if let Some(local) = stream.local_response() {
                self.paused.swap_remove(i);
                self.rejected(slot, local.status_code, &local.headers)?;
            } else if !stream.request_paused() {
                self.paused.swap_remove(i);
                self.admit_upstream(slot)?;
            } else {
                i += 1;
            }
        }
        Ok(())
    }

    pub(super) fn admit_upstream(&mut self, slot: usize) -> Result<(), String> {
        let class = self.attempts[slot].class;
        if let Some(t) = self.collector.classes.get_mut(class) {
            t.admitted += 1;
        }
        self.attempts[slot].state = State::Upstream;
        match self.upstream.offer(self.now, slot) {
            Offer::Started { done_at, status } => {
                self.attempts[slot].upstream_started = Some(self.now);
                self.push(
                    done_at,
                    Event::UpstreamDone {
                        attempt: slot,
                        status,
                    },
                );
                Ok(())
            }
            Offer::Queued => Ok(()),
            Offer::Refused { status, reason } => self.respond(slot, status, Some(reason)),
        }
    }

    pub(super) fn upstream_done(&mut self, slot: usize, status: u16) -> Result<(), String> {
        if let Some((next, Offer::Started { done_at, status })) = self.upstream.complete(self.now) {
            self.attempts[next].upstream_started = Some(self.now);
            self.push(
                done_at,
                Event::UpstreamDone {
                    attempt: next,
                    status,
                },
            );
        }
        let attempt = self.attempts[slot];
        match attempt.state {
            State::Upstream => self.respond(slot, status, None),
            State::Detached => {
                let gave_up = attempt.deadline_at.unwrap_or(self.now);
                let from = attempt.upstream_started.unwrap_or(self.now).max(gave_up);
                self.collector.work_after_deadline += self.now.saturating_sub(from);
                self.release(slot);
                Ok(())
            }
            State::Free | State::Paused => Ok(()),
        }
    }

    pub(super) fn respond(
        &mut self,
        slot: usize,
        status: u16,
        reason: Option<&str>,
    ) -> Result<(), String> {
        let attempt = self.attempts[slot];
        let mut stream = self
            .host
            .stream(attempt.stream)
            .map_err(|e| e.to_string())?;
        let status_text = status.to_string();
        stream
            .response_headers(&[(":status", status_text.as_str())], true)
            .map_err(|e| e.to_string())?;
        stream.finish().map_err(|e| e.to_string())?;
        self.release(slot);
        self.collector
            .responded(attempt.class, self.now, self.now - attempt.arrived);
        if (200..300).contains(&status) {
            self.collector.resolved(attempt.class, self.now, true);
            Ok(())
        } else {
            let reason = reason.map_or_else(|| format!("upstream_{status}"), str::to_string);
            self.failed(attempt, &reason, Some(status))
        }
    }

    pub(super) fn rejected(
        &mut self,
        slot: usize,
        status: u32,
        headers: &[(String, String)],
    ) -> Result<(), String> {
        let attempt = self.attempts[slot];
        let mut stream = self
            .host
            .stream(attempt.stream)
            .map_err(|e| e.to_string())?;
        stream.finish().map_err(|e| e.to_string())?;
        self.release(slot);
        let reason = headers
            .iter()
            .find(|(k, _)| k == "x-ballast-rejected")
            .map_or_else(
                || format!("plugin:local_{status}"),
                |(_, v)| format!("plugin:{v}"),
            );
        self.failed(attempt, &reason, u16::try_from(status).ok())
    }

    pub(super) fn timeout(&mut self, slot: usize, generation: u32) -> Result<(), String> {
        let attempt = self.attempts[slot];
        if attempt.generation != generation {
            return Ok(());
        }
        match attempt.state {
            State::Paused => {
                self.paused.retain(|p| *p != slot);
                self.release(slot);
            }
            State::Upstream => self.attempts[slot].state = State::Detached,
            State::Free | State::Detached => return Ok(()),
        }
        // The client hung up: Envoy resets the stream, the plugin sees on_done without a response.
        let mut stream = self
            .host
            .stream(attempt.stream)
            .map_err(|e| e.to_string())?;
        stream.finish().map_err(|e| e.to_string())?;
        self.failed(attempt, "client_timeout", None)
    }

    pub(super) fn failed(
        &mut self,
        attempt: Attempt,
        reason: &str,
        status: Option<u16>,
    ) -> Result<(), String> {
        self.collector
            .attempt_failed(attempt.class, self.now, reason);
        let retries = &self.class(attempt.class)?.retries;
        let retry = attempt.number <= retries.max
            && match status {
                Some(status) => retries.on_status.contains(&status),
                None => retries.on_timeout,
            };
        if retry {
            let at = self.now + retries.backoff.0;
            self.push(
                at,
                Event::Retry {
                    class: attempt.class,
                    number: attempt.number + 1,
                },
            );
        } else {
            self.collector.resolved(attempt.class, self.now, false);
        }
        Ok(())
    }
}
