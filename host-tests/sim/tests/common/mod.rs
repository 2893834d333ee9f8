//! What every simulator test needs to find: the repository and the real plugin, the same way
//! `make test` hands them over (`BALLAST_WASM`), so a test never runs against a stale copy.

use std::path::{Path, PathBuf};

/// The repository's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The plugin under test: `$BALLAST_WASM`, else `target/ballast.wasm`.
pub fn wasm() -> PathBuf {
    let path = std::env::var_os("BALLAST_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/ballast.wasm"));
    assert!(
        path.is_file(),
        "{} missing: run `make build`",
        path.display()
    );
    path
}
