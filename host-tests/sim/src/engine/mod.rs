//! The discrete-event loop: arrivals, the plugin, the upstream and clients, in virtual time.
//!
//! Why discrete events over the real .wasm: every request runs through the plugin exactly as in
//! Envoy (headers in, decisions out, pauses resumed from ticks), while time jumps from event to
//! event — a minute of overload simulates in well under a second, and the same seed always
//! gives the same result. Each attempt is one proxy stream; the upstream is `upstream::Upstream`;
//! clients give up at their deadline (cancelling the stream) and retry as their class says.

mod attempt;
mod event;

use crate::arrivals::ArrivalProcess;
use crate::collect::Collector;
use crate::rng::Rng;
use crate::scenario::{ClassSpec, Loaded};
use crate::upstream::Upstream;
use attempt::{Attempt, State};
use ballast_mock_host::{Host, PluginModule};
use ballast_policy::duration::{Nanos, SECOND};
use event::{Event, Scheduled};
use std::collections::BinaryHeap;
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
}
