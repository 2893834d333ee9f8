//! The event grammar and the properties of the `plugin_events` fuzz target: the real ballast
//! .wasm in the mock host under arbitrary event sequences — requests with hostile headers from
//! trusted and untrusted peers, bodies, responses, resets, ticks, time jumps and wall-clock
//! steps, worker crashes and reloads, configuration updates (new root context, in place,
//! refused, arbitrary bytes), failing host calls, lost CAS races and corrupted shared data.
//!
//! Two programs include this file: the fuzz target (`fuzz_targets/plugin_events.rs`, coverage
//! guided, `make fuzz`) and the replay test in the mock host's suite
//! (`tests/plugin_events_replay.rs`, the committed corpus plus seeded random inputs, part of
//! `make test` without the 5-minute instrumented build). One grammar, one set of properties.
//!
//! Properties, beyond "the VM never traps":
//! - **none lost**: once time has passed every wait, no request of a live VM is still paused
//!   (each was admitted or answered) — checked when no host call was made to fail;
//! - **bounded**: requests forwarded and not yet answered by the upstream never exceed the
//!   largest fixed limit in force — checked while only the fixed-limit configurations ran and
//!   nothing (failed calls, lost races, corrupted records) licensed the limiter to fail open;
//! - **nothing left behind**: when every stream has ended and the dead VMs' entries have timed
//!   out, every limiter gauge reads 0 in flight and 0 queued.
//!
//! A property that does not hold panics with what was seen (both programs report the input).
#![allow(clippy::panic, clippy::expect_used, clippy::indexing_slicing)] // a checker: panics are its verdicts

use arbitrary::Arbitrary;
use ballast_mock_host::{ErrorKind, Host, LogLevel, PluginModule, StreamId};
use std::time::Duration;

const TRUST: &str = r#""trusted_peers": {"source_cidrs": ["10.0.0.0/8"]},
    "priority": {"classes": ["critical", "normal", "sheddable"], "default": "normal",
                 "header": "x-ballast-priority"}"#;

/// Fixed limits (the bound is checked while only these ran): every request goes to `api`.
const FIXED: [(&str, u32); 2] = [
    (
        r#""policy_sets": {"api": {
            "concurrency": {"algorithm": "fixed", "initial_limit": 3, "queue": {"size": 4, "max_wait": "50ms"}},
            "retry_budget": {"ratio": 0.2, "min_retries_per_second": 1, "ttl": "2s"},
            "retry": {"max_retries_per_request": 2, "idempotency_key_header": "idempotency-key", "explain_header": "x-ballast-retry"},
            "deadline": {"default": "2s", "max": "5s"},
            "shedding": {"rate_limits": {"sheddable": {"per_second": 20, "burst": 2, "scope": "shared"}}}}},
          "default_policy_set": "api""#,
        3,
    ),
    (
        r#""policy_sets": {"api": {
            "concurrency": {"algorithm": "fixed", "initial_limit": 5, "queue": {"size": 2, "max_wait": "30ms", "order": "lifo"}},
            "deadline": {"default": "1s"}, "shedding": {}}},
          "default_policy_set": "api""#,
        5,
    ),
];

/// Other configurations: adaptive limits, several sets and routes, a dry run, none at all.
const OTHERS: [&str; 3] = [
    r#""policy_sets": {
        "g": {"concurrency": {"algorithm": "gradient2", "initial_limit": 4, "min_limit": 1, "queue": {"size": 3, "max_wait": "40ms"}},
              "retry_budget": {"ratio": 0.1}, "retry": {}, "deadline": {"default": "3s"}, "shedding": {}},
        "v": {"concurrency": {"algorithm": "vegas", "initial_limit": 2, "min_limit": 1, "queue": {"size": 2, "max_wait": "20ms"}}},
        "plain": {}},
      "routes": [{"name": "v", "match": {"path": {"prefix": "/v"}}, "policy_set": "v", "priority": "critical"},
                 {"name": "p", "match": {"headers": [{"name": "x-plain", "present": true}]}, "policy_set": "plain"}],
      "default_policy_set": "g""#,
    r#""dry_run": true, "policy_sets": {"api": {
        "concurrency": {"algorithm": "fixed", "initial_limit": 1, "queue": {"size": 1, "max_wait": "10ms"}},
        "retry_budget": {}, "retry": {}, "deadline": {}, "shedding": {}}},
      "default_policy_set": "api""#,
    r#""policy_sets": {"api": {}}, "default_policy_set": "api""#,
];

