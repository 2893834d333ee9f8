//! Open-loop load at a fixed rate for a fixed time, to 127.0.0.1 only, recording each request's
//! start, latency and outcome.
//!
//! Why open loop: a limiter is judged by what happens to the load it is *offered*. A closed
//! loop (each client waits for its answer) offers less as latency grows and far more as fast
//! rejections come back, so "3× capacity" would mean nothing. Request `i` is due at
//! `i / rate`; a pool of threads sends each when due. If every thread is busy a request starts
//! late, which [`PacedRun::late`] counts so a test can tell an overloaded client from a slow
//! proxy. Each request gives up after [`CLIENT_TIMEOUT`] (a client error), so a proxy that lets
//! latency grow without bound cannot tie up the pool and lower the load it is offered.

use crate::client::{request_within, Response};
use crate::load::on_threads;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a client waits for a response.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// One request's outcome.
#[derive(Debug)]
pub struct Outcome {
    /// When it was sent, from the start of the run.
    pub started: Duration,
    /// Time to the whole response.
    pub latency: Duration,
    /// Status, or the client error.
    pub result: Result<Response, String>,
    /// Which kind of request it was (the index [`run_mixed`]'s caller gave it; 0 for [`run`]).
    pub kind: usize,
}

impl Outcome {
    /// The response status, if any.
    pub fn status(&self) -> Option<u16> {
        self.result.as_ref().ok().map(|r| r.status)
    }
}

/// Results of a paced run.
#[derive(Debug)]
pub struct PacedRun {
    /// Every request, in completion order.
    pub outcomes: Vec<Outcome>,
    /// Requests that started more than 50 ms after they were due (the client fell behind).
    pub late: usize,
}

/// Summary of the requests started within a time range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Requests sent.
    pub sent: usize,
    /// Answered 200.
    pub ok: usize,
    /// Answered 503.
    pub rejected: usize,
    /// Client errors and other statuses.
    pub other: usize,
    /// 200s per second of the range.
    pub goodput_rps: f64,
    /// p50 / p99 latency of the 200s, ms.
    pub p50_ms: f64,
    /// p99 latency of the 200s, ms.
    pub p99_ms: f64,
    /// p99 latency of the 503s, ms (how fast a rejection comes back).
    pub rejected_p99_ms: f64,
}

impl PacedRun {
    /// Summarises requests started in `[from, to)`.
    pub fn summary(&self, from: Duration, to: Duration) -> Summary {
        self.summary_where(from, to, |_| true)
    }

    /// Summarises the requests of `kind` started in `[from, to)`.
    pub fn summary_of(&self, kind: usize, from: Duration, to: Duration) -> Summary {
        self.summary_where(from, to, |o| o.kind == kind)
    }

    fn summary_where(
        &self,
        from: Duration,
        to: Duration,
        keep: impl Fn(&Outcome) -> bool,
    ) -> Summary {
        let in_range: Vec<&Outcome> = self
            .outcomes
            .iter()
            .filter(|o| o.started >= from && o.started < to && keep(o))
            .collect();
        let mut ok_ms: Vec<f64> = in_range
            .iter()
            .filter(|o| o.status() == Some(200))
            .map(|o| o.latency.as_secs_f64() * 1000.0)
            .collect();
        ok_ms.sort_by(f64::total_cmp);
        let mut rejected_ms: Vec<f64> = in_range
            .iter()
            .filter(|o| o.status() == Some(503))
            .map(|o| o.latency.as_secs_f64() * 1000.0)
            .collect();
        rejected_ms.sort_by(f64::total_cmp);
        let rejected = rejected_ms.len();
        let seconds = to.saturating_sub(from).as_secs_f64().max(1e-9);
        Summary {
            sent: in_range.len(),
            ok: ok_ms.len(),
            rejected,
            other: in_range.len() - ok_ms.len() - rejected,
            goodput_rps: ok_ms.len() as f64 / seconds,
            p50_ms: quantile(&ok_ms, 0.50),
            p99_ms: quantile(&ok_ms, 0.99),
            rejected_p99_ms: quantile(&rejected_ms, 0.99),
        }
    }
}

/// The `q` quantile of sorted values (nearest rank); NaN when empty.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted.get(rank - 1).copied().unwrap_or(f64::NAN)
}

/// Sends `GET path` at `rate` requests per second for `duration` from `threads` threads.
pub fn run(
    addr: SocketAddr,
    path: &str,
    rate: f64,
    duration: Duration,
    threads: usize,
) -> PacedRun {
    run_mixed(addr, path, rate, duration, threads, |_| (0, Vec::new()))
}

/// [`run`], where request `i` is of the kind `kind_of(i)` names and carries its headers.
pub fn run_mixed(
    addr: SocketAddr,
    path: &str,
    rate: f64,
    duration: Duration,
    threads: usize,
    kind_of: impl Fn(usize) -> (usize, Vec<(String, String)>) + Sync,
) -> PacedRun {
    assert!(addr.ip().is_loopback(), "load tests target loopback only");
    assert!(rate > 0.0 && rate <= 5_000.0, "bounded rate");
    assert!(duration <= Duration::from_secs(60), "bounded duration");
    let total = (rate * duration.as_secs_f64()).round() as usize;
    let late = AtomicUsize::new(0);
    let start = Instant::now();
    let outcomes = on_threads(total, threads, |i| {
        let due = Duration::from_secs_f64(i as f64 / rate);
        let now = start.elapsed();
        if let Some(wait) = due.checked_sub(now) {
            std::thread::sleep(wait);
        } else if now - due > Duration::from_millis(50) {
            late.fetch_add(1, Ordering::Relaxed);
        }
        let (kind, headers) = kind_of(i);
        let headers: Vec<(&str, &[u8])> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .collect();
        let started = start.elapsed();
        let result = request_within(addr, "GET", path, &headers, b"", CLIENT_TIMEOUT);
        Outcome {
            started,
            latency: start.elapsed() - started,
            result,
            kind,
        }
    });
    PacedRun {
        outcomes,
        late: late.into_inner(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&values, 0.99), 99.0);
        assert_eq!(quantile(&values, 0.5), 50.0);
        assert_eq!(quantile(&[7.0], 0.99), 7.0);
        assert!(quantile(&[], 0.5).is_nan());
    }
}
