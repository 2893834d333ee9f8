//! State-based inspection (logs, metrics, shared data, time, callouts) and the test's side
//! of callouts and queues: answering an http call or gRPC call, enqueueing from "another
//! VM", seeding shared data.

use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};
use crate::host::Host;
use crate::metrics::{Histogram, MetricType};
use crate::pairs::HeaderMap;
use crate::profile::HostProfile;
use crate::shared::ForeignFunction;
use crate::types::{CalloutId, GrpcCall, HttpCall, HttpCallResponse, LogEntry, LogLevel, Status};
use crate::worker::HttpResponseData;
use rustc_hash::FxHashMap;

/// The test's answer to a gRPC call or stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrpcResponse {
    /// Initial metadata (`proxy_on_grpc_receive_initial_metadata`).
    InitialMetadata(Vec<(String, String)>),
    /// A message (`proxy_on_grpc_receive`); ends a unary call.
    Message(Vec<u8>),
    /// Trailing metadata (`proxy_on_grpc_receive_trailing_metadata`).
    TrailingMetadata(Vec<(String, String)>),
    /// The call ends with a status (`proxy_on_grpc_close`; `proxy_get_status` reports it).
    Close { status: u32, message: String },
}

fn map_of(pairs: &[(String, String)]) -> HeaderMap {
    let mut m = HeaderMap::default();
    m.set_all(pairs.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())));
    m
}

