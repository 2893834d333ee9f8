//! One worker VM: a wasmtime store holding the instance and the per-VM state Envoy keeps
//! (contexts, timers, metric ids, callout tokens), plus typed handles to the plugin's
//! exported callbacks, looked up once at instantiation.
//!
//! As in proxy-wasm-cpp-host, each call into the VM starts with no effective context, and
//! what the plugin asks for during the call (continue/close a stream, local reply, done) is
//! recorded as a pending action that the host carries out after the call returns.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use wasmtime::{Instance, Memory, Store, TypedFunc, WasmParams, WasmResults};

use crate::error::{Error, ErrorKind, Result};
use crate::module::PluginModule;
use crate::pairs::HeaderMap;
use crate::profile::HostProfile;
use crate::properties::PropertyTable;
use crate::shared::Shared;
use crate::state::{Side, StreamState};
use crate::types::{LocalResponse, LogLevel, StreamType};

/// Immutable configuration shared by the workers of one host.
#[derive(Debug, Clone)]
pub(crate) struct HostConfig {
    pub(crate) vm_id: String,
    pub(crate) root_id: String,
    pub(crate) plugin_name: String,
    pub(crate) vm_config: Vec<u8>,
    pub(crate) plugin_config: Vec<u8>,
    pub(crate) log_level: LogLevel,
    pub(crate) global_properties: PropertyTable,
    pub(crate) stream_properties: PropertyTable,
    pub(crate) clusters: Option<Vec<String>>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) deliver_local_reply: bool,
    /// Which host's answers the mock gives.
    pub(crate) profile: HostProfile,
}

/// An http-call response while `proxy_on_http_call_response` runs.
#[derive(Debug, Default)]
pub(crate) struct HttpResponseData {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
    pub(crate) trailers: Option<HeaderMap>,
}

/// An action the plugin requested during a VM call, carried out after it returns.
#[derive(Debug, Clone)]
pub(crate) enum Pending {
    Continue {
        context_id: u32,
        side: Side,
    },
    Close {
        context_id: u32,
        stream: StreamType,
    },
    LocalReply {
        context_id: u32,
        reply: LocalResponse,
    },
    /// A root context that called `proxy_done` after `proxy_on_done` returned false.
    RootDone(u32),
}

/// Store data of a worker VM.
pub(crate) struct WorkerState {
    pub(crate) index: usize,
    pub(crate) memory: Option<Memory>,
    /// Shared so that a host function can call it without cloning the typed function
    /// (cloning a `TypedFunc` clones its registered type, which is slow).
    pub(crate) malloc: Option<Arc<TypedFunc<i32, i32>>>,
    /// Boxed: it moves in and out of the store on every VM call.
    pub(crate) shared: Box<Shared>,
    pub(crate) cfg: Arc<HostConfig>,
    pub(crate) root_id: u32,
    pub(crate) current: u32,
    pub(crate) effective: u32,
    pub(crate) in_configure: bool,
    /// Boxed, like `pool` and `Worker::finished`, so that streams move as pointers.
    pub(crate) streams: FxHashMap<u32, Box<StreamState>>,
    // Boxed on purpose: a pooled stream moves into `streams` as a pointer, not as a copy.
    #[allow(clippy::vec_box)]
    pub(crate) pool: Vec<Box<StreamState>>,
    pub(crate) next_context_id: u32,
    pub(crate) pending: Vec<Pending>,
    pub(crate) stop_iteration: bool,
    pub(crate) tick_period_ms: u32,
    pub(crate) next_tick_ns: Option<u64>,
    pub(crate) metric_ids: FxHashMap<u32, usize>,
    pub(crate) next_metric_id: [u32; 3],
    pub(crate) next_callout_id: [u32; 3],
    pub(crate) http_response: Option<HttpResponseData>,
    pub(crate) grpc_initial: Option<HeaderMap>,
    pub(crate) grpc_trailing: Option<HeaderMap>,
    pub(crate) grpc_message: Option<Vec<u8>>,
    pub(crate) status: (u32, Vec<u8>),
    pub(crate) call_data: Vec<u8>,
    pub(crate) scratch: Vec<u8>,
    pub(crate) rng: u64,
    pub(crate) root_pending_done: bool,
    pub(crate) root_deleted: bool,
    /// Root contexts of replaced configurations, alive until their streams are gone.
    pub(crate) retiring: Vec<crate::roots::RetiringRoot>,
}

impl WorkerState {
    fn new(index: usize, cfg: Arc<HostConfig>, seed: u64) -> Self {
        Self {
            index,
            memory: None,
            malloc: None,
            shared: Box::default(),
            cfg,
            root_id: 1,
            current: 0,
            effective: 0,
            in_configure: false,
            streams: FxHashMap::default(),
            pool: Vec::new(),
            next_context_id: 2,
            pending: Vec::new(),
            stop_iteration: false,
            tick_period_ms: 0,
            next_tick_ns: None,
            metric_ids: FxHashMap::default(),
            next_metric_id: [0, 1, 2],
            next_callout_id: [0, 1, 2],
            http_response: None,
            grpc_initial: None,
            grpc_trailing: None,
            grpc_message: None,
            status: (0, Vec::new()),
            call_data: Vec::new(),
            scratch: Vec::new(),
            rng: seed ^ (0x9E37_79B9_7F4A_7C15_u64.wrapping_mul(index as u64 + 1)),
            root_pending_done: false,
            root_deleted: false,
            retiring: Vec::new(),
        }
    }

