//! The host: N worker VMs of one plugin, the state they share, and the event loop.
//!
//! Envoy runs one VM per worker thread; each has its own root context (id 1; a replaced
//! configuration gets a new one, `roots`) and stream contexts (ids 2, 3, ...), while shared
//! data, queues and stats are process-wide. The test
//! plays the part of Envoy's workers: it chooses which worker handles which stream and how
//! their steps interleave, and time only moves through `advance`.
//!
//! After every operation the host "settles": it carries out what the plugin requested
//! during its VM calls (continue/close/local reply/done) and delivers posted events (queue
//! ready), repeating until nothing is left, so each API call returns in a quiescent state.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use wasmtime::{TypedFunc, WasmParams, WasmResults};

use crate::clock::{unix_ns, VirtualClock};
use crate::error::{Error, ErrorKind, Result};
use crate::module::PluginModule;
use crate::profile::HostProfile;
use crate::properties::{PropertyTable, PropertyValue};
use crate::shared::{Event, ForeignFunction, Shared};
use crate::types::{LogLevel, StartOutcome, WorkerStart};
use crate::worker::{Exports, HostConfig, Pending, Worker};

/// Builds a [`Host`].
pub struct HostBuilder {
    module: PluginModule,
    workers: usize,
    cfg: HostConfig,
    seed: u64,
    start_unix_ns: u64,
    capture_level: Option<LogLevel>,
    histogram_samples: usize,
    foreign: Vec<(String, ForeignFunction)>,
    pub(crate) recycle: bool,
}

