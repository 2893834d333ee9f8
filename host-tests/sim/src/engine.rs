//! The discrete-event loop: arrivals, the plugin, the upstream and clients, in virtual time.
//!
//! Why discrete events over the real .wasm: every request runs through the plugin exactly as in
//! Envoy (headers in, decisions out, pauses resumed from ticks), while time jumps from event to
//! event — a minute of overload simulates in well under a second, and the same seed always
//! gives the same result. Each attempt is one proxy stream; the upstream is `upstream::Upstream`;
//! clients give up at their deadline (cancelling the stream) and retry as their class says.

use crate::arrivals::ArrivalProcess;
use crate::collect::Collector;
use crate::rng::Rng;
use crate::scenario::{ClassSpec, DeadlineHeader, Loaded};
use crate::upstream::{Offer, Upstream};
use ballast_mock_host::{Action, Host, PluginModule, StreamId};
use ballast_policy::duration::{Nanos, SECOND};
use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The plugin .wasm.
    pub wasm: PathBuf,
    /// Overrides the scenario's seed.
    pub seed: Option<u64>,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// Raw results, turned into a report by `report.rs`.
pub struct Outcome {
    /// Per-class and per-bucket counts.
    pub collector: Collector,
    /// Upstream totals.
    pub upstream: Upstream,
    /// Attempts still in flight when the drain period ended, per class.
    pub unfinished: Vec<u64>,
    /// Every plugin metric at the end: (type, name, value).
    pub metrics: Vec<(String, String, u64)>,
    /// The seed used.
    pub seed: u64,
    /// Proxy streams driven (attempts).
    pub streams: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
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
struct Scheduled {
    at: Nanos,
    seq: u64,
    event: Event,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Free,
    Paused,
    Upstream,
    /// The client gave up; the upstream is still working on it.
    Detached,
}

#[derive(Debug, Clone, Copy)]
struct Attempt {
    class: usize,
    number: u32,
    arrived: Nanos,
    deadline_at: Option<Nanos>,
    stream: StreamId,
    state: State,
    upstream_started: Option<Nanos>,
    generation: u32,
}

struct Engine<'a> {
    loaded: &'a Loaded,
    host: Host,
    now: Nanos,
    end: Nanos,
    drain_end: Nanos,
    events: BinaryHeap<Scheduled>,
    seq: u64,
    arrivals: Vec<ArrivalProcess>,
    rng: Rng,
    upstream: Upstream,
    attempts: Vec<Attempt>,
    free: Vec<usize>,
    paused: Vec<usize>,
    next_worker: usize,
    collector: Collector,
    streams: u64,
    /// Per class: the request headers that are the same for every request.
    base_headers: Vec<Vec<(String, String)>>,
    /// Reused buffer for the values of per-request headers.
    header_values: String,
}

/// Runs a loaded scenario to completion.
pub fn run(loaded: &Loaded, options: &Options) -> Result<Outcome, String> {
    let s = &loaded.scenario;
    let seed = options.seed.unwrap_or(s.seed);
    let module = PluginModule::load(&options.wasm).map_err(|e| e.to_string())?;
    let mut host = Host::builder(&module)
        .workers(s.workers)
        .plugin_config(loaded.plugin_config.clone())
        .seed(seed)
        .recycle_finished_streams(true)
        .capture_logs(Some(ballast_mock_host::LogLevel::Warn))
        .build()
        .map_err(|e| e.to_string())?;
    let started = host.start().map_err(|e| e.to_string())?;
    if !started.all_ok() {
        let logs: Vec<String> = host.logs().iter().map(|l| l.message.clone()).collect();
        return Err(format!(
            "the plugin rejected its configuration:\n{}",
            logs.join("\n")
        ));
    }
    let end = s.duration.0;
    let drain = s.drain.map_or(30 * SECOND, |d| d.0);
    let bucket = s.sample_every.map_or(SECOND, |d| d.0.max(1));
    let arrivals = s
        .classes
        .iter()
        .enumerate()
        .map(|(i, c)| ArrivalProcess::new(&c.rate, c.arrivals, Rng::new(seed, 100 + i as u64)))
        .collect();
    let mut engine = Engine {
        loaded,
        host,
        now: 0,
        end,
        drain_end: end.saturating_add(drain),
        events: BinaryHeap::new(),
        seq: 0,
        arrivals,
        rng: Rng::new(seed, 1),
        upstream: Upstream::new(s.upstream.clone(), Rng::new(seed, 2)),
        attempts: Vec::new(),
        free: Vec::new(),
        paused: Vec::new(),
        next_worker: 0,
        collector: Collector::new(s.classes.len(), bucket, end, &s.plot_metrics),
        streams: 0,
        base_headers: s.classes.iter().map(Engine::base_headers).collect(),
        header_values: String::new(),
    };
    engine.run(options.progress)?;
    let mut unfinished = vec![0u64; s.classes.len()];
    for a in engine.attempts.iter().filter(|a| a.state != State::Free) {
        if let Some(n) = unfinished.get_mut(a.class) {
            *n += 1;
        }
    }
    let metrics = engine
        .host
        .metrics()
        .into_iter()
        .map(|(kind, name, value)| (format!("{kind:?}").to_lowercase(), name, value))
        .collect();
    Ok(Outcome {
        collector: engine.collector,
        upstream: engine.upstream,
        unfinished,
        metrics,
        seed,
        streams: engine.streams,
    })
}

