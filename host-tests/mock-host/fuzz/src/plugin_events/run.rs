//! One scenario's run: the mock host, the streams it opened and what the properties need to
//! know (which VMs are live, which fixed limit is in force, what licensed the limiter to exceed
//! it), each event applied, and the checks.

use super::grammar::{config, Op, HEADER_NAMES, HOLDER_TIMEOUT_MS, METHODS, PATHS, STATUSES};
use ballast_mock_host::{ErrorKind, Host, Stream, StreamId};
use std::time::Duration;

struct Tracked {
    id: StreamId,
    /// The VM it began on (a reloaded VM's streams are gone with it).
    generation: u32,
    request_ended: bool,
    responded: bool,
}

pub(super) struct Run {
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
pub(super) fn check<T>(result: ballast_mock_host::Result<T>) -> Option<T> {
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
    /// A run on `host` (started with `workers` VMs) under a configuration with fixed limit
    /// `bound` and limited sets `limited`, failing host functions from `imports`.
    pub(super) fn new(
        host: Host,
        workers: usize,
        bound: Option<u32>,
        limited: &'static [&'static str],
        imports: Vec<String>,
    ) -> Self {
        Run {
            host,
            streams: Vec::new(),
            generation: vec![0; workers],
            crashed: vec![false; workers],
            failed_imports: false,
            bound_off: false,
            bound,
            limited: Some(limited),
            wall_back_ms: 0,
            imports,
        }
    }

    /// Delivers one event to stream `id` (gone or on a crashed VM: nothing to deliver); the
    /// answer is judged by [`check`].
    fn deliver<T>(
        &mut self,
        id: StreamId,
        event: impl FnOnce(&mut Stream<'_>) -> ballast_mock_host::Result<T>,
    ) {
        if let Some(mut s) = check(self.host.stream(id)) {
            check(event(&mut s));
        }
    }

    fn workers(&self) -> usize {
        self.host.worker_count()
    }

    fn live(&self, t: &Tracked) -> bool {
        !self.crashed[t.id.worker] && self.generation[t.id.worker] == t.generation
    }

    fn pick(&self, n: u8) -> Option<usize> {
        (!self.streams.is_empty()).then(|| usize::from(n) % self.streams.len())
    }

    pub(super) fn apply(&mut self, op: Op) {
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
                self.deliver(id, |s| s.request_body(&body, end));
                self.streams[i].request_ended = end;
            }
            Op::RequestTrailers { stream } => {
                let Some(i) = self.pick(stream) else { return };
                if self.streams[i].request_ended {
                    return;
                }
                let id = self.streams[i].id;
                self.deliver(id, |s| s.request_trailers(&[("x-t", "1")]));
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
                self.deliver(id, |s| s.response_headers(&all, end));
                self.streams[i].responded = true;
            }
            Op::ResponseBody { stream, end } => {
                let Some(i) = self.pick(stream) else { return };
                if !self.streams[i].responded {
                    return;
                }
                let id = self.streams[i].id;
                self.deliver(id, |s| s.response_body(b"body", end));
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
                self.deliver(id, |s| {
                    s.response_trailers(&[("grpc-status", code.as_str())])
                });
            }
            Op::Finish { stream } => {
                let Some(i) = self.pick(stream) else { return };
                let t = self.streams.swap_remove(i);
                self.deliver(t.id, |s| s.finish());
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
    pub(super) fn check_none_lost(&mut self) {
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
    pub(super) fn check_nothing_left(&mut self) {
        for t in std::mem::take(&mut self.streams) {
            self.deliver(t.id, |s| s.finish());
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
