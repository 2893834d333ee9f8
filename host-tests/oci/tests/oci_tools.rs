//! The layout `ballast-oci` writes from the real plugin, read by the real OCI tools: skopeo
//! (what pushes it, and the same containers/image code many registries' clients use) and umoci
//! (which unpacks it, checking every digest, size and diff_id). If these accept the layout, a
//! registry push and Istio's pull get the same manifest; a corrupted blob shows the checks bite.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // test code: a panic is a failure

mod common;

use common::{
    ballast_oci, blob, compat_layer, failure, json, plugin_wasm, require_tool, scratch, sha256_hex,
    success, LAYER_MEDIA_TYPE,
};
use std::process::Command;

#[test]
fn skopeo_reads_the_image_and_reports_the_printed_digest() {
    require_tool("skopeo");
    let dir = scratch("skopeo").join("oci");
    // No --tag: the default tag is the crate version.
    let built = ballast_oci(&plugin_wasm(), &dir, None);
    let tag = env!("CARGO_PKG_VERSION");
    let reference = format!("oci:{}:{tag}", dir.display());

    let raw = success(Command::new("skopeo").args(["inspect", "--raw", &reference]));
    assert_eq!(
        sha256_hex(raw.as_bytes()),
        built.digest_hex,
        "the manifest skopeo serves hashes to the printed digest"
    );
    let manifest = json(raw.as_bytes());
    let layer = compat_layer(&manifest);

    let inspect = json(success(Command::new("skopeo").args(["inspect", &reference])).as_bytes());
    assert_eq!(inspect["Digest"], format!("sha256:{}", built.digest_hex));
    assert_eq!(inspect["Os"], "linux");
    assert_eq!(inspect["Architecture"], "wasm");
    // skopeo >= 1.10 also lists media types (`LayersData`); Debian 12's 1.9.3 does not.
    if let Some(data) = inspect.get("LayersData").filter(|d| !d.is_null()) {
        assert_eq!(data[0]["MIMEType"], LAYER_MEDIA_TYPE);
    }
    assert_eq!(inspect["Layers"][0], layer["digest"]);

    assert_eq!(
        std::fs::read_to_string(&built.digest_file).unwrap(),
        format!("{}\n", built.digest_hex),
        "the digest file holds the hex and a newline"
    );
}

#[test]
fn a_copy_with_preserved_digests_keeps_the_manifest_digest() {
    require_tool("skopeo");
    let root = scratch("copy");
    let built = ballast_oci(&plugin_wasm(), &root.join("oci"), Some("copy-test"));
    let digest_file = root.join("pushed-digest");
    // The README's push command, to a local directory instead of a registry.
    success(
        Command::new("skopeo")
            .args([
                "--insecure-policy",
                "copy",
                "--preserve-digests",
                "--digestfile",
            ])
            .arg(&digest_file)
            .args([
                &format!("oci:{}:copy-test", built.dir.display()),
                &format!("dir:{}", root.join("copied").display()),
            ]),
    );
    assert_eq!(
        std::fs::read_to_string(&digest_file).unwrap().trim(),
        format!("sha256:{}", built.digest_hex)
    );
}

#[test]
fn umoci_unpacks_plugin_wasm_byte_identical() {
    require_tool("umoci");
    let root = scratch("umoci");
    let wasm_path = plugin_wasm();
    let built = ballast_oci(&wasm_path, &root.join("oci"), Some("unpack-test"));
    let bundle = root.join("bundle");
    success(
        Command::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:unpack-test", built.dir.display()))
            .arg(&bundle),
    );

    let rootfs = bundle.join("rootfs");
    let entries: Vec<_> = std::fs::read_dir(&rootfs)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        entries,
        vec![std::ffi::OsString::from("plugin.wasm")],
        "the layer holds plugin.wasm only"
    );
    let unpacked = std::fs::read(rootfs.join("plugin.wasm")).unwrap();
    assert!(unpacked.starts_with(b"\0asm"), "a WebAssembly module");
    assert!(
        unpacked == std::fs::read(&wasm_path).unwrap(),
        "plugin.wasm differs from {}",
        wasm_path.display()
    );
}

/// Replaces the layer blob of the layout at `dir` (tagged `tag`) with `bytes`, keeping its name.
fn replace_layer(dir: &std::path::Path, digest_hex: &str, bytes: &[u8]) {
    let manifest = json(&blob(dir, &format!("sha256:{digest_hex}")));
    let layer_digest = manifest["layers"][0]["digest"].as_str().unwrap();
    let hex = layer_digest.strip_prefix("sha256:").unwrap();
    std::fs::write(dir.join("blobs/sha256").join(hex), bytes).unwrap();
}

#[test]
fn a_corrupted_or_swapped_layer_is_refused_by_skopeo_and_umoci() {
    require_tool("skopeo");
    require_tool("umoci");
    let root = scratch("corrupt");
    let wasm_path = plugin_wasm();

    // A layer of the same shape from a module one byte longer: valid gzip, valid tar, wrong
    // content. Only the digest check can tell.
    let mut other_wasm = std::fs::read(&wasm_path).unwrap();
    other_wasm.push(0);
    let other_path = root.join("other.wasm");
    std::fs::write(&other_path, &other_wasm).unwrap();
    let other = ballast_oci(&other_path, &root.join("other"), Some("t"));
    let other_manifest = json(&blob(&other.dir, &format!("sha256:{}", other.digest_hex)));
    let swapped = blob(
        &other.dir,
        other_manifest["layers"][0]["digest"].as_str().unwrap(),
    );

    for case in ["flipped", "swapped"] {
        let built = ballast_oci(&wasm_path, &root.join(case), Some("t"));
        let manifest = json(&blob(&built.dir, &format!("sha256:{}", built.digest_hex)));
        let mut layer = blob(
            &built.dir,
            manifest["layers"][0]["digest"].as_str().unwrap(),
        );
        if case == "flipped" {
            let middle = layer.len() / 2;
            layer[middle] ^= 0x01;
        } else {
            layer = swapped.clone();
        }
        replace_layer(&built.dir, &built.digest_hex, &layer);

        let stderr = failure(
            Command::new("skopeo")
                .args(["--insecure-policy", "copy"])
                .args([
                    &format!("oci:{}:t", built.dir.display()),
                    &format!("dir:{}", root.join(format!("{case}-copied")).display()),
                ]),
        );
        assert!(
            stderr.contains("Digest did not match"),
            "{case}: skopeo should name the digest mismatch:\n{stderr}"
        );

        let stderr = failure(
            Command::new("umoci")
                .args(["unpack", "--rootless", "--image"])
                .arg(format!("{}:t", built.dir.display()))
                .arg(root.join(format!("{case}-bundle"))),
        );
        // A flipped byte breaks the deflate stream, which umoci notices first (gzip checksum);
        // a well-formed but different layer reaches its digest check.
        let expected = if case == "flipped" {
            "gzip: invalid checksum"
        } else {
            "digest mismatch"
        };
        assert!(
            stderr.contains(expected),
            "{case}: umoci should say {expected:?}:\n{stderr}"
        );
    }
}
