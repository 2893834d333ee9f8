//! State that Envoy keeps process-wide, shared by every worker VM of the host: the clock,
//! shared data (key-value with CAS), shared queues, metrics, captured logs and callouts,
//! and the events (queue-ready notifications) waiting for their worker's "event loop".
//!
//! The host drives one worker at a time, so this state is moved into the worker's store for
//! the duration of a VM call and moved back afterwards: no locks on the hot path and the
//! host stays `Send`.

use std::collections::{HashMap, VecDeque};

use crate::clock::{VirtualClock, DEFAULT_START_UNIX_NS};
use crate::metrics::Metrics;
use crate::profile::HostProfile;
use crate::types::{GrpcCall, HttpCall, LogEntry, LogLevel, Status};
use rustc_hash::FxHashMap;

/// A host-provided function callable with `proxy_call_foreign_function`.
pub type ForeignFunction =
    Box<dyn FnMut(&[u8]) -> std::result::Result<Vec<u8>, Status> + Send + 'static>;

/// Something a worker must handle after the current VM call, as Envoy posts it to the
/// worker's dispatcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    QueueReady {
        worker: usize,
        context_id: u32,
        token: u32,
    },
}

#[derive(Debug)]
pub(crate) struct Queue {
    pub(crate) items: VecDeque<Vec<u8>>,
    pub(crate) worker: usize,
    pub(crate) context_id: u32,
}

pub(crate) struct Shared {
    pub(crate) clock: VirtualClock,
    /// Shared data of this host's vm_id: key -> (value, cas).
    pub(crate) data: HashMap<Vec<u8>, (Vec<u8>, u32)>,
    pub(crate) next_cas: u32,
    /// Conditional writes still to fail as lost races (`Host::fail_next_cas`).
    pub(crate) forced_cas_mismatches: u32,
    /// (vm_id, queue name) -> token.
    pub(crate) queue_tokens: HashMap<(Vec<u8>, Vec<u8>), u32>,
    pub(crate) queues: HashMap<u32, Queue>,
    pub(crate) next_queue_token: u32,
    pub(crate) metrics: Metrics,
    pub(crate) logs: Vec<LogEntry>,
    pub(crate) capture_level: Option<LogLevel>,
    pub(crate) http_calls: Vec<HttpCall>,
    pub(crate) grpc_calls: Vec<GrpcCall>,
    pub(crate) events: VecDeque<Event>,
    pub(crate) foreign: HashMap<String, ForeignFunction>,
    /// Imports that return a status without doing their work (`Host::fail_import`).
    pub(crate) injected_statuses: HashMap<String, i32>,
    /// Calls per import since `Host::count_host_calls` switched counting on (`None`: off, the
    /// default, so the simulator pays nothing for it).
    pub(crate) host_calls: Option<FxHashMap<&'static str, u64>>,
    /// What the host logged about the plugin's use of it (ngx_wasm_module's warnings).
    pub(crate) host_warnings: Vec<String>,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            clock: VirtualClock::new(DEFAULT_START_UNIX_NS),
            data: HashMap::new(),
            next_cas: 1,
            forced_cas_mismatches: 0,
            queue_tokens: HashMap::new(),
            queues: HashMap::new(),
            next_queue_token: 1,
            metrics: Metrics::default(),
            logs: Vec::new(),
            capture_level: Some(LogLevel::Trace),
            http_calls: Vec::new(),
            grpc_calls: Vec::new(),
            events: VecDeque::new(),
            foreign: HashMap::new(),
            injected_statuses: HashMap::new(),
            host_calls: None,
            host_warnings: Vec::new(),
        }
    }
}

impl Shared {
    fn next_cas(&mut self) -> u32 {
        let cas = self.next_cas;
        self.next_cas = self.next_cas.wrapping_add(1);
        if self.next_cas == 0 {
            self.next_cas = 1;
        }
        cas
    }

    /// `proxy_get_shared_data`: NOT_FOUND for a missing key.
    pub(crate) fn get_data(&self, key: &[u8]) -> Option<(&[u8], u32)> {
        self.data.get(key).map(|(v, cas)| (v.as_slice(), *cas))
    }

    /// `proxy_set_shared_data` under `profile`'s CAS rule (Envoy: cas 0 is unconditional and a
    /// missing key is always created; ngx_wasm_module: the cas must equal the stored one, 0
    /// for a missing key).
    pub(crate) fn set_data(
        &mut self,
        key: &[u8],
        value: &[u8],
        cas: u32,
        profile: HostProfile,
    ) -> Status {
        let stored = self.data.get(key).map(|(_, stored)| *stored);
        if !profile.cas_allows(stored, cas) {
            return Status::CasMismatch;
        }
        if stored.is_some() && cas != 0 && self.forced_cas_mismatches > 0 {
            // As if another worker had written in between.
            self.forced_cas_mismatches -= 1;
            return Status::CasMismatch;
        }
        let new_cas = self.next_cas();
        match self.data.get_mut(key) {
            Some(entry) => {
                entry.0.clear();
                entry.0.extend_from_slice(value);
                entry.1 = new_cas;
            }
            None => {
                self.data.insert(key.to_vec(), (value.to_vec(), new_cas));
            }
        }
        Status::Ok
    }

    /// Registers (or re-registers) a queue; the last registration decides which root
    /// context gets `proxy_on_queue_ready`, and existing items are kept, as in Envoy.
    pub(crate) fn register_queue(
        &mut self,
        vm_id: &[u8],
        name: &[u8],
        worker: usize,
        context_id: u32,
    ) -> u32 {
        let key = (vm_id.to_vec(), name.to_vec());
        let token = match self.queue_tokens.get(&key) {
            Some(token) => *token,
            None => {
                let mut token = self.next_queue_token;
                while token == 0 || self.queues.contains_key(&token) {
                    token = token.wrapping_add(1);
                }
                self.next_queue_token = token.wrapping_add(1);
                self.queue_tokens.insert(key, token);
                token
            }
        };
        let queue = self.queues.entry(token).or_insert_with(|| Queue {
            items: VecDeque::new(),
            worker,
            context_id,
        });
        queue.worker = worker;
        queue.context_id = context_id;
        token
    }

    pub(crate) fn resolve_queue(&self, vm_id: &[u8], name: &[u8]) -> Option<u32> {
        self.queue_tokens
            .get(&(vm_id.to_vec(), name.to_vec()))
            .copied()
    }

    pub(crate) fn enqueue(&mut self, token: u32, value: &[u8]) -> Status {
        let Some(queue) = self.queues.get_mut(&token) else {
            return Status::NotFound;
        };
        queue.items.push_back(value.to_vec());
        let event = Event::QueueReady {
            worker: queue.worker,
            context_id: queue.context_id,
            token,
        };
        self.events.push_back(event);
        Status::Ok
    }

    pub(crate) fn dequeue(&mut self, token: u32) -> Result<Vec<u8>, Status> {
        let Some(queue) = self.queues.get_mut(&token) else {
            return Err(Status::NotFound);
        };
        queue.items.pop_front().ok_or(Status::Empty)
    }

    pub(crate) fn log(&mut self, worker: usize, context_id: u32, level: LogLevel, msg: &[u8]) {
        if self.capture_level.is_some_and(|min| level >= min) {
            self.logs.push(LogEntry {
                worker,
                level,
                context_id,
                message: String::from_utf8_lossy(msg).into_owned(),
            });
        }
    }
}