/// Headers whose values the fuzzer chooses: every hint ballast reads, and some it passes on.
const HEADER_NAMES: [&str; 16] = [
    "grpc-timeout",
    "x-envoy-expected-rq-timeout-ms",
    "x-envoy-upstream-rq-timeout-ms",
    "x-ballast-deadline",
    "x-request-deadline",
    "x-ballast-priority",
    "x-envoy-attempt-count",
    "grpc-previous-rpc-attempts",
    "idempotency-key",
    "content-type",
    "x-plain",
    "te",
    "x-envoy-max-retries",
    "x-ballast-retry",
    "x-ballast-final",
    "x-envoy-ratelimited",
];

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "G\u{e9}T"];
const PATHS: [&str; 5] = ["/", "/v/1", "/api/x?q=1", "", "/\u{0}\u{ff}"];

/// Wrong statuses to answer host functions with (which ones: every proxy-wasm import of the
/// module, `PluginModule::host_functions`).
/// `HOLDER_TIMEOUT` of `filter/policy/src/concurrency/holders.rs`, in milliseconds.
const HOLDER_TIMEOUT_MS: u64 = 5_000;

const STATUSES: [i32; 10] = [1, 2, 3, 4, 6, 7, 8, 10, 12, 99];

#[derive(Arbitrary, Debug)]
pub enum Op {
    Open {
        worker: u8,
        method: u8,
        path: u8,
        headers: Vec<(u8, Vec<u8>)>,
        trusted: bool,
        end: bool,
    },
    RequestBody {
        stream: u8,
        len: u8,
        end: bool,
    },
    RequestTrailers {
        stream: u8,
    },
    Respond {
        stream: u8,
        status: u16,
        headers: Vec<(u8, Vec<u8>)>,
        end: bool,
    },
    ResponseBody {
        stream: u8,
        end: bool,
    },
    ResponseTrailers {
        stream: u8,
        grpc_status: u8,
    },
    Finish {
        stream: u8,
    },
    Advance {
        ms: u16,
    },
    Jump {
        secs: u16,
    },
    StepWall {
        ms: i32,
    },
    Crash {
        worker: u8,
    },
    Reload {
        worker: u8,
    },
    Reconfigure {
        config: u8,
        in_place: bool,
    },
    ReconfigureRaw {
        bytes: Vec<u8>,
    },
    FailImport {
        import: u8,
        status: u8,
    },
    HealImports,
    LoseCas {
        n: u8,
    },
    CorruptShared {
        key: u8,
        bytes: Vec<u8>,
    },
}

#[derive(Arbitrary, Debug)]
pub struct Scenario {
    pub two_workers: bool,
    pub config: u8,
    pub ops: Vec<Op>,
}

/// The policy sets with a limiter in each of `OTHERS`.
const OTHERS_LIMITED: [&[&str]; 3] = [&["g", "v"], &["api"], &[]];

/// A configuration by number (the fixed ones first): its text, its fixed limit, and its
/// policy sets with a limiter.
fn config(n: u8) -> (String, Option<u32>, &'static [&'static str]) {
    let n = usize::from(n) % (FIXED.len() + OTHERS.len());
    match FIXED.get(n) {
        Some((body, limit)) => (format!("{{{TRUST}, {body}}}"), Some(*limit), &["api"]),
        None => (
            format!("{{{TRUST}, {}}}", OTHERS[n - FIXED.len()]),
            None,
            OTHERS_LIMITED[n - FIXED.len()],
        ),
    }
}

struct Tracked {
    id: StreamId,
    /// The VM it began on (a reloaded VM's streams are gone with it).
    generation: u32,
    request_ended: bool,
    responded: bool,
}