impl HostBuilder {
    /// Number of worker VMs (default 1).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }
    /// The plugin configuration (`proxy_on_configure`).
    pub fn plugin_config(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.cfg.plugin_config = bytes.into();
        self
    }
    /// The VM configuration (`proxy_on_vm_start`).
    pub fn vm_config(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.cfg.vm_config = bytes.into();
        self
    }
    /// The vm_id (scopes shared data and queues; `plugin_vm_id` property).
    pub fn vm_id(mut self, id: &str) -> Self {
        self.cfg.vm_id = id.to_string();
        self
    }
    /// The root_id (`plugin_root_id` property).
    pub fn root_id(mut self, id: &str) -> Self {
        self.cfg.root_id = id.to_string();
        self
    }
    /// The plugin name (`plugin_name` property).
    pub fn plugin_name(mut self, name: &str) -> Self {
        self.cfg.plugin_name = name.to_string();
        self
    }
    /// Level reported by `proxy_get_log_level` (default Trace).
    pub fn log_level(mut self, level: LogLevel) -> Self {
        self.cfg.log_level = level;
        self
    }
    /// Capture log lines at or above `level`; `None` captures nothing (fastest).
    pub fn capture_logs(mut self, level: Option<LogLevel>) -> Self {
        self.capture_level = level;
        self
    }
    /// Stream attributes every HTTP context sees (e.g. `xds.route_name`, `source.address`,
    /// `upstream.address`); a stream can override them. `node.*` and `plugin_*` paths are
    /// readable from the root context too.
    pub fn properties<'a, V: Into<PropertyValue>>(
        mut self,
        props: impl IntoIterator<Item = (&'a str, V)>,
    ) -> Self {
        for (path, value) in props {
            self = self.property(path, value);
        }
        self
    }
    /// One property (see [`HostBuilder::properties`]).
    pub fn property(mut self, path: &str, value: impl Into<PropertyValue>) -> Self {
        let value = value.into();
        let root = crate::properties::wire_path(path);
        if crate::properties::is_global(crate::properties::first_segment(&root)) {
            self.cfg.global_properties.set(path, &value);
        } else {
            self.cfg.stream_properties.set(path, &value);
        }
        self
    }
    /// Restricts `proxy_http_call`/`proxy_grpc_call` to these clusters (others are
    /// BAD_ARGUMENT / PARSE_FAILURE as in Envoy). By default every cluster exists.
    pub fn clusters<'a>(mut self, names: impl IntoIterator<Item = &'a str>) -> Self {
        self.cfg.clusters = Some(names.into_iter().map(str::to_string).collect());
        self
    }
    /// Environment variables visible through WASI (Envoy's `vm_config.environment_variables`).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.cfg.env.push((key.to_string(), value.to_string()));
        self
    }
    /// Seed of WASI `random_get` (per worker streams derive from it).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Wall-clock time at the start (default 2025-01-01T00:00:00Z).
    pub fn start_time(mut self, time: SystemTime) -> Self {
        self.start_unix_ns = unix_ns(time);
        self
    }
    /// Histogram values kept per histogram (count/sum/min/max are always exact).
    pub fn histogram_samples(mut self, n: usize) -> Self {
        self.histogram_samples = n;
        self
    }
    /// Deliver a local reply sent during the request path to the plugin's own
    /// `on_response_headers`/`on_response_body`, as Envoy's filter chain does (default true).
    pub fn deliver_local_reply_to_plugin(mut self, yes: bool) -> Self {
        self.cfg.deliver_local_reply = yes;
        self
    }
    /// Reuse a stream's state as soon as it is finished (for simulators: finished streams
    /// can then no longer be inspected). Default false.
    pub fn recycle_finished_streams(mut self, yes: bool) -> Self {
        self.recycle = yes;
        self
    }
    /// Which host the mock answers as (default [`HostProfile::Envoy`]; see
    /// [`HostProfile::NgxWasmModule`] for what changes).
    pub fn profile(mut self, profile: HostProfile) -> Self {
        self.cfg.profile = profile;
        self
    }
    /// Registers a function for `proxy_call_foreign_function`.
    pub fn foreign_function(
        mut self,
        name: &str,
        f: impl FnMut(&[u8]) -> std::result::Result<Vec<u8>, crate::types::Status> + Send + 'static,
    ) -> Self {
        self.foreign.push((name.to_string(), Box::new(f)));
        self
    }

    /// Instantiates the worker VMs (nothing in the plugin runs yet: call `Host::start`).
    pub fn build(self) -> Result<Host> {
        if self.workers == 0 {
            return Err(Error::usage("a host needs at least one worker"));
        }
        let cfg = Arc::new(self.cfg);
        let mut workers = Vec::with_capacity(self.workers);
        for index in 0..self.workers {
            workers.push(Worker::new(&self.module, index, cfg.clone(), self.seed)?);
        }
        let mut shared = Box::new(Shared {
            clock: VirtualClock::new(self.start_unix_ns),
            capture_level: self.capture_level,
            ..Shared::default()
        });
        shared.metrics.sample_limit = self.histogram_samples;
        shared.foreign.extend(self.foreign);
        Ok(Host {
            module: self.module,
            workers,
            shared,
            started: false,
            recycle: self.recycle,
            seed: self.seed,
        })
    }
}

/// A mock Envoy running one plugin on N worker VMs.
pub struct Host {
    pub(crate) module: PluginModule,
    pub(crate) workers: Vec<Worker>,
    pub(crate) shared: Box<Shared>,
    pub(crate) started: bool,
    pub(crate) recycle: bool,
    pub(crate) seed: u64,
}

impl Host {
    /// Starts building a host for `module`.
    pub fn builder(module: &PluginModule) -> HostBuilder {
        HostBuilder {
            module: module.clone(),
            workers: 1,
            cfg: HostConfig {
                vm_id: String::new(),
                root_id: String::new(),
                plugin_name: String::new(),
                vm_config: Vec::new(),
                plugin_config: Vec::new(),
                log_level: LogLevel::Trace,
                global_properties: PropertyTable::default(),
                stream_properties: PropertyTable::default(),
                clusters: None,
                env: Vec::new(),
                deliver_local_reply: true,
                profile: HostProfile::Envoy,
            },
            seed: 0,
            start_unix_ns: crate::clock::DEFAULT_START_UNIX_NS,
            capture_level: Some(LogLevel::Trace),
            histogram_samples: 100_000,
            foreign: Vec::new(),
            recycle: false,
        }
    }