impl Engine<'_> {
    fn push(&mut self, at: Nanos, event: Event) {
        self.seq += 1;
        self.events.push(Scheduled {
            at,
            seq: self.seq,
            event,
        });
    }

    fn class(&self, class: usize) -> Result<&ClassSpec, String> {
        self.loaded
            .scenario
            .classes
            .get(class)
            .ok_or_else(|| format!("no class {class}"))
    }

    fn run(&mut self, progress: bool) -> Result<(), String> {
        for class in 0..self.arrivals.len() {
            if let Some(t) = self.arrivals[class].next_before(self.end) {
                self.push(t, Event::Arrival { class });
            }
        }
        self.push(self.collector.bucket.min(self.end), Event::Sample);
        let bar = progress.then(|| crate::progress::bar(self.drain_end));
        let mut next_report = 0;
        while let Some(Scheduled { at, event, .. }) = self.events.pop() {
            if at > self.drain_end {
                break;
            }
            if at > self.now {
                self.host
                    .advance(Duration::from_nanos(at - self.now))
                    .map_err(|e| e.to_string())?;
                self.now = at;
                self.check_resumed()?;
            }
            self.handle(event)?;
            self.check_resumed()?;
            if let Some(bar) = &bar {
                if self.now >= next_report {
                    bar.set_position(self.now / 1_000_000);
                    next_report = self.now + SECOND / 2;
                }
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        Ok(())
    }

    fn handle(&mut self, event: Event) -> Result<(), String> {
        match event {
            Event::Arrival { class } => {
                self.arrive(class, 1)?;
                if let Some(t) = self.arrivals[class].next_before(self.end) {
                    self.push(t, Event::Arrival { class });
                }
                Ok(())
            }
            Event::Retry { class, number } => self.arrive(class, number),
            Event::UpstreamDone { attempt, status } => self.upstream_done(attempt, status),
            Event::Timeout {
                attempt,
                generation,
            } => self.timeout(attempt, generation),
            Event::Sample => {
                self.sample();
                let next = self.now + self.collector.bucket;
                if next <= self.end {
                    self.push(next, Event::Sample);
                }
                Ok(())
            }
        }
    }

    fn sample(&mut self) {
        self.collector
            .upstream_load
            .push((self.upstream.busy() as u64, self.upstream.queued() as u64));
        let names: Vec<String> = self.collector.metric_series.keys().cloned().collect();
        for name in names {
            let value = self.host.gauge(&name).or_else(|| self.host.counter(&name));
            if let Some(series) = self.collector.metric_series.get_mut(&name) {
                series.push(value);
            }
        }
    }

    /// The request headers of every class that do not vary per request, in the order they
    /// are sent: `:method`, `:path`, `:authority`, `:scheme`, the class's headers, then the
    /// priority header. Built once; `arrive` appends the per-request ones.
    fn base_headers(spec: &ClassSpec) -> Vec<(String, String)> {
        let mut headers = vec![
            (":method".to_string(), spec.method.clone()),
            (":path".to_string(), spec.path.clone()),
            (":authority".to_string(), spec.authority.clone()),
            (":scheme".to_string(), "http".to_string()),
        ];
        headers.extend(spec.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Some(priority) = &spec.priority {
            headers.push(("x-ballast-priority".to_string(), priority.clone()));
        }
        headers
    }

    fn arrive(&mut self, class: usize, number: u32) -> Result<(), String> {
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

    fn allocate(&mut self, attempt: Attempt) -> usize {
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

    fn release(&mut self, slot: usize) {
        self.attempts[slot].state = State::Free;
        self.free.push(slot);
    }

    /// Paused streams the plugin has since continued (or answered) move on.
    fn check_resumed(&mut self) -> Result<(), String> {
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

    fn admit_upstream(&mut self, slot: usize) -> Result<(), String> {
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

    fn upstream_done(&mut self, slot: usize, status: u16) -> Result<(), String> {
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

    fn respond(&mut self, slot: usize, status: u16, reason: Option<&str>) -> Result<(), String> {
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

    fn rejected(
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

    fn timeout(&mut self, slot: usize, generation: u32) -> Result<(), String> {
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

    fn failed(
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