impl Host {
    /// Every captured log line, in order, all workers.
    pub fn logs(&self) -> &[LogEntry] {
        &self.shared.logs
    }
    /// Captured lines at exactly `level`.
    pub fn logs_at(&self, level: LogLevel) -> Vec<&LogEntry> {
        self.shared
            .logs
            .iter()
            .filter(|l| l.level == level)
            .collect()
    }
    /// Whether any captured line contains `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.shared.logs.iter().any(|l| l.message.contains(text))
    }
    /// What the host itself complained about in the plugin's use of it, in order (the
    /// ngx_wasm_module profile's warnings, e.g. a pause where it expects a local response).
    pub fn host_warnings(&self) -> &[String] {
        &self.shared.host_warnings
    }
    /// Removes and returns the captured lines.
    pub fn take_logs(&mut self) -> Vec<LogEntry> {
        std::mem::take(&mut self.shared.logs)
    }

    /// A counter's value (aggregated over workers), by the name the plugin defined.
    pub fn counter(&self, name: &str) -> Option<u64> {
        self.shared
            .metrics
            .find(MetricType::Counter, name)
            .map(|s| s.value)
    }
    /// A gauge's value.
    pub fn gauge(&self, name: &str) -> Option<u64> {
        self.shared
            .metrics
            .find(MetricType::Gauge, name)
            .map(|s| s.value)
    }
    /// A histogram's recorded values.
    pub fn histogram(&self, name: &str) -> Option<Histogram> {
        self.shared
            .metrics
            .find(MetricType::Histogram, name)
            .map(|s| s.histogram.clone())
    }
    /// Every metric: (type, name, value or histogram count).
    pub fn metrics(&self) -> Vec<(MetricType, String, u64)> {
        self.shared.metrics.list()
    }

    /// Makes every later call of `import` (e.g. `proxy_get_header_map_value`) return `status`
    /// without doing its work, on every worker; `None` restores it. Statuses Envoy never
    /// returns for that call are the point: a plugin must survive them.
    pub fn fail_import(&mut self, import: &str, status: Option<i32>) {
        match status {
            Some(status) => {
                self.shared
                    .injected_statuses
                    .insert(import.to_string(), status);
            }
            None => {
                self.shared.injected_statuses.remove(import);
            }
        }
    }

    /// Starts counting the plugin's calls of each import, from zero (`true`), or stops and
    /// forgets the counts (`false`). Counting covers every import that [`Host::fail_import`]
    /// can fail, which is every import ballast calls.
    pub fn count_host_calls(&mut self, on: bool) {
        self.shared.host_calls = on.then(FxHashMap::default);
    }

    /// Calls of each import since counting started, most called first (then by name).
    pub fn host_calls(&self) -> Vec<(&'static str, u64)> {
        let mut calls: Vec<(&'static str, u64)> = self
            .shared
            .host_calls
            .iter()
            .flatten()
            .map(|(name, n)| (*name, *n))
            .collect();
        calls.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        calls
    }

    /// Shared data as a whole: how many keys, and the bytes of every key and value together
    /// (proxy-wasm never evicts a key, so this is what a plugin leaks if it makes keys without
    /// bound).
    pub fn shared_data_size(&self) -> (usize, usize) {
        let bytes = self
            .shared
            .data
            .iter()
            .map(|(key, (value, _))| key.len() + value.len())
            .sum();
        (self.shared.data.len(), bytes)
    }

    /// Every shared-data key, sorted (lossy UTF-8).
    pub fn shared_data_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .shared
            .data
            .keys()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        keys.sort();
        keys
    }

    /// Shared data value and cas.
    pub fn shared_data(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.shared
            .get_data(key.as_bytes())
            .map(|(v, cas)| (v.to_vec(), cas))
    }
    /// Writes shared data as another VM would (unconditional); returns the new cas.
    pub fn set_shared_data(&mut self, key: &str, value: &[u8]) -> u32 {
        // A test's write is unconditional whatever the profile (Envoy's rule for cas 0).
        let _ = self
            .shared
            .set_data(key.as_bytes(), value, 0, HostProfile::Envoy);
        self.shared
            .get_data(key.as_bytes())
            .map_or(0, |(_, cas)| cas)
    }

    /// Makes the next `n` conditional shared-data writes (a non-zero cas) fail with
    /// CAS_MISMATCH, as if another worker had written the key in between: the way to test
    /// what a plugin does when it loses compare-and-swap races. Unconditional writes are not
    /// affected.
    pub fn fail_next_cas(&mut self, n: u32) {
        self.shared.forced_cas_mismatches = n;
    }

    /// Items waiting in a queue.
    pub fn queue_len(&self, vm_id: &str, name: &str) -> Option<usize> {
        let token = self
            .shared
            .resolve_queue(vm_id.as_bytes(), name.as_bytes())?;
        self.shared.queues.get(&token).map(|q| q.items.len())
    }
    /// Enqueues as another VM would, then delivers `proxy_on_queue_ready`.
    pub fn enqueue(&mut self, vm_id: &str, name: &str, value: &[u8]) -> Result<()> {
        let token = self
            .shared
            .resolve_queue(vm_id.as_bytes(), name.as_bytes())
            .ok_or_else(|| Error::usage(format!("no queue {name} in vm {vm_id}")))?;
        match self.shared.enqueue(token, value) {
            Status::Ok => self.settle(),
            s => Err(Error::usage(format!("enqueue failed: {s:?}"))),
        }
    }

    /// Wall-clock time now.
    pub fn now(&self) -> SystemTime {
        self.shared.clock.now()
    }
    /// Time advanced since the host was built.
    pub fn elapsed(&self) -> Duration {
        self.shared.clock.elapsed()
    }
    /// A worker's tick period, if a timer is armed.
    pub fn tick_period(&self, worker: usize) -> Option<Duration> {
        let st = self.workers.get(worker)?.store.data();
        (st.tick_period_ms > 0 && st.next_tick_ns.is_some())
            .then(|| Duration::from_millis(u64::from(st.tick_period_ms)))
    }

    /// Http calls dispatched and not yet answered.
    pub fn http_calls(&self) -> &[HttpCall] {
        &self.shared.http_calls
    }
    /// gRPC calls and streams dispatched (answered unary calls are removed).
    pub fn grpc_calls(&self) -> &[GrpcCall] {
        &self.shared.grpc_calls
    }

    /// Answers a captured http call: `proxy_on_http_call_response` on the caller's root
    /// context. `HttpCallResponse::failure()` delivers what Envoy delivers on a reset:
    /// counts 0, no response maps (reading one is BAD_ARGUMENT), `proxy_get_status` = (11
    /// BrokenConnection, "reset").
    pub fn respond_http_call(&mut self, id: CalloutId, response: HttpCallResponse) -> Result<()> {
        self.check_worker(id.worker)?;
        let pos = self
            .shared
            .http_calls
            .iter()
            .position(|c| c.id == id)
            .ok_or_else(|| Error::usage(format!("no pending http call {id:?}")))?;
        self.shared.http_calls.remove(pos);
        let failure = response.headers.is_empty() && response.body.is_empty();
        let (nh, nb, nt) = (
            response.headers.len() as i32,
            response.body.len() as i32,
            response.trailers.len() as i32,
        );
        let st = self.workers[id.worker].store.data_mut();
        st.http_response = (!failure).then(|| HttpResponseData {
            headers: map_of(&response.headers),
            body: response.body,
            trailers: (!response.trailers.is_empty()).then(|| map_of(&response.trailers)),
        });
        let args = if failure {
            (1, id.token as i32, 0, 0, 0)
        } else {
            (1, id.token as i32, nh, nb, nt)
        };
        if failure {
            // Envoy's onHttpCallFailure: BrokenConnection, "reset", no response maps.
            st.status = (11, b"reset".to_vec());
        }
        let r = self.call_export(id.worker, |e| e.on_http_call_response.as_ref(), 1, args);
        let st = self.workers[id.worker].store.data_mut();
        st.http_response = None;
        if failure {
            st.status.1.clear();
        }
        r?;
        self.settle()
    }

    /// Delivers a gRPC event to the root context of the caller.
    pub fn respond_grpc(&mut self, id: CalloutId, response: GrpcResponse) -> Result<()> {
        self.check_worker(id.worker)?;
        let pos = self
            .shared
            .grpc_calls
            .iter()
            .position(|c| c.id == id)
            .ok_or_else(|| Error::usage(format!("no gRPC call {id:?}")))?;
        let token = id.token as i32;
        let w = id.worker;
        match response {
            GrpcResponse::InitialMetadata(md) => {
                let n = md.len() as i32;
                self.workers[w].store.data_mut().grpc_initial = Some(map_of(&md));
                let r = self.call_export(
                    w,
                    |e| e.on_grpc_receive_initial_metadata.as_ref(),
                    1,
                    (1, token, n),
                );
                self.workers[w].store.data_mut().grpc_initial = None;
                r?;
            }
            GrpcResponse::TrailingMetadata(md) => {
                let n = md.len() as i32;
                self.workers[w].store.data_mut().grpc_trailing = Some(map_of(&md));
                let r = self.call_export(
                    w,
                    |e| e.on_grpc_receive_trailing_metadata.as_ref(),
                    1,
                    (1, token, n),
                );
                self.workers[w].store.data_mut().grpc_trailing = None;
                r?;
            }
            GrpcResponse::Message(msg) => {
                let n = msg.len() as i32;
                if !self.shared.grpc_calls[pos].streaming {
                    self.shared.grpc_calls.remove(pos);
                }
                self.workers[w].store.data_mut().grpc_message = Some(msg);
                let r = self.call_export(w, |e| e.on_grpc_receive.as_ref(), 1, (1, token, n));
                self.workers[w].store.data_mut().grpc_message = None;
                r?;
            }
            GrpcResponse::Close { status, message } => {
                self.shared.grpc_calls.remove(pos);
                self.workers[w].store.data_mut().status = (status, message.into_bytes());
                self.call_export(
                    w,
                    |e| e.on_grpc_close.as_ref(),
                    1,
                    (1, token, status as i32),
                )?;
            }
        }
        self.settle()
    }

    /// Registers (or replaces) a foreign function after the host was built.
    pub fn register_foreign_function(&mut self, name: &str, f: ForeignFunction) {
        self.shared.foreign.insert(name.to_string(), f);
    }

    /// The context ids of a worker's live (unfinished) streams.
    pub fn live_streams(&self, worker: usize) -> Vec<u32> {
        let mut ids: Vec<u32> = self
            .workers
            .get(worker)
            .map(|w| w.store.data().streams.keys().copied().collect())
            .unwrap_or_default();
        ids.sort_unstable();
        ids
    }
}
