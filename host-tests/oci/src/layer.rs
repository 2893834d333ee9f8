//! The image's one layer: `plugin.wasm` in a tar, gzip-compressed, because Istio accepts the
//! compat variant only when the last layer is `application/vnd.oci.image.layer.v1.tar+gzip`
//! (an uncompressed or zstd layer is refused).
//!
//! The gzip header carries no timestamp and no file name, and the compressor (flate2's default
//! miniz_oxide backend) and level are fixed: the compressed bytes, and with them the layer
//! digest and the manifest digest, then depend only on the module. A different backend or a
//! compressor upgrade may change the compressed bytes (not the `diff_id`), and so the digest a
//! WasmPlugin pins: rebuild and re-pin after such an upgrade.

use crate::{tar, Digest, Error};
use flate2::{Compression, GzBuilder};
use std::io::Write;

/// The file name Istio looks for in the layer (it compares the base name of each entry).
pub const PLUGIN_FILE_NAME: &str = "plugin.wasm";

/// gzip's "unknown" operating system byte: the header says nothing about the build machine.
const UNKNOWN_OS: u8 = 255;

/// The layer in both forms the image needs.
pub struct Layer {
    /// The gzip-compressed tar: the blob the manifest points at.
    pub compressed: Vec<u8>,
    /// The digest of the uncompressed tar: the config's `rootfs.diff_ids` entry, which umoci
    /// checks while unpacking.
    pub diff_id: Digest,
}

/// Packs `wasm` as `plugin.wasm` in a tar and compresses it.
pub fn pack(wasm: &[u8]) -> Result<Layer, Error> {
    let archive = tar::single_file(PLUGIN_FILE_NAME, wasm)?;
    let diff_id = Digest::of(&archive);
    let mut encoder = GzBuilder::new()
        .mtime(0)
        .operating_system(UNKNOWN_OS)
        .write(Vec::new(), Compression::best());
    encoder.write_all(&archive).map_err(Error::Gzip)?;
    let compressed = encoder.finish().map_err(Error::Gzip)?;
    Ok(Layer {
        compressed,
        diff_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn decompresses_to_the_tar_the_diff_id_names() {
        let wasm = b"\0asm\x01\0\0\0 some module bytes";
        let layer = pack(wasm).unwrap();
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(&layer.compressed[..])
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(Digest::of(&tar), layer.diff_id);
        assert_eq!(tar, tar::single_file(PLUGIN_FILE_NAME, wasm).unwrap());
    }

    #[test]
    fn gzip_header_has_no_timestamp_or_name() {
        let layer = pack(b"\0asm\x01\0\0\0").unwrap();
        // ID1 ID2 CM FLG MTIME(4) XFL OS: no FNAME flag, mtime 0, OS unknown.
        assert_eq!(&layer.compressed[..3], &[0x1f, 0x8b, 8]);
        assert_eq!(layer.compressed[3], 0, "no optional header fields");
        assert_eq!(&layer.compressed[4..8], &[0, 0, 0, 0]);
        assert_eq!(layer.compressed[9], UNKNOWN_OS);
    }
}
