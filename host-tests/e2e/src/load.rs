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
    let start = Instant::now();
    let results = on_threads(total, threads, |i| {
        let (method, path, headers) = spec(i);
        let header_refs: Vec<(&str, &[u8])> =
            headers.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        request(addr, method, &path, &header_refs, b"")
    });
    Run {
        results,
        elapsed: start.elapsed(),
    }
}

/// Runs `work(i)` for every `i` in `0..total` on `threads` threads, each taking the next index
/// as it finishes one; returns the results in completion order.
pub fn on_threads<T: Send>(
    total: usize,
    threads: usize,
    work: impl Fn(usize) -> T + Sync,
) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(total));
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let result = work(i);
                if let Ok(mut all) = results.lock() {
                    all.push(result);
                }
            });
        }
    });
    results.into_inner().unwrap_or_default()
}
