//! Accepting connections and running the server, either inside the caller's tokio runtime
//! ([`Upstream`]) or on a thread of its own ([`spawn`] / [`RunningUpstream`]) so plain
//! `#[test]`s and tests with their own runtime can both use it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::app::{App, Control};
use crate::config::{check_loopback, ConfigPatch, Settings, UpstreamConfig};
use crate::stats::StatsSnapshot;
use crate::Error;

/// How long [`Upstream::serve`] waits, after its shutdown signal, for in-flight requests
/// before closing their connections.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// A bound, not yet serving upstream (inside an existing tokio runtime).
#[derive(Debug)]
pub struct Upstream {
    app: Arc<App>,
    listener: TcpListener,
    addr: SocketAddr,
}

impl Upstream {
    /// Validates the config (loopback only) and binds the listen address.
    pub async fn bind(config: UpstreamConfig) -> Result<Self, Error> {
        config.validate()?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: config.listen,
                source,
            })?;
        Self::from_listener(&config, listener)
    }

    fn from_listener(config: &UpstreamConfig, listener: TcpListener) -> Result<Self, Error> {
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("reading the bound address", e))?;
        check_loopback(addr)?;
        Ok(Upstream {
            app: App::new(config),
            listener,
            addr,
        })
    }

    /// The bound address (with the real port when the config asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle for stats and live settings that stays valid while serving.
    pub fn control(&self) -> Control {
        Control {
            app: self.app.clone(),
        }
    }

    /// Serves until `shutdown` completes, then stops accepting and lets in-flight requests
    /// finish (for at most [`SHUTDOWN_GRACE`]).
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        self.serve_with_grace(shutdown, SHUTDOWN_GRACE).await
    }

    /// Like [`Upstream::serve`] with a chosen grace period; connections still open after
    /// it are closed when the returned future's runtime drops their tasks.
    pub async fn serve_with_grace(
        self,
        shutdown: impl Future<Output = ()>,
        grace: Duration,
    ) -> Result<(), Error> {
        let graceful = GracefulShutdown::new();
        let builder = auto::Builder::new(TokioExecutor::new());
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => {
                    let stream = match accepted {
                        Ok((stream, _peer)) => stream,
                        Err(e) => {
                            // Typically EMFILE under heavy load: back off, keep serving.
                            eprintln!("demo-upstream: accept failed: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    // Latency matters more than throughput here; failure is harmless.
                    let _ = stream.set_nodelay(true);
                    let app = self.app.clone();
                    let svc = service_fn(move |req| crate::handler::handle(app.clone(), req));
                    let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
                    let conn = graceful.watch(conn);
                    // Clients resetting connections is routine in load tests: not an error.
                    tokio::spawn(async move { let _ = conn.await; });
                }
            }
        }
        drop(self.listener);
        if !grace.is_zero() {
            let _ = tokio::time::timeout(grace, graceful.shutdown()).await;
        }
        Ok(())
    }
}

/// Starts an upstream on its own thread and tokio runtime; it stops when the returned
/// handle is dropped (or [`RunningUpstream::stop`]ped). Usable from sync and async tests.
///
/// Stopping is immediate: open connections are closed without waiting for in-flight
/// requests, so dropping the handle inside an async test never blocks for long.
pub fn spawn(config: UpstreamConfig) -> Result<RunningUpstream, Error> {
    config.validate()?;
    // Bind synchronously so the caller gets the port (or the bind error) right away,
    // without entering a runtime from a thread that may already be inside one.
    let std_listener =
        std::net::TcpListener::bind(config.listen).map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
    std_listener
        .set_nonblocking(true)
        .map_err(|e| Error::io("making the listener non-blocking", e))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("demo-upstream-worker")
        .enable_all()
        .build()
        .map_err(|e| Error::io("building the tokio runtime", e))?;
    let upstream = {
        let _guard = runtime.enter();
        let listener = TcpListener::from_std(std_listener)
            .map_err(|e| Error::io("registering the listener", e))?;
        Upstream::from_listener(&config, listener)?
    };
    let addr = upstream.local_addr();
    let control = upstream.control();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name(format!("demo-upstream-{}", addr.port()))
        .spawn(move || {
            let stop = async {
                // A dropped sender also means stop.
                let _ = stop_rx.await;
            };
            let result = runtime.block_on(upstream.serve_with_grace(stop, Duration::ZERO));
            // The runtime is dropped here, on this thread, outside any async context.
            drop(runtime);
            result
        })
        .map_err(|e| Error::io("spawning the server thread", e))?;
    Ok(RunningUpstream {
        addr,
        control,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

/// An upstream serving on its own thread; stops on drop.
#[derive(Debug)]
pub struct RunningUpstream {
    addr: SocketAddr,
    control: Control,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), Error>>>,
}

impl RunningUpstream {
    /// The loopback address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` followed by `path` (which should start with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A cloneable handle on its state.
    pub fn control(&self) -> Control {
        self.control.clone()
    }

    /// The counters (same as `GET /__demo/stats`).
    pub fn stats(&self) -> StatsSnapshot {
        self.control.stats()
    }

    /// Zeroes the counters (same as `POST /__demo/reset`).
    pub fn reset(&self) {
        self.control.reset();
    }

    /// Current live settings.
    pub fn settings(&self) -> Settings {
        self.control.settings()
    }

    /// Changes live settings (same as `POST /__demo/config`).
    pub fn update(&self, patch: &ConfigPatch) -> Result<Settings, Error> {
        self.control.update(patch)
    }

    /// Stops serving (closing open connections) and waits for the server thread.
    pub fn stop(mut self) -> Result<(), Error> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), Error> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| Error::Thread("server thread panicked".to_owned()))?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningUpstream {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            eprintln!("demo-upstream: {e}");
        }
    }
}
