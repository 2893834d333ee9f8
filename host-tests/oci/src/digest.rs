//! SHA-256 content digests, the names of everything in an OCI image: blob file names, the
//! descriptors that point at blobs, the config's `diff_ids` and the manifest digest a WasmPlugin's
//! `sha256` field holds.

use sha2::{Digest as _, Sha256};
use std::fmt;

/// The SHA-256 of some bytes. Displays as `sha256:<64 lowercase hex>`, the OCI digest form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Digest(Sha256::digest(bytes).into())
    }

    /// The 64 lowercase hex characters without the `sha256:` prefix: a blob's file name under
    /// `blobs/sha256/`, and the form Istio's WasmPlugin `sha256` field takes.
    pub fn hex(&self) -> String {
        self.0.iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_the_oci_form_of_a_known_vector() {
        // FIPS 180-2's "abc" test vector.
        assert_eq!(
            Digest::of(b"abc").to_string(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
