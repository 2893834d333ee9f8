//! One error type for the whole crate, so the binary can print a single clear line and
//! tests can match on what went wrong (notably a refused non-loopback address).

use std::fmt;
use std::net::SocketAddr;

/// Everything that can go wrong while configuring, starting or stopping the upstream.
#[derive(Debug)]
pub enum Error {
    /// The listen address is not a loopback address; this server is for tests on 127.0.0.1.
    NonLoopback(SocketAddr),
    /// A setting is out of range (message says which and why).
    InvalidConfig(String),
    /// Binding the listen socket failed.
    Bind {
        /// The address we tried to bind.
        addr: SocketAddr,
        /// The underlying OS error.
        source: std::io::Error,
    },
    /// Any other I/O failure (runtime creation, accept loop, stdout).
    Io {
        /// What we were doing.
        context: &'static str,
        /// The underlying OS error.
        source: std::io::Error,
    },
    /// The server thread of a [`crate::RunningUpstream`] went away unexpectedly.
    Thread(String),
}

impl Error {
    pub(crate) fn io(context: &'static str, source: std::io::Error) -> Self {
        Error::Io { context, source }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NonLoopback(addr) => write!(
                f,
                "refusing to listen on {addr}: ballast-demo-upstream only serves loopback \
                 addresses (use 127.0.0.1 or [::1])"
            ),
            Error::InvalidConfig(msg) => write!(f, "invalid configuration: {msg}"),
            Error::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::Thread(msg) => write!(f, "demo upstream server thread: {msg}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Bind { source, .. } | Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