    /// The context host calls act on: the effective one if set and alive, else the current.
    pub(crate) fn ctx(&self) -> u32 {
        if self.effective != 0
            && (self.is_root(self.effective) || self.streams.contains_key(&self.effective))
        {
            return self.effective;
        }
        self.current
    }

    pub(crate) fn stream(&self) -> Option<&StreamState> {
        self.streams.get(&self.ctx()).map(|s| &**s)
    }

    pub(crate) fn stream_mut(&mut self) -> Option<&mut StreamState> {
        let id = self.ctx();
        self.streams.get_mut(&id).map(|s| &mut **s)
    }

    pub(crate) fn http_response_map(&self, trailers: bool) -> Option<&HeaderMap> {
        let r = self.http_response.as_ref()?;
        if trailers {
            r.trailers.as_ref()
        } else {
            Some(&r.headers)
        }
    }

    /// xorshift64*: deterministic bytes for WASI `random_get`.
    pub(crate) fn next_random(&mut self) -> u64 {
        let mut x = self.rng.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

type Cb1 = Option<TypedFunc<i32, ()>>;
type Cb1R = Option<TypedFunc<i32, i32>>;
type Cb2 = Option<TypedFunc<(i32, i32), ()>>;
type Cb2R = Option<TypedFunc<(i32, i32), i32>>;
type Cb3 = Option<TypedFunc<(i32, i32, i32), ()>>;
type Cb3R = Option<TypedFunc<(i32, i32, i32), i32>>;
type Cb5 = Option<TypedFunc<(i32, i32, i32, i32, i32), ()>>;

/// The plugin's exported callbacks (absent ones are skipped, as Envoy does).
#[derive(Default)]
pub(crate) struct Exports {
    pub(crate) on_context_create: Cb2,
    pub(crate) on_vm_start: Cb2R,
    pub(crate) on_configure: Cb2R,
    pub(crate) on_tick: Cb1,
    pub(crate) on_queue_ready: Cb2,
    pub(crate) on_request_headers: Cb3R,
    pub(crate) on_request_body: Cb3R,
    pub(crate) on_request_trailers: Cb2R,
    pub(crate) on_response_headers: Cb3R,
    pub(crate) on_response_body: Cb3R,
    pub(crate) on_response_trailers: Cb2R,
    pub(crate) on_done: Cb1R,
    pub(crate) on_log: Cb1,
    pub(crate) on_delete: Cb1,
    pub(crate) on_http_call_response: Cb5,
    pub(crate) on_grpc_receive: Cb3,
    pub(crate) on_grpc_close: Cb3,
    pub(crate) on_grpc_receive_initial_metadata: Cb3,
    pub(crate) on_grpc_receive_trailing_metadata: Cb3,
    pub(crate) initialize: Option<TypedFunc<(), ()>>,
    pub(crate) main: Option<TypedFunc<(i32, i32), i32>>,
    pub(crate) start: Option<TypedFunc<(), ()>>,
}

fn typed<P: WasmParams, R: WasmResults>(
    store: &mut Store<WorkerState>,
    instance: &Instance,
    name: &str,
) -> Result<Option<TypedFunc<P, R>>> {
    match instance.get_func(&mut *store, name) {
        None => Ok(None),
        Some(f) => f.typed::<P, R>(&*store).map(Some).map_err(|e| {
            Error::new(
                ErrorKind::Instantiate,
                format!("export {name} has the wrong signature: {e}"),
            )
        }),
    }
}

/// A worker VM.
pub(crate) struct Worker {
    pub(crate) store: Store<WorkerState>,
    pub(crate) instance: Instance,
    pub(crate) exports: Exports,
    /// Finished streams kept for inspection (invisible to the plugin).
    pub(crate) finished: FxHashMap<u32, Box<StreamState>>,
    pub(crate) failed: Option<String>,
}

impl Worker {
    pub(crate) fn new(
        module: &PluginModule,
        index: usize,
        cfg: Arc<HostConfig>,
        seed: u64,
    ) -> Result<Self> {
        let mut store = Store::new(module.engine(), WorkerState::new(index, cfg, seed));
        if module.metered() {
            store.set_fuel(u64::MAX).map_err(|e| {
                Error::new(ErrorKind::Instantiate, format!("cannot meter fuel: {e:?}"))
            })?;
        }
        let instance = module.pre().instantiate(&mut store).map_err(|e| {
            Error::new(
                ErrorKind::Instantiate,
                format!(
                    "cannot instantiate {} (worker {index}): {e:?}",
                    module.name()
                ),
            )
        })?;
        let memory = instance.get_memory(&mut store, "memory");
        let mut malloc = typed::<i32, i32>(&mut store, &instance, "malloc")?;
        if malloc.is_none() {
            malloc = typed::<i32, i32>(&mut store, &instance, "proxy_on_memory_allocate")?;
        }
        if malloc.is_none() {
            return Err(Error::new(
                ErrorKind::Instantiate,
                format!(
                    "{} is missing malloc function (Envoy refuses it)",
                    module.name()
                ),
            ));
        }
        store.data_mut().memory = memory;
        store.data_mut().malloc = malloc.map(Arc::new);
        let s = &mut store;
        let i = &instance;
        let exports = Exports {
            on_context_create: typed(s, i, "proxy_on_context_create")?,
            on_vm_start: typed(s, i, "proxy_on_vm_start")?,
            on_configure: typed(s, i, "proxy_on_configure")?,
            on_tick: typed(s, i, "proxy_on_tick")?,
            on_queue_ready: typed(s, i, "proxy_on_queue_ready")?,
            on_request_headers: typed(s, i, "proxy_on_request_headers")?,
            on_request_body: typed(s, i, "proxy_on_request_body")?,
            on_request_trailers: typed(s, i, "proxy_on_request_trailers")?,
            on_response_headers: typed(s, i, "proxy_on_response_headers")?,
            on_response_body: typed(s, i, "proxy_on_response_body")?,
            on_response_trailers: typed(s, i, "proxy_on_response_trailers")?,
            on_done: typed(s, i, "proxy_on_done")?,
            on_log: typed(s, i, "proxy_on_log")?,
            on_delete: typed(s, i, "proxy_on_delete")?,
            on_http_call_response: typed(s, i, "proxy_on_http_call_response")?,
            on_grpc_receive: typed(s, i, "proxy_on_grpc_receive")?,
            on_grpc_close: typed(s, i, "proxy_on_grpc_close")?,
            on_grpc_receive_initial_metadata: typed(
                s,
                i,
                "proxy_on_grpc_receive_initial_metadata",
            )?,
            on_grpc_receive_trailing_metadata: typed(
                s,
                i,
                "proxy_on_grpc_receive_trailing_metadata",
            )?,
            initialize: typed(s, i, "_initialize")?,
            main: typed(s, i, "main")?,
            start: typed(s, i, "_start")?,
        };
        Ok(Self {
            store,
            instance,
            exports,
            finished: FxHashMap::default(),
            failed: None,
        })
    }

    /// Calls the export `pick` chooses with `context_id` as the current context;
    /// `Ok(None)` when the plugin does not export it. The typed function is borrowed from
    /// the exports looked up at instantiation, never cloned or looked up again.
    pub(crate) fn call<P: WasmParams, R: WasmResults>(
        &mut self,
        shared: &mut Box<Shared>,
        pick: impl FnOnce(&Exports) -> Option<&TypedFunc<P, R>>,
        context_id: u32,
        params: P,
    ) -> Result<Option<R>> {
        let Self {
            store,
            exports,
            failed,
            ..
        } = self;
        let Some(func) = pick(exports) else {
            return Ok(None);
        };
        run_call(store, failed, shared, context_id, |store| {
            func.call(store, params)
        })
        .map(Some)
    }

    /// Runs `f` as one VM call with `context_id` current. The shared state is moved into
    /// the store for the call and back out afterwards; a trap marks the VM failed.
    pub(crate) fn with_call<R>(
        &mut self,
        shared: &mut Box<Shared>,
        context_id: u32,
        f: impl FnOnce(&mut Store<WorkerState>) -> wasmtime::Result<R>,
    ) -> Result<R> {
        run_call(&mut self.store, &mut self.failed, shared, context_id, f)
    }
}

/// `Worker::with_call` on the worker's parts, so that the exports stay borrowable.
fn run_call<R>(
    store: &mut Store<WorkerState>,
    failed: &mut Option<String>,
    shared: &mut Box<Shared>,
    context_id: u32,
    f: impl FnOnce(&mut Store<WorkerState>) -> wasmtime::Result<R>,
) -> Result<R> {
    if let Some(reason) = failed {
        return Err(Error::new(
            ErrorKind::VmFailed,
            format!(
                "worker {} failed earlier and is unusable: {reason}",
                store.data().index
            ),
        ));
    }
    let data = store.data_mut();
    std::mem::swap(&mut data.shared, shared);
    let saved = (data.current, data.effective);
    data.current = context_id;
    data.effective = 0;
    data.stop_iteration = false;
    let result = f(store);
    let data = store.data_mut();
    data.current = saved.0;
    data.effective = saved.1;
    std::mem::swap(&mut data.shared, shared);
    result.map_err(|e| {
        let index = store.data().index;
        let message = format!("{e:?}");
        *failed = Some(message.clone());
        let recent: Vec<String> = shared
            .logs
            .iter()
            .rev()
            .filter(|l| l.worker == index)
            .take(20)
            .map(|l| format!("  [{:?}] {}", l.level, l.message))
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        Error::new(
            ErrorKind::Trap,
            format!(
                "plugin trapped on worker {index} (context {context_id}): {message}\nlast plugin logs:\n{}",
                if recent.is_empty() {
                    "  (none)".to_string()
                } else {
                    recent.join("\n")
                }
            ),
        )
    })
}