struct Run {
    host: Host,
    streams: Vec<Tracked>,
    generation: Vec<u32>,
    crashed: Vec<bool>,
    /// Imports made to fail at some point (liveness is not promised then).
    failed_imports: bool,
    /// The limiter may exceed its limit as documented: lost races, unreadable records, failing
    /// host calls, a wall-clock step of at least the holder timeout (README, "Concurrency
    /// limit": a live VM mistaken for dead loses its entry until its next update).
    bound_off: bool,
    /// The largest fixed limit in force so far (`None`: another configuration ran).
    bound: Option<u32>,
    /// The policy sets with a limiter in the configuration in force (`None`: not known). A
    /// set that a newer configuration dropped keeps its last gauge values.
    limited: Option<&'static [&'static str]>,
    wall_back_ms: u64,
    /// The host functions the module imports (the ones a `FailImport` picks from).
    imports: Vec<String>,
}

/// The host's answer: a trap is a bug; a VM we crashed answers VmFailed; misuse is ignored.
fn check<T>(result: ballast_mock_host::Result<T>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(e) if *e.kind() == ErrorKind::Trap => panic!("the plugin trapped: {e}"),
        Err(_) => None,
    }
}

fn headers_of(raw: &[(u8, Vec<u8>)]) -> Vec<(&'static str, String)> {
    raw.iter()
        .take(12)
        .map(|(name, value)| {
            let name = HEADER_NAMES[usize::from(*name) % HEADER_NAMES.len()];
            (name, String::from_utf8_lossy(value).into_owned())
        })
        .collect()
}

impl Run {
    fn workers(&self) -> usize {
        self.host.worker_count()
    }

    fn live(&self, t: &Tracked) -> bool {
        !self.crashed[t.id.worker] && self.generation[t.id.worker] == t.generation
    }

