//! Packs the ballast plugin as an OCI image for Istio, without docker or a registry.
//!
//! Istio's WasmPlugin fetches `oci://` modules from a registry, so the .wasm has to become an
//! image first. The usual tools for that (docker, buildah, oras) are not part of a Rust and
//! Debian build; an OCI image layout is plain files, so this crate writes one directly: the
//! compat variant of the Wasm image spec (one tar+gzip layer holding `plugin.wasm`), byte for
//! byte reproducible, so the same module always has the same manifest digest, the value a
//! WasmPlugin's `sha256` pins. `skopeo copy` pushes the layout to any registry unchanged.

#![forbid(unsafe_code)]

mod digest;
mod error;
mod image;
mod layer;
mod layout;
pub mod spec;
mod tag;
mod tar;

pub use digest::Digest;
pub use error::Error;
pub use image::{build, Blob, Image};
pub use layer::PLUGIN_FILE_NAME;
pub use layout::DIGEST_FILE;
pub use tag::Tag;

use std::path::{Path, PathBuf};

/// What [`pack_file`] wrote.
pub struct Written {
    /// The manifest digest: the image digest registries and `skopeo inspect` report.
    pub manifest_digest: Digest,
    /// The file holding the digest's hex, for a WasmPlugin's `sha256`.
    pub digest_file: PathBuf,
    /// Size of the module.
    pub wasm_bytes: usize,
    /// Size of the compressed layer.
    pub layer_bytes: usize,
}

/// Reads the module at `wasm_path`, checks it is WebAssembly, and writes its image as a layout
/// at `out_dir` under `tag`.
pub fn pack_file(wasm_path: &Path, out_dir: &Path, tag: &Tag) -> Result<Written, Error> {
    let wasm = std::fs::read(wasm_path).map_err(|source| Error::ReadPlugin {
        path: wasm_path.to_path_buf(),
        source,
    })?;
    check_wasm(&wasm).map_err(|reason| Error::NotWasm {
        path: wasm_path.to_path_buf(),
        reason,
    })?;
    let image = build(&wasm, tag)?;
    let digest_file = layout::write(&image, out_dir)?;
    Ok(Written {
        manifest_digest: image.manifest.digest,
        digest_file,
        wasm_bytes: wasm.len(),
        layer_bytes: image.layer.bytes.len(),
    })
}

/// Istio's own check after pulling (at least 8 bytes, starting with the `\0asm` magic), made
/// before packing so a wrong file fails here and not in the mesh.
fn check_wasm(wasm: &[u8]) -> Result<(), String> {
    if wasm.len() < 8 {
        return Err(format!(
            "{} bytes, shorter than the 8-byte module header",
            wasm.len()
        ));
    }
    if !wasm.starts_with(b"\0asm") {
        return Err("it does not start with the \\0asm magic".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_webassembly_is_packed() {
        assert!(check_wasm(b"\0asm\x01\0\0\0").is_ok());
        assert!(check_wasm(b"\0asm").is_err());
        assert!(check_wasm(b"\x7fELF\x02\x01\x01\0\0\0").is_err());
    }
}
