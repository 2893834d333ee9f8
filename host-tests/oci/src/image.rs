//! Assembles the image Istio's WasmPlugin pulls, in the "compat" variant of the Wasm image
//! spec: one OCI manifest (annotated `module.wasm.image/variant: compat`), a real image config,
//! and one tar+gzip layer holding `plugin.wasm`.
//!
//! Compat rather than the two-layer "oci" variant because Istio accepts both, but only compat
//! is an ordinary image to the rest of the tool chain: `skopeo inspect` refuses a non-image
//! config and umoci cannot unpack a raw-wasm layer, so with compat the image can be checked
//! and unpacked with standard tools before it is pushed.

use crate::layer::{self, Layer};
use crate::spec::{
    Config, Descriptor, Empty, Index, Manifest, RootFs, CONFIG_MEDIA_TYPE, INDEX_MEDIA_TYPE,
    LAYER_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, REF_NAME_ANNOTATION, VARIANT_ANNOTATION,
};
use crate::{Digest, Error, Tag};
use std::collections::BTreeMap;

/// The config's architecture. Nothing executes the image, and neither Istio nor skopeo nor
/// umoci select on it for a single manifest; `wasm` says what the content is.
const ARCHITECTURE: &str = "wasm";
/// The config's OS: `linux`, because `umoci unpack` refuses any other.
const OS: &str = "linux";

/// A content-addressed blob of the image.
pub struct Blob {
    /// What it is.
    pub media_type: &'static str,
    /// Its bytes, as written under `blobs/sha256/`.
    pub bytes: Vec<u8>,
    /// Their digest.
    pub digest: Digest,
}

impl Blob {
    fn new(media_type: &'static str, bytes: Vec<u8>) -> Self {
        let digest = Digest::of(&bytes);
        Blob {
            media_type,
            bytes,
            digest,
        }
    }

    fn descriptor(&self, annotations: BTreeMap<&'static str, String>) -> Descriptor {
        Descriptor {
            media_type: self.media_type,
            digest: self.digest,
            size: u64::try_from(self.bytes.len()).unwrap_or(u64::MAX),
            annotations,
        }
    }
}

/// Everything the layout holds.
pub struct Image {
    /// The manifest blob; its digest is the image digest (what a WasmPlugin's `sha256` pins).
    pub manifest: Blob,
    /// The config blob.
    pub config: Blob,
    /// The layer blob (gzip'd tar with `plugin.wasm`).
    pub layer: Blob,
    /// The bytes of index.json, which names the manifest with the tag.
    pub index_json: Vec<u8>,
}

/// Builds the image of `wasm`, tagged `tag` in index.json.
pub fn build(wasm: &[u8], tag: &Tag) -> Result<Image, Error> {
    let Layer {
        compressed,
        diff_id,
    } = layer::pack(wasm)?;
    let layer = Blob::new(LAYER_MEDIA_TYPE, compressed);

    let config = Config {
        architecture: ARCHITECTURE,
        os: OS,
        config: Empty {},
        rootfs: RootFs {
            kind: "layers",
            diff_ids: vec![diff_id],
        },
    };
    let config = Blob::new(CONFIG_MEDIA_TYPE, to_json("config", &config)?);

    let manifest = Manifest {
        schema_version: 2,
        media_type: MANIFEST_MEDIA_TYPE,
        config: config.descriptor(BTreeMap::new()),
        layers: vec![layer.descriptor(BTreeMap::new())],
        annotations: BTreeMap::from([(VARIANT_ANNOTATION, "compat".to_owned())]),
    };
    let manifest = Blob::new(MANIFEST_MEDIA_TYPE, to_json("manifest", &manifest)?);

    let index = Index {
        schema_version: 2,
        media_type: INDEX_MEDIA_TYPE,
        manifests: vec![manifest.descriptor(BTreeMap::from([(
            REF_NAME_ANNOTATION,
            tag.as_str().to_owned(),
        )]))],
    };
    let index_json = to_json("index", &index)?;

    Ok(Image {
        manifest,
        config,
        layer,
        index_json,
    })
}

fn to_json(document: &'static str, value: &impl serde::Serialize) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|source| Error::Json { document, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(bytes: &[u8]) -> serde_json::Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn descriptors_chain_by_digest_and_size() {
        let tag = Tag::parse("0.1.0").unwrap();
        let image = build(b"\0asm\x01\0\0\0", &tag).unwrap();
        let index = json(&image.index_json);
        let entry = &index["manifests"][0];
        assert_eq!(entry["digest"], image.manifest.digest.to_string());
        assert_eq!(entry["size"], image.manifest.bytes.len());
        assert_eq!(entry["annotations"][REF_NAME_ANNOTATION], "0.1.0");

        let manifest = json(&image.manifest.bytes);
        assert_eq!(
            manifest["config"]["digest"],
            image.config.digest.to_string()
        );
        assert_eq!(manifest["config"]["size"], image.config.bytes.len());
        assert_eq!(
            manifest["layers"][0]["digest"],
            image.layer.digest.to_string()
        );
        assert_eq!(manifest["layers"][0]["size"], image.layer.bytes.len());
        assert_eq!(manifest["annotations"][VARIANT_ANNOTATION], "compat");
    }

    #[test]
    fn same_module_same_bytes_other_module_other_digest() {
        let tag = Tag::parse("t").unwrap();
        let a = build(b"\0asm\x01\0\0\0a", &tag).unwrap();
        let again = build(b"\0asm\x01\0\0\0a", &tag).unwrap();
        let b = build(b"\0asm\x01\0\0\0b", &tag).unwrap();
        assert_eq!(a.manifest.bytes, again.manifest.bytes);
        assert_eq!(a.layer.bytes, again.layer.bytes);
        assert_ne!(a.manifest.digest, b.manifest.digest);
    }
}
