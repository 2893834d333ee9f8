//! The library's error type.
//!
//! Every failure is a value, never a panic: a test gets a message that says what went wrong
//! and, for a trap inside the plugin, the trap text plus the plugin's last log lines (the
//! panic message of a Rust plugin usually reaches the host only through its logs).

use std::fmt;

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The .wasm file could not be read or compiled.
    Load,
    /// The module could not be instantiated (e.g. it imports a function the host lacks).
    Instantiate,
    /// The plugin trapped (panic, unreachable, out-of-bounds access...).
    Trap,
    /// The worker VM failed earlier (a trap) and can no longer be used, as in Envoy.
    VmFailed,
    /// The caller used the API wrongly (unknown worker, stream already finished...).
    Usage,
}

/// An error of the mock host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, message)
    }

    /// The kind of failure.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The full message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

impl std::error::Error for Error {}

/// Result of the mock host.
pub type Result<T> = std::result::Result<T, Error>;
