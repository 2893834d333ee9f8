//! Where the artefacts under test live. Missing ones are errors that say how to build them:
//! a test that silently skips would pass while proving nothing.

use std::path::{Path, PathBuf};

/// The repository root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// The plugin .wasm: `$BALLAST_WASM`, else `target/ballast.wasm` (what `make build` writes).
pub fn plugin_wasm() -> Result<PathBuf, String> {
    artefact("BALLAST_WASM", "target/ballast.wasm", "make build")
}

/// The fixture plugin (a proxy-wasm SDK plugin that can be told to trap): `$BALLAST_FIXTURE_WASM`,
/// else what `make fixture` writes.
pub fn fixture_wasm() -> Result<PathBuf, String> {
    artefact(
        "BALLAST_FIXTURE_WASM",
        "target/wasm32-wasip1/release/ballast_fixture_plugin.wasm",
        "make fixture",
    )
}

/// The Envoy binary: `$BALLAST_ENVOY`, else the one `make envoy` installs into `.venv`.
pub fn envoy_binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("BALLAST_ENVOY").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
    }
    let lib = workspace_root().join(".venv/lib");
    let entries = std::fs::read_dir(&lib).map_err(|_| missing("Envoy", &lib, "make envoy"))?;
    for entry in entries.flatten() {
        let candidate = entry.path().join("site-packages/envoy/_bin/envoy");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(missing("Envoy", &lib, "make envoy"))
}

/// A file of the repository, by relative path.
pub fn repo_file(relative: &str) -> PathBuf {
    workspace_root().join(relative)
}

fn artefact(var: &str, default: &str, command: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os(var)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(default));
    if path.is_file() {
        Ok(path)
    } else {
        Err(missing(var, &path, command))
    }
}

fn missing(what: &str, path: &Path, command: &str) -> String {
    format!(
        "{what} not found at {}: run `{command}` first",
        path.display()
    )
}