    /// The host profile this host answers as.
    pub fn profile(&self) -> HostProfile {
        self.workers
            .first()
            .map_or(HostProfile::Envoy, |w| w.store.data().cfg.profile)
    }

    /// The module this host runs.
    pub fn module(&self) -> &PluginModule {
        &self.module
    }

    /// Number of workers.
    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    pub(crate) fn check_worker(&self, worker: usize) -> Result<()> {
        if worker < self.workers.len() {
            Ok(())
        } else {
            Err(Error::usage(format!(
                "worker {worker} does not exist (the host has {})",
                self.workers.len()
            )))
        }
    }

    /// Calls an optional export on a worker; `Ok(None)` when the plugin does not export it.
    pub(crate) fn call_export<P: WasmParams, R: WasmResults>(
        &mut self,
        worker: usize,
        pick: impl FnOnce(&Exports) -> Option<&TypedFunc<P, R>>,
        context_id: u32,
        params: P,
    ) -> Result<Option<R>> {
        let w = self
            .workers
            .get_mut(worker)
            .ok_or_else(|| Error::usage(format!("worker {worker} does not exist")))?;
        w.call(&mut self.shared, pick, context_id, params)
    }

    /// Initializes every worker (`_initialize`/`main` or `_start`), creates its root
    /// context, then `proxy_on_vm_start` and `proxy_on_configure`, as Envoy does.
    pub fn start(&mut self) -> Result<StartOutcome> {
        if self.started {
            return Err(Error::usage("the host was already started"));
        }
        self.started = true;
        let first_log = self.shared.logs.len();
        let mut workers = Vec::with_capacity(self.workers.len());
        for w in 0..self.workers.len() {
            workers.push(self.start_worker(w)?);
        }
        Ok(StartOutcome {
            workers,
            logs: self
                .shared
                .logs
                .get(first_log..)
                .unwrap_or_default()
                .to_vec(),
        })
    }

    /// One worker's start, as Envoy does it for a new VM.
    fn start_worker(&mut self, w: usize) -> Result<WorkerStart> {
        let has_init = self.workers[w].exports.initialize.is_some();
        if has_init {
            self.call_export(w, |e| e.initialize.as_ref(), 0, ())?;
            self.call_export(w, |e| e.main.as_ref(), 0, (0, 0))?;
        } else {
            self.call_export(w, |e| e.start.as_ref(), 0, ())?;
        }
        let vm_len = self.workers[w].store.data().cfg.vm_config.len() as i32;
        let plugin_len = self.workers[w].store.data().cfg.plugin_config.len() as i32;
        self.call_export(w, |e| e.on_context_create.as_ref(), 1, (1, 0))?;
        let vm_started = self
            .call_export(w, |e| e.on_vm_start.as_ref(), 1, (1, vm_len))?
            .is_none_or(|r| r != 0);
        self.settle()?;
        let configured = self.configure_root(w, 1, plugin_len)?;
        self.settle()?;
        Ok(WorkerStart {
            worker: w,
            vm_started,
            configured,
        })
    }

    /// Marks worker `w`'s VM as crashed, as if the plugin had trapped: it gets no more calls
    /// (no ticks, no stream callbacks) and everything it wrote to shared data stays as it was.
    /// Envoy's `failure_policy: FAIL_RELOAD` would then start a fresh VM: [`Host::reload_worker`].
    pub fn crash_worker(&mut self, w: usize) -> Result<()> {
        self.check_worker(w)?;
        self.workers[w].failed = Some("crashed by the test (Host::crash_worker)".into());
        Ok(())
    }

