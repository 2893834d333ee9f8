//! Shared by the OCI image tests: the real plugin, the real tools, scratch directories and a
//! run of the real `ballast-oci` binary. Anything missing is a failure that says how to get it,
//! never a skip: a skipped check would pass while proving nothing.

#![allow(dead_code)] // each test file uses its own subset
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // test code: a panic is a failure

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The real ballast plugin: `$BALLAST_WASM`, else `target/ballast.wasm` (`make build`).
pub fn plugin_wasm() -> PathBuf {
    let path = std::env::var_os("BALLAST_WASM")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ballast.wasm"));
    assert!(
        path.is_file(),
        "{} missing: run `make build`",
        path.display()
    );
    path
}

/// Fails with instructions unless `tool` (skopeo, umoci, tar) runs.
pub fn require_tool(tool: &str) {
    let runs = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        runs,
        "`{tool}` is not installed: `make test` installs it (its apt-deps step installs skopeo \
         and umoci on Debian), or run `apt-get install {tool}`"
    );
}

/// An empty directory of its own for `name` under cargo's scratch space for tests. Each run
/// empties the previous run's (so a failure's files stay for inspection until the next run, and
/// runs do not pile up); every test passes its own name.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("ballast-oci")
        .join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What a successful `ballast-oci` run reported.
pub struct Built {
    /// The layout directory.
    pub dir: PathBuf,
    /// The manifest digest it printed, hex only.
    pub digest_hex: String,
    /// The digest file it printed.
    pub digest_file: PathBuf,
}

/// Runs the real `ballast-oci` binary on `wasm`, writing `out` (with `--tag` if given), and
/// checks it succeeded and printed the digest and the digest file.
pub fn ballast_oci(wasm: &Path, out: &Path, tag: Option<&str>) -> Built {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ballast-oci"));
    command.arg(wasm).arg(out);
    if let Some(tag) = tag {
        command.args(["--tag", tag]);
    }
    let stdout = success(&mut command);
    let field = |prefix: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{stdout}"))
            .to_owned()
    };
    let digest_hex = field("manifest digest: sha256:");
    assert!(
        digest_hex.len() == 64 && digest_hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "{digest_hex:?}"
    );
    let digest_file = PathBuf::from(field("digest file: ").split(" (").next().unwrap());
    Built {
        dir: out.to_path_buf(),
        digest_hex,
        digest_file,
    }
}

/// Runs `command`, fails the test with its output unless it succeeds, returns its stdout.
pub fn success(command: &mut Command) -> String {
    String::from_utf8(success_bytes(command)).unwrap()
}

/// As [`success`], for a command whose stdout is not text (an archive).
pub fn success_bytes(command: &mut Command) -> Vec<u8> {
    let output = output(command);
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}",
        describe(&output)
    );
    output.stdout
}

/// Runs `command`, fails the test if it succeeds, returns its stderr.
pub fn failure(command: &mut Command) -> String {
    let output = output(command);
    assert!(
        !output.status.success(),
        "{command:?} succeeded but should have failed:\n{}",
        describe(&output)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn output(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

fn describe(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Parses a JSON document.
pub fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

/// A blob of the layout at `dir` by its `sha256:<hex>` digest.
pub fn blob(dir: &Path, digest: &str) -> Vec<u8> {
    let hex = digest
        .strip_prefix("sha256:")
        .unwrap_or_else(|| panic!("not a sha256 digest: {digest}"));
    std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap()
}

/// The hex SHA-256 of `bytes`, for checking digests independently of the crate.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The layer media type Istio's compat fetcher requires of the last (here: only) layer.
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Checks the manifest has the compat variant's shape (an OCI image manifest, annotated
/// `module.wasm.image/variant: compat`, exactly one tar+gzip layer) and returns that layer.
pub fn compat_layer(manifest: &serde_json::Value) -> &serde_json::Value {
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["annotations"]["module.wasm.image/variant"],
        "compat"
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "exactly one layer: {manifest}");
    let layer = &layers[0];
    assert_eq!(layer["mediaType"], LAYER_MEDIA_TYPE);
    layer
}
