//! Bounded concurrent load for end-to-end tests: a fixed number of requests over a fixed number
//! of client threads, to 127.0.0.1 only, each request with the client's own timeout.

use crate::client::{request, Response};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One request to send: method, path, headers.
pub type Spec = (&'static str, String, Vec<(&'static str, Vec<u8>)>);

/// Results of a load run.
#[derive(Debug)]
pub struct Run {
    /// Per request, in completion order: status or the client error.
    pub results: Vec<Result<Response, String>>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Run {
    /// Requests answered with `status`.
    pub fn count_status(&self, status: u16) -> usize {
        self.results
            .iter()
            .filter(|r| r.as_ref().is_ok_and(|r| r.status == status))
            .count()
    }

    /// Requests that failed at the client (connection errors, timeouts).
    pub fn client_errors(&self) -> usize {
        self.results.iter().filter(|r| r.is_err()).count()
    }
}

/// Sends `total` requests built by `spec(i)` from `threads` threads.
pub fn run(
    addr: SocketAddr,
    total: usize,
    threads: usize,
    spec: impl Fn(usize) -> Spec + Sync,
) -> Run {
    assert!(addr.ip().is_loopback(), "load tests target loopback only");
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(total));
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let (method, path, headers) = spec(i);
                let header_refs: Vec<(&str, &[u8])> =
                    headers.iter().map(|(k, v)| (*k, v.as_slice())).collect();
                let result = request(addr, method, &path, &header_refs, b"");
                if let Ok(mut all) = results.lock() {
                    all.push(result);
                }
            });
        }
    });
    Run {
        results: results.into_inner().unwrap_or_default(),
        elapsed: start.elapsed(),
    }
}