    /// Replaces worker `w`'s VM with a fresh instance of the same module and configuration and
    /// starts it (`FAIL_RELOAD`). Its streams are gone with the old VM; shared data, metrics and
    /// the clock belong to the host and carry over.
    pub fn reload_worker(&mut self, w: usize) -> Result<WorkerStart> {
        self.check_worker(w)?;
        if !self.started {
            return Err(Error::usage("reload_worker needs a started host"));
        }
        let old = self.workers[w].store.data();
        let (cfg, next_context_id, rng) = (old.cfg.clone(), old.next_context_id, old.rng);
        // Context ids keep counting, so a handle to a stream of the crashed VM never finds a
        // stream of the new one; the new VM's WASI randomness differs from the old one's.
        let seed = self.seed ^ rng.rotate_left(17) ^ 0xA076_1D64_78BD_642F;
        self.workers[w] = Worker::new(&self.module, w, cfg, seed)?;
        self.workers[w].store.data_mut().next_context_id = next_context_id;
        self.start_worker(w)
    }

    /// Carries out pending plugin requests and posted events until none is left.
    pub(crate) fn settle(&mut self) -> Result<()> {
        loop {
            let mut progressed = false;
            for w in 0..self.workers.len() {
                if self.workers[w].store.data().pending.is_empty() {
                    continue;
                }
                let mut pending = std::mem::take(&mut self.workers[w].store.data_mut().pending);
                for p in pending.drain(..) {
                    progressed = true;
                    self.apply_pending(w, p)?;
                }
                // Give the (now empty) buffer back unless the plugin queued more meanwhile.
                let slot = &mut self.workers[w].store.data_mut().pending;
                if slot.is_empty() {
                    *slot = pending;
                }
            }
            if let Some(event) = self.shared.events.pop_front() {
                progressed = true;
                match event {
                    Event::QueueReady {
                        worker,
                        context_id,
                        token,
                    } => {
                        self.call_export(
                            worker,
                            |e| e.on_queue_ready.as_ref(),
                            context_id,
                            (context_id as i32, token as i32),
                        )?;
                    }
                }
            }
            if !progressed {
                return Ok(());
            }
        }
    }

    fn apply_pending(&mut self, w: usize, pending: Pending) -> Result<()> {
        match pending {
            Pending::Continue { context_id, side } => self.resume(w, context_id, side),
            Pending::Close { context_id, stream } => {
                if let Some(s) = self.workers[w]
                    .store
                    .data_mut()
                    .streams
                    .get_mut(&context_id)
                {
                    if !s.ended() {
                        s.reset = Some(stream);
                    }
                }
                Ok(())
            }
            Pending::LocalReply { context_id, reply } => self.local_reply(w, context_id, reply),
            Pending::RootDone(root) => {
                self.call_export(w, |e| e.on_delete.as_ref(), root, root as i32)?;
                self.workers[w].store.data_mut().root_deleted_now(root);
                Ok(())
            }
        }
    }

    /// Moves the virtual clock forward by `by`, firing every due tick in time order
    /// (workers in index order at equal instants), each at its exact due time.
    pub fn advance(&mut self, by: Duration) -> Result<()> {
        let by_ns = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let target = self.shared.clock.monotonic_ns().saturating_add(by_ns);
        self.settle()?;
        loop {
            let due = self
                .workers
                .iter()
                .enumerate()
                .filter(|(_, w)| w.failed.is_none())
                .filter_map(|(i, w)| w.store.data().next_due().map(|(t, root)| (t, i, root)))
                .filter(|(t, _, _)| *t <= target)
                .min();
            let Some((at, w, root)) = due else {
                break;
            };
            self.shared.clock.set_monotonic_ns(at);
            self.fire_tick(w, root, at)?;
        }
        self.shared.clock.set_monotonic_ns(target);
        Ok(())
    }

    /// Root context `root` of worker `w` ticks at `at` (the clock is there); its timer is
    /// re-armed a period later.
    pub(crate) fn fire_tick(&mut self, w: usize, root: u32, at: u64) -> Result<()> {
        let fired = self.call_export(w, |e| e.on_tick.as_ref(), root, root as i32)?;
        self.workers[w]
            .store
            .data_mut()
            .rearm(root, at, fired.is_some());
        self.settle()
    }

