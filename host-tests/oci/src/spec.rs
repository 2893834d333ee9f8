//! The OCI image-spec JSON documents this tool writes, as structs rather than `json!` values:
//! struct fields serialise in declaration order and annotations are sorted maps, so the bytes
//! (and every digest over them) are the same whatever serde_json features the rest of the
//! workspace switches on.

use crate::Digest;
use serde::Serialize;
use std::collections::BTreeMap;

/// Media type of the image manifest (a single image, not an index: Istio pulls one manifest).
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of the image config (skopeo's `inspect` and umoci's `unpack` require it).
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of the layer (the one Istio's compat-variant fetcher accepts).
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Media type of index.json.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// The manifest annotation the Wasm image spec asks of a compat image with OCI media types.
pub const VARIANT_ANNOTATION: &str = "module.wasm.image/variant";
/// The annotation in index.json that names a manifest with its tag.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// Points at a blob by media type, digest and size.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// What the blob is.
    pub media_type: &'static str,
    /// Its SHA-256.
    pub digest: Digest,
    /// Its length in bytes.
    pub size: u64,
    /// Key-value metadata (index.json's tag).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<&'static str, String>,
}

/// An image manifest: one config and the layers.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// [`MANIFEST_MEDIA_TYPE`].
    pub media_type: &'static str,
    /// The image config blob.
    pub config: Descriptor,
    /// The layer blobs, base first.
    pub layers: Vec<Descriptor>,
    /// Manifest annotations (the Wasm variant).
    pub annotations: BTreeMap<&'static str, String>,
}

/// An image config: what the image runs on and the uncompressed digests of its layers.
#[derive(Serialize)]
pub struct Config {
    /// CPU architecture.
    pub architecture: &'static str,
    /// Operating system.
    pub os: &'static str,
    /// Execution parameters: none, nothing runs this image; `{}` keeps readers that expect
    /// the object happy.
    pub config: Empty,
    /// The layers' uncompressed digests.
    pub rootfs: RootFs,
}

/// An empty JSON object.
#[derive(Serialize)]
pub struct Empty {}

/// `rootfs` of the config.
#[derive(Serialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// One digest per layer, of the layer's uncompressed tar.
    pub diff_ids: Vec<Digest>,
}

/// index.json: the entry point of the layout, naming the manifest with its tag.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// [`INDEX_MEDIA_TYPE`].
    pub media_type: &'static str,
    /// The tagged manifests (one).
    pub manifests: Vec<Descriptor>,
}
