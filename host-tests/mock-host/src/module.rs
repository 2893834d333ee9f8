//! Compiled plugin modules, shared across hosts and tests.
//!
//! Compiling a plugin with Cranelift takes far longer than running a test, so a module is
//! compiled once per process: `PluginModule::load` caches by path (and the file's size and
//! modification time, so a rebuilt plugin is picked up). All modules share one `Engine`.
//! The linker with every host function is built once per module too and pre-instantiated
//! (`InstancePre`), so creating a worker VM is only an instantiation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use wasmtime::{Config, Engine, InstancePre, Linker, Module};

use crate::abi;
use crate::error::{Error, ErrorKind, Result};
use crate::worker::WorkerState;

/// A compiled proxy-wasm module; cheap to clone.
#[derive(Clone)]
pub struct PluginModule {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    engine: Engine,
    pre: InstancePre<WorkerState>,
    host_functions: Vec<String>,
    metered: bool,
}

/// Path, size, modification time, metered.
type CacheKey = (PathBuf, u64, Option<SystemTime>, bool);

/// The shared engine; a second one meters fuel (wasmtime's count of executed wasm
/// operators), which slows every call a little, so only hosts that ask for it pay.
fn engine(metered: bool) -> Result<Engine> {
    static ENGINE: OnceLock<std::result::Result<Engine, String>> = OnceLock::new();
    static METERED: OnceLock<std::result::Result<Engine, String>> = OnceLock::new();
    let cell = if metered { &METERED } else { &ENGINE };
    cell.get_or_init(|| {
        let mut config = Config::new();
        config.consume_fuel(metered);
        // `perf record` can name the plugin's functions (from the .wasm's name section) when
        // wasmtime writes a perf map: set BALLAST_WASM_PERFMAP=1 to profile a plugin.
        if std::env::var_os("BALLAST_WASM_PERFMAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        Engine::new(&config).map_err(|e| format!("{e:?}"))
    })
    .clone()
    .map_err(|e| {
        Error::new(
            ErrorKind::Load,
            format!("cannot create the wasmtime engine: {e}"),
        )
    })
}

fn cache() -> &'static Mutex<HashMap<CacheKey, PluginModule>> {
    static CACHE: OnceLock<Mutex<HashMap<CacheKey, PluginModule>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

impl PluginModule {
    /// Loads and compiles a `.wasm` file, or returns the copy compiled earlier in this
    /// process.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        Self::load_with(path.as_ref(), false)
    }

    /// [`PluginModule::load`], compiled to count the wasm operators it executes (wasmtime's
    /// fuel): [`crate::Host::wasm_fuel_used`] then says how much work the plugin did, the
    /// same on every machine and every run, where a timing would not.
    pub fn load_metered(path: impl AsRef<Path>) -> Result<Self> {
        Self::load_with(path.as_ref(), true)
    }

    fn load_with(path: &Path, metered: bool) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(|e| {
            Error::new(
                ErrorKind::Load,
                format!("cannot read plugin {}: {e}", path.display()),
            )
        })?;
        let key: CacheKey = (
            path.to_path_buf(),
            meta.len(),
            meta.modified().ok(),
            metered,
        );
        // A poisoned lock only means another test panicked while holding it; the map is
        // still consistent (insertions are atomic), so keep using it.
        if let Some(found) = cache().lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(found.clone());
        }
        let bytes = std::fs::read(path).map_err(|e| {
            Error::new(
                ErrorKind::Load,
                format!("cannot read plugin {}: {e}", path.display()),
            )
        })?;
        let module = Self::compile(&path.display().to_string(), &bytes, metered)?;
        cache()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, module.clone());
        Ok(module)
    }

    /// Compiles a module from binary wasm or WAT text (not cached).
    pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<Self> {
        Self::compile(name, bytes, false)
    }

    fn compile(name: &str, bytes: &[u8], metered: bool) -> Result<Self> {
        let engine = engine(metered)?;
        let module = Module::new(&engine, bytes)
            .map_err(|e| Error::new(ErrorKind::Load, format!("cannot compile {name}: {e:?}")))?;
        let mut linker: Linker<WorkerState> = Linker::new(&engine);
        abi::register(&mut linker).map_err(|e| {
            Error::new(
                ErrorKind::Instantiate,
                format!("cannot register host functions: {e:?}"),
            )
        })?;
        let pre = linker.instantiate_pre(&module).map_err(|e| {
            Error::new(
                ErrorKind::Instantiate,
                format!("{name} cannot be linked against the mock host (Envoy would refuse it too): {e:?}"),
            )
        })?;
        let mut host_functions: Vec<String> = module
            .imports()
            .filter(|import| import.module() == "env" && import.ty().func().is_some())
            .map(|import| import.name().to_string())
            .filter(|name| name.starts_with("proxy_"))
            .collect();
        host_functions.sort();
        Ok(Self {
            inner: Arc::new(Inner {
                name: name.to_string(),
                engine,
                pre,
                host_functions,
                metered,
            }),
        })
    }

    /// Compiles a WAT text module (handy for status-code tests).
    pub fn from_wat(name: &str, wat: &str) -> Result<Self> {
        Self::from_bytes(name, wat.as_bytes())
    }

    /// The file name (or given name) of the module.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The proxy-wasm host functions the module imports, sorted: what a test can make fail
    /// with [`crate::Host::fail_import`] without keeping its own list.
    pub fn host_functions(&self) -> &[String] {
        &self.inner.host_functions
    }

    /// Whether it counts the wasm operators it executes ([`PluginModule::load_metered`]).
    pub fn metered(&self) -> bool {
        self.inner.metered
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub(crate) fn pre(&self) -> &InstancePre<WorkerState> {
        &self.inner.pre
    }
}

impl std::fmt::Debug for PluginModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginModule")
            .field("name", &self.inner.name)
            .finish()
    }
}
