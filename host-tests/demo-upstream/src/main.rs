//! `ballast-demo-upstream` binary: parses flags, binds a loopback address, prints
//! `listening on ADDR` (one line, flushed, so a test can read the port) and serves until
//! SIGINT or SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use ballast_demo_upstream::{Error, Settings, Upstream, UpstreamConfig};
use clap::Parser;

/// Loopback HTTP upstream with limited capacity, for ballast's end-to-end tests.
///
/// Per-request header overrides: x-demo-delay-ms, x-demo-status, x-demo-fail-ratio,
/// x-demo-grpc-status. Admin: GET /__demo/health, GET /__demo/stats, POST /__demo/reset,
/// GET|POST /__demo/config.
#[derive(Debug, Parser)]
#[command(name = "ballast-demo-upstream", version)]
struct Cli {
    /// Loopback address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// Requests served at once; the rest queue FIFO. 0 = unlimited.
    #[arg(long, default_value_t = 0)]
    capacity: usize,
    /// Requests allowed to wait for a slot before new ones get 503 (default unlimited).
    #[arg(long)]
    queue_limit: Option<usize>,
    /// Service time per request in ms (time each request holds its slot).
    #[arg(long, default_value_t = 0)]
    service_time_ms: u64,
    /// Extra uniform random service time in [0, N] ms (seeded).
    #[arg(long, default_value_t = 0)]
    service_jitter_ms: u64,
    /// Injected latency in ms added to every request, while holding the slot.
    #[arg(long, default_value_t = 0)]
    extra_latency_ms: u64,
    /// Fraction of requests answered with --failure-status (0.0..=1.0).
    #[arg(long, default_value_t = 0.0)]
    failure_ratio: f64,
    /// Status of injected failures.
    #[arg(long, default_value_t = 503)]
    failure_status: u16,
    /// Seed of the failure and jitter RNGs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

impl Cli {
    fn into_config(self) -> UpstreamConfig {
        UpstreamConfig {
            listen: self.listen,
            seed: self.seed,
            settings: Settings {
                capacity: self.capacity,
                queue_limit: self.queue_limit,
                service_time_ms: self.service_time_ms,
                service_jitter_ms: self.service_jitter_ms,
                extra_latency_ms: self.extra_latency_ms,
                failure_ratio: self.failure_ratio,
                failure_status: self.failure_status,
            },
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = Cli::parse().into_config();
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ballast-demo-upstream: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: UpstreamConfig) -> Result<(), Error> {
    let upstream = Upstream::bind(config).await?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {}", upstream.local_addr())
        .and_then(|()| stdout.flush())
        .map_err(|e| Error::Io {
            context: "writing to stdout",
            source: e,
        })?;
    drop(stdout);
    let stop = stop_signal()?;
    upstream.serve(stop).await
}

/// Completes on SIGINT or SIGTERM.
#[cfg(unix)]
fn stop_signal() -> Result<impl std::future::Future<Output = ()>, Error> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| Error::Io {
        context: "installing the SIGTERM handler",
        source: e,
    })?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| Error::Io {
        context: "installing the SIGINT handler",
        source: e,
    })?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// Completes on Ctrl-C.
#[cfg(not(unix))]
fn stop_signal() -> Result<impl std::future::Future<Output = ()>, Error> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
