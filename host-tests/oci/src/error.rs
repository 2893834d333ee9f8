//! Every way packing can fail, as values: `ballast-oci` prints the message and exits non-zero,
//! and each message names the file or value at fault so the fix is obvious.

use std::path::PathBuf;

/// What went wrong while packing the plugin or writing the layout.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input module could not be read.
    #[error("cannot read the plugin {path}: {source}")]
    ReadPlugin {
        /// The path given on the command line.
        path: PathBuf,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// The input is not a WebAssembly binary (Istio would reject it after pulling).
    #[error("{path} is not a WebAssembly module: {reason}")]
    NotWasm {
        /// The path given on the command line.
        path: PathBuf,
        /// What is wrong with its first bytes.
        reason: String,
    },
    /// The tag cannot be pushed to a registry.
    #[error(
        "tag {0:?} is not a valid image tag: use 1 to 128 of A-Z a-z 0-9 _ . -, \
         not starting with . or -"
    )]
    InvalidTag(String),
    /// The module does not fit a ustar header's 11-digit octal size field.
    #[error("the plugin is {0} bytes; a ustar archive holds files under 8 GiB")]
    TooLarge(u64),
    /// The compressor failed (only possible on allocation failure, since it writes to memory).
    #[error("gzip compression of the layer failed: {0}")]
    Gzip(std::io::Error),
    /// A JSON document of the image could not be serialised.
    #[error("cannot serialise the image {document}: {source}")]
    Json {
        /// Which document (manifest, config, index).
        document: &'static str,
        /// The serialiser's error.
        source: serde_json::Error,
    },
    /// The output path has no final component to name the directory (`.`, `..`, `/`).
    #[error("the output {0} must name a directory, such as target/oci")]
    OutputNotNamed(PathBuf),
    /// The output exists and is not something this tool wrote: it is left untouched.
    #[error(
        "refusing to replace {0}: it exists and is not an OCI image layout \
         (no oci-layout file); remove it or choose another directory"
    )]
    NotALayout(PathBuf),
    /// A file-system operation on the output failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done ("write", "rename", ...).
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
}

impl Error {
    /// An I/O error with what was being done and to which path.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}