    fn pick(&self, n: u8) -> Option<usize> {
        (!self.streams.is_empty()).then(|| usize::from(n) % self.streams.len())
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Open {
                worker,
                method,
                path,
                headers,
                trusted,
                end,
            } => {
                let worker = usize::from(worker) % self.workers();
                if self.crashed[worker] {
                    return;
                }
                let generation = self.generation[worker];
                let Some(mut stream) = check(self.host.http_stream(worker)) else {
                    return;
                };
                let source = if trusted {
                    "10.1.2.3:4000"
                } else {
                    "203.0.113.9:4000"
                };
                let _ = stream.set_property("source.address", source);
                let extra = headers_of(&headers);
                let mut all: Vec<(&str, &str)> = vec![
                    (":method", METHODS[usize::from(method) % METHODS.len()]),
                    (":path", PATHS[usize::from(path) % PATHS.len()]),
                    (":authority", "svc"),
                ];
                // A missing pseudo-header now and then.
                if path % 7 == 6 {
                    all.remove(usize::from(method) % 3);
                }
                all.extend(extra.iter().map(|(n, v)| (*n, v.as_str())));
                check(stream.request_headers(&all, end));
                let id = stream.id();
                self.streams.push(Tracked {
                    id,
                    generation,
                    request_ended: end,
                    responded: false,
                });
            }
            Op::RequestBody { stream, len, end } => {
                let Some(i) = self.pick(stream) else { return };
                if self.streams[i].request_ended {
                    return;
                }
                let id = self.streams[i].id;
                let body = vec![b'x'; usize::from(len)];
                if let Some(mut s) = check(self.host.stream(id)) {
                    check(s.request_body(&body, end));
                }
                self.streams[i].request_ended = end;
            }
            Op::RequestTrailers { stream } => {
                let Some(i) = self.pick(stream) else { return };
                if self.streams[i].request_ended {
                    return;
                }
                let id = self.streams[i].id;
                if let Some(mut s) = check(self.host.stream(id)) {
                    check(s.request_trailers(&[("x-t", "1")]));
                }
                self.streams[i].request_ended = true;
            }
            Op::Respond {
                stream,
                status,
                headers,
                end,
            } => {
                let Some(i) = self.pick(stream) else { return };
                if self.streams[i].responded || !self.forwarded(i) {
                    return;
                }
                let id = self.streams[i].id;
                let status = [200, 503, 504, 429, 500, 404, 0][usize::from(status % 7)];
                let status = status.to_string();
                let extra = headers_of(&headers);
                let mut all: Vec<(&str, &str)> = Vec::new();
                if status != "0" {
                    all.push((":status", status.as_str()));
                }
                all.extend(extra.iter().map(|(n, v)| (*n, v.as_str())));
                if let Some(mut s) = check(self.host.stream(id)) {
                    check(s.response_headers(&all, end));
                }
                self.streams[i].responded = true;
            }
            Op::ResponseBody { stream, end } => {
                let Some(i) = self.pick(stream) else { return };
                if !self.streams[i].responded {
                    return;
                }
                let id = self.streams[i].id;
                if let Some(mut s) = check(self.host.stream(id)) {
                    check(s.response_body(b"body", end));
                }
            }
            Op::ResponseTrailers {
                stream,
                grpc_status,
            } => {
                let Some(i) = self.pick(stream) else { return };
                if !self.streams[i].responded {
                    return;
                }
                let id = self.streams[i].id;
                let code = (grpc_status % 17).to_string();
                if let Some(mut s) = check(self.host.stream(id)) {
                    check(s.response_trailers(&[("grpc-status", code.as_str())]));
                }
            }
            Op::Finish { stream } => {
                let Some(i) = self.pick(stream) else { return };
                let t = self.streams.swap_remove(i);
                if let Some(mut s) = check(self.host.stream(t.id)) {
                    check(s.finish());
                }
            }
            Op::Advance { ms } => {
                check(
                    self.host
                        .advance(Duration::from_millis(u64::from(ms % 1500))),
                );
            }
            Op::Jump { secs } => {
                check(self.host.jump(Duration::from_secs(u64::from(secs % 7200))));
            }
            Op::StepWall { ms } => {
                let ms = i64::from(ms % 60_000);
                self.host.step_wall_clock(ms * 1_000_000);
                if ms < 0 {
                    self.wall_back_ms += ms.unsigned_abs();
                }
                // Entries written more than the holder timeout (5 s) away from the new time
                // look dead: their VMs' slots are free until each VM's next update.
                if ms.unsigned_abs() >= HOLDER_TIMEOUT_MS {
                    self.bound_off = true;
                }
            }
            Op::Crash { worker } => {
                let w = usize::from(worker) % self.workers();
                check(self.host.crash_worker(w));
                self.crashed[w] = true;
            }
            Op::Reload { worker } => {
                let w = usize::from(worker) % self.workers();
                if check(self.host.reload_worker(w)).is_some() {
                    self.crashed[w] = false;
                    self.generation[w] += 1;
                }
            }
            Op::Reconfigure {
                config: n,
                in_place,
            } => {
                let (text, limit, limited) = config(n);
                let accepted = if in_place {
                    check(self.host.reconfigure_in_place(text))
                } else {
                    check(self.host.reconfigure(text))
                };
                if let Some(accepted) = accepted {
                    if accepted.iter().any(|ok| *ok) {
                        self.bound = match (self.bound, limit) {
                            (Some(b), Some(l)) => Some(b.max(l)),
                            _ => None,
                        };
                        // Workers that refused (crashed ones) keep the old configuration.
                        let all = accepted.iter().all(|ok| *ok);
                        self.limited = all.then_some(limited);
                    }
                }
            }
            Op::ReconfigureRaw { bytes } => {
                if let Some(accepted) = check(self.host.reconfigure(bytes)) {
                    if accepted.iter().any(|ok| *ok) {
                        self.bound = None;
                        self.limited = None;
                    }
                }
            }
            Op::FailImport { import, status } => {
                let Some(import) = self
                    .imports
                    .get(usize::from(import) % self.imports.len().max(1))
                else {
                    return;
                };
                let status = STATUSES[usize::from(status) % STATUSES.len()];
                self.host.fail_import(import, Some(status));
                self.failed_imports = true;
                self.bound_off = true;
            }
            Op::HealImports => {
                for import in &self.imports {
                    self.host.fail_import(import, None);
                }
            }
            Op::LoseCas { n } => {
                self.host.fail_next_cas(u32::from(n % 16));
                self.bound_off = true;
            }
            Op::CorruptShared { key, bytes } => {
                let keys: Vec<String> = self.host.shared_data_keys();
                if let Some(k) = keys.get(usize::from(key) % keys.len().max(1)) {
                    self.host.set_shared_data(k, &bytes);
                    self.bound_off = true;
                }
            }
        }
        self.check_bound();
    }

    /// Whether the plugin let the request go upstream (not paused, not answered by itself).
    fn forwarded(&mut self, i: usize) -> bool {
        let id = self.streams[i].id;
        let Ok(s) = self.host.stream(id) else {
            return false;
        };
        !s.request_paused() && s.local_response().is_none() && s.reset_by_plugin().is_none()
    }

    /// Requests holding a slot for certain (forwarded, no response yet, on a live VM) never
    /// exceed the largest fixed limit in force.
    fn check_bound(&mut self) {
        let Some(bound) = self.bound else { return };
        if self.bound_off {
            return;
        }
        let mut holding = 0;
        for i in 0..self.streams.len() {
            if self.live(&self.streams[i]) && !self.streams[i].responded && self.forwarded(i) {
                holding += 1;
            }
        }
        assert!(
            holding <= bound,
            "{holding} requests past a limit of {bound}"
        );
    }

    /// Every wait is over: no request of a live VM may still be paused.
    fn check_none_lost(&mut self) {
        if self.failed_imports {
            return;
        }
        let wait = Duration::from_millis(self.wall_back_ms.saturating_add(6_000));
        check(self.host.jump(wait));
        check(self.host.advance(Duration::from_millis(30)));
        for i in 0..self.streams.len() {
            if !self.live(&self.streams[i]) {
                continue;
            }
            let id = self.streams[i].id;
            if let Ok(s) = self.host.stream(id) {
                assert!(
                    !s.request_paused(),
                    "stream {id:?} still paused after every wait ran out"
                );
            }
        }
    }

    /// Every stream ends; once the dead VMs' entries time out, the limiters read empty.
    fn check_nothing_left(&mut self) {
        for t in std::mem::take(&mut self.streams) {
            if let Some(mut s) = check(self.host.stream(t.id)) {
                check(s.finish());
            }
        }
        if self.failed_imports || self.bound_off || self.crashed.iter().all(|c| *c) {
            return;
        }
        // Past the holder timeout, one tick each; then once more for the gauges.
        check(self.host.jump(Duration::from_secs(6)));
        check(self.host.jump(Duration::from_secs(2)));
        let Some(limited) = self.limited else { return };
        for set in limited {
            for gauge in ["in_flight", "queued"] {
                let name = format!("ballast_concurrency_{gauge}.policy_set=.={set};.;");
                let value = self.host.gauge(&name);
                assert!(
                    value.is_none_or(|v| v == 0),
                    "{name} = {value:?} with every stream ended"
                );
            }
        }
    }
}