    /// Envoy's shutdown of the plugin: `proxy_on_done` on every root context, then
    /// `proxy_on_delete` for those that returned true; the others get it after they call
    /// `proxy_done`. Returns per worker whether it completed at once.
    pub fn shutdown(&mut self) -> Result<Vec<bool>> {
        let mut out = Vec::with_capacity(self.workers.len());
        for w in 0..self.workers.len() {
            let retiring: Vec<u32> = self.workers[w]
                .store
                .data()
                .retiring
                .iter()
                .filter(|r| !r.pending_done)
                .map(|r| r.id)
                .collect();
            for root in retiring {
                self.shut_root(w, root)?;
            }
            let root = self.workers[w].store.data().root_id;
            out.push(self.shut_root(w, root)?);
        }
        Ok(out)
    }

    /// Calls any export with raw arguments as one VM call, with `context_id` current
    /// (for WAT modules that exercise host functions directly), then settles.
    pub fn call_raw(
        &mut self,
        worker: usize,
        context_id: u32,
        export: &str,
        args: &[wasmtime::Val],
    ) -> Result<Vec<wasmtime::Val>> {
        self.check_worker(worker)?;
        let w = &mut self.workers[worker];
        let func = w
            .instance
            .get_func(&mut w.store, export)
            .ok_or_else(|| Error::usage(format!("the module does not export {export}")))?;
        let n = func.ty(&w.store).results().len();
        let mut results = vec![wasmtime::Val::I32(0); n];
        w.with_call(&mut self.shared, context_id, |store| {
            func.call(store, args, &mut results)
        })?;
        self.settle()?;
        Ok(results)
    }

    /// The size of a worker's linear memory in bytes: what its VM has grown to (wasm memory
    /// only grows, so a leak shows as growth after warm-up).
    pub fn memory_bytes(&self, worker: usize) -> Result<usize> {
        let (memory, w) = self.memory_of(worker)?;
        Ok(memory.data_size(&w.store))
    }

    /// Wasm operators the plugin executed on all workers so far (wasmtime's fuel), for a
    /// module loaded with [`PluginModule::load_metered`]; `None` otherwise. Deterministic: the
    /// same requests cost the same on every machine, so a benchmark can compare builds.
    pub fn wasm_fuel_used(&self) -> Option<u64> {
        self.workers
            .iter()
            .map(|w| w.store.get_fuel().ok().map(|left| u64::MAX - left))
            .sum()
    }

    /// A worker's exported memory, with the worker.
    fn memory_of(&self, worker: usize) -> Result<(wasmtime::Memory, &crate::worker::Worker)> {
        self.check_worker(worker)?;
        let w = &self.workers[worker];
        let memory = w
            .store
            .data()
            .memory
            .ok_or_else(|| Error::usage("the module exports no memory"))?;
        Ok((memory, w))
    }

    /// Reads guest memory of a worker.
    pub fn read_memory(&self, worker: usize, ptr: u32, len: u32) -> Result<Vec<u8>> {
        let (memory, w) = self.memory_of(worker)?;
        let data = memory.data(&w.store);
        let start = ptr as usize;
        data.get(start..start.saturating_add(len as usize))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| Error::new(ErrorKind::Usage, "memory range out of bounds"))
    }

    /// Writes guest memory of a worker (test setup for raw calls).
    pub fn write_memory(&mut self, worker: usize, ptr: u32, bytes: &[u8]) -> Result<()> {
        self.check_worker(worker)?;
        let w = &mut self.workers[worker];
        let memory = w
            .store
            .data()
            .memory
            .ok_or_else(|| Error::usage("the module exports no memory"))?;
        let data = memory.data_mut(&mut w.store);
        let start = ptr as usize;
        let dst = data
            .get_mut(start..start.saturating_add(bytes.len()))
            .ok_or_else(|| Error::new(ErrorKind::Usage, "memory range out of bounds"))?;
        dst.copy_from_slice(bytes);
        Ok(())
    }
}
