//! Istio's acceptance rules for a compat-variant WasmPlugin image (istio/istio
//! `pkg/wasm/imagefetcher.go` and `cache.go`), checked on the layout built from the real plugin
//! with readers independent of the crate: GNU tar for the archive, SHA-256 recomputed here. Also
//! the property the WasmPlugin `sha256` pin depends on: the same .wasm gives the same manifest
//! digest, build after build.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // test code: a panic is a failure

mod common;

use common::{
    ballast_oci, blob, compat_layer, json, plugin_wasm, require_tool, scratch, sha256_hex,
    success_bytes,
};
use std::io::Read;
use std::path::Path;
use std::process::Command;

/// The manifest the layout's index.json tags `tag`, with its digest.
fn tagged_manifest(dir: &Path, tag: &str) -> (String, serde_json::Value) {
    let index = json(&std::fs::read(dir.join("index.json")).unwrap());
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "one image in the layout: {index}");
    let entry = &entries[0];
    assert_eq!(
        entry["annotations"]["org.opencontainers.image.ref.name"],
        tag
    );
    let digest = entry["digest"].as_str().unwrap().to_owned();
    let bytes = blob(dir, &digest);
    assert_eq!(
        format!("sha256:{}", sha256_hex(&bytes)),
        digest,
        "manifest blob matches its digest"
    );
    assert_eq!(entry["size"], bytes.len());
    (digest, json(&bytes))
}

/// Runs GNU tar with `args` on `archive` (written to a file beside the test's other files, so
/// tar reads it as it would a download), returns stdout.
fn gnu_tar(args: &[&str], archive: &Path) -> Vec<u8> {
    let output = Command::new("tar")
        .args(args)
        .arg("-f")
        .arg(archive)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "tar {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[test]
fn the_image_meets_istios_compat_fetcher_rules() {
    require_tool("tar");
    let wasm_path = plugin_wasm();
    let wasm = std::fs::read(&wasm_path).unwrap();
    let dir = scratch("istio").join("oci");
    let built = ballast_oci(&wasm_path, &dir, Some("istio-test"));
    let (digest, manifest) = tagged_manifest(&dir, "istio-test");
    assert_eq!(digest, format!("sha256:{}", built.digest_hex));

    // Not the Docker manifest type (which Istio extracts differently), so the compat path runs;
    // Istio reads the LAST layer, whose media type must be exactly OCI tar+gzip.
    let last = compat_layer(&manifest);
    let compressed = blob(&dir, last["digest"].as_str().unwrap());
    assert_eq!(
        format!("sha256:{}", sha256_hex(&compressed)),
        last["digest"]
    );
    assert_eq!(last["size"], compressed.len());

    // It gunzips the layer and takes the first entry whose base name is plugin.wasm.
    let mut archive = Vec::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_end(&mut archive)
        .unwrap();
    let tar_path = dir.with_file_name("layer.tar");
    std::fs::write(&tar_path, &archive).unwrap();
    let listing = String::from_utf8(gnu_tar(&["--numeric-owner", "-tv"], &tar_path)).unwrap();
    let entries: Vec<&str> = listing.lines().collect();
    assert_eq!(entries.len(), 1, "one entry: {listing}");
    let fields: Vec<&str> = entries[0].split_whitespace().collect();
    assert_eq!(
        fields[..3],
        ["-rw-r--r--", "0/0", &wasm.len().to_string()],
        "{listing}"
    );
    assert_eq!(fields[3..5], ["1970-01-01", "00:00"], "mtime 0: {listing}");
    let name = fields[5];
    assert_eq!(Path::new(name).file_name().unwrap(), "plugin.wasm");
    let extracted = gnu_tar(&["-xO", name], &tar_path);
    // cache.go isValidWasmBinary: at least 8 bytes, starting with \0asm.
    assert!(extracted.len() >= 8 && extracted.starts_with(b"\0asm"));
    assert!(
        extracted == wasm,
        "the extracted module differs from {}",
        wasm_path.display()
    );

    // The config's diff_id is the uncompressed tar's digest (what umoci verifies).
    let config = json(&blob(&dir, manifest["config"]["digest"].as_str().unwrap()));
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    assert_eq!(config["rootfs"]["type"], "layers");
    assert_eq!(
        config["rootfs"]["diff_ids"],
        serde_json::json!([format!("sha256:{}", sha256_hex(&archive))])
    );
}

#[test]
fn the_layer_tar_is_byte_identical_to_gnu_tar_ustar() {
    require_tool("tar");
    let root = scratch("gnu-tar");
    let wasm_path = plugin_wasm();
    let staged = root.join("files");
    std::fs::create_dir_all(&staged).unwrap();
    std::fs::copy(&wasm_path, staged.join("plugin.wasm")).unwrap();
    let expected = success_bytes(
        Command::new("tar")
            .args([
                "--format=ustar",
                "--numeric-owner",
                "--owner=0",
                "--group=0",
                "--mode=0644",
                "--mtime=@0",
                "-b1",
                "-cf",
                "-",
                "-C",
            ])
            .arg(&staged)
            .arg("plugin.wasm"),
    );

    let built = ballast_oci(&wasm_path, &root.join("oci"), Some("t"));
    let (_, manifest) = tagged_manifest(&built.dir, "t");
    let compressed = blob(
        &built.dir,
        manifest["layers"][0]["digest"].as_str().unwrap(),
    );
    let mut archive = Vec::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_end(&mut archive)
        .unwrap();
    assert_eq!(archive.len(), expected.len());
    let first_difference = archive.iter().zip(&expected).position(|(a, b)| a != b);
    assert_eq!(
        first_difference, None,
        "the layer's tar differs from GNU tar's ustar output"
    );
}

#[test]
fn the_same_module_always_gives_the_same_manifest_digest() {
    let root = scratch("determinism");
    let wasm_path = plugin_wasm();
    let first = ballast_oci(&wasm_path, &root.join("a"), Some("same"));
    let second = ballast_oci(&wasm_path, &root.join("b"), Some("same"));
    assert_eq!(first.digest_hex, second.digest_hex);
    // A rebuild over an existing layout replaces it with the same bytes.
    let again = ballast_oci(&wasm_path, &root.join("a"), Some("same"));
    assert_eq!(again.digest_hex, first.digest_hex);
    for file in ["index.json", "oci-layout", "manifest-digest.txt"] {
        assert_eq!(
            std::fs::read(root.join("a").join(file)).unwrap(),
            std::fs::read(root.join("b").join(file)).unwrap(),
            "{file}"
        );
    }
    let mut blobs: Vec<_> = std::fs::read_dir(root.join("a/blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    blobs.sort();
    assert_eq!(blobs.len(), 3, "manifest, config, layer: {blobs:?}");

    // A different module (one byte appended) gives a different digest: the pin is specific.
    let mut other = std::fs::read(&wasm_path).unwrap();
    other.push(0);
    let other_path = root.join("other.wasm");
    std::fs::write(&other_path, &other).unwrap();
    let different = ballast_oci(&other_path, &root.join("c"), Some("same"));
    assert_ne!(different.digest_hex, first.digest_hex);
}