/// An input as libFuzzer's `fuzz_target!` decodes it (too short: none), so that the replay
/// test runs each corpus file as the scenario the fuzzer saw.
#[allow(dead_code)] // used by the replay test; the fuzz target decodes through `fuzz_target!`
pub fn decode(bytes: &[u8]) -> Option<Scenario> {
    if bytes.len() < <Scenario as Arbitrary>::size_hint(0).0 {
        return None;
    }
    Scenario::arbitrary_take_rest(arbitrary::Unstructured::new(bytes)).ok()
}

/// What one scenario exercised (the replay test shows the properties had material).
#[derive(Debug, Default, Clone, Copy)]
pub struct Exercised {
    pub ops: usize,
    /// Requests the scenario began (a crashed worker refuses some).
    pub requests: usize,
}

/// Runs one scenario against `module` and checks every property (panics when one fails).
pub fn run(module: &PluginModule, scenario: Scenario) -> Exercised {
    let workers = if scenario.two_workers { 2 } else { 1 };
    let (text, limit, limited) = config(scenario.config);
    let Ok(mut host) = Host::builder(module)
        .workers(workers)
        .plugin_config(text)
        .capture_logs(Some(LogLevel::Error))
        .build()
    else {
        return Exercised::default();
    };
    let started = check(host.start()).expect("the host starts");
    assert!(
        started.all_ok(),
        "a configuration of this target is refused: {:?}",
        started.logs
    );
    let mut run = Run {
        host,
        streams: Vec::new(),
        generation: vec![0; workers],
        crashed: vec![false; workers],
        failed_imports: false,
        bound_off: false,
        bound: limit,
        limited: Some(limited),
        wall_back_ms: 0,
        imports: module.host_functions().to_vec(),
    };
    let mut exercised = Exercised::default();
    for op in scenario.ops.into_iter().take(64) {
        exercised.ops += 1;
        exercised.requests += usize::from(matches!(op, Op::Open { .. }));
        run.apply(op);
    }
    run.check_none_lost();
    run.check_nothing_left();
    exercised
}
