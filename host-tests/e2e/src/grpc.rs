//! A real gRPC client and server (grpcio, in Python) for the end-to-end tests.
//!
//! Why Python and not a Rust gRPC stack: what a gRPC caller sees of a spent deadline (which
//! status, which message, when) is decided by a gRPC library's own HTTP/2 handling and timers,
//! so the test needs a real one; grpcio installs as a binary wheel in seconds into the venv that
//! already holds Envoy (`make deps`), and a generic unary method needs no protoc and no new Rust
//! dependency. The scripts are `host-tests/e2e/grpc/{client,server}.py`.
//!
//! Bounded: the client makes a fixed number of calls, each with its timeout, and is killed if it
//! outlives [`CLIENT_LIMIT`]; the server stops when its stdin closes (its handle dropped) or
//! after a minute by itself, and is killed if it does not.

use crate::paths::{repo_file, workspace_root};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long one client run may take before it is killed.
pub const CLIENT_LIMIT: Duration = Duration::from_secs(30);
/// How long the server may take to report its port.
const SERVER_READY: Duration = Duration::from_secs(15);
/// The server stops by itself after this many seconds even if its stdin stays open.
const SERVER_MAX_SECONDS: u64 = 60;

/// The Python with grpcio: `$BALLAST_PYTHON`, else `.venv/bin/python3` (what `make deps`
/// installs). An error names `make deps` when it is missing or lacks grpcio: a gRPC test that
/// skipped silently would prove nothing.
pub fn python() -> Result<PathBuf, String> {
    let path = std::env::var_os("BALLAST_PYTHON")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/python3"));
    if !path.is_file() {
        return Err(format!(
            "Python not found at {}: run `make deps` first (it installs grpcio into .venv)",
            path.display()
        ));
    }
    let probe = Command::new(&path)
        .args(["-c", "import grpc; print(grpc.__version__)"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
    if !probe.status.success() {
        return Err(format!(
            "{} cannot import grpc ({}): run `make deps` first (it installs grpcio into .venv)",
            path.display(),
            String::from_utf8_lossy(&probe.stderr).trim()
        ));
    }
    Ok(path)
}

/// What the client saw of one call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallResult {
    /// The status code's name, e.g. `DEADLINE_EXCEEDED`.
    pub code: String,
    /// Its number, e.g. 4.
    pub code_number: u64,
    /// The status message (grpc-message).
    pub details: String,
    /// From sending the call to its end, in milliseconds.
    pub elapsed_ms: f64,
    /// Its trailing metadata (text values; a trailers-only reply's headers are here too).
    pub trailing: Vec<(String, String)>,
}

impl CallResult {
    /// A trailing metadata value.
    pub fn trailer(&self, key: &str) -> Option<&str> {
        self.trailing
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Makes `calls` unary calls to `/test.Echo/Call` at `target`, one after the other, each with
/// `timeout_ms` (sent as `grpc-timeout`) and `metadata`.
pub fn call(
    target: SocketAddr,
    calls: usize,
    timeout_ms: u64,
    metadata: &[(&str, &str)],
) -> Result<Vec<CallResult>, String> {
    client(target, calls, timeout_ms, metadata, None)
}

/// Like [`call`] without other metadata, and each call carries `key` = its own deadline, Unix
/// epoch ms (send time plus `timeout_ms`): a server further down a chain can tell whether it
/// started the call after its caller had given up.
pub fn call_marking_deadline(
    target: SocketAddr,
    calls: usize,
    timeout_ms: u64,
    key: &str,
) -> Result<Vec<CallResult>, String> {
    client(target, calls, timeout_ms, &[], Some(key))
}

fn client(
    target: SocketAddr,
    calls: usize,
    timeout_ms: u64,
    metadata: &[(&str, &str)],
    deadline_key: Option<&str>,
) -> Result<Vec<CallResult>, String> {
    let mut command = Command::new(python()?);
    command
        .arg(repo_file("host-tests/e2e/grpc/client.py"))
        .arg(target.to_string())
        .args(["--calls", &calls.to_string()])
        .args(["--timeout-ms", &timeout_ms.to_string()]);
    for (key, value) in metadata {
        command.args(["--metadata", &format!("{key}={value}")]);
    }
    if let Some(key) = deadline_key {
        command.args(["--deadline-metadata", key]);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the gRPC client: {e}"))?;
    let stdout = read_all(child.stdout.take());
    let stderr = read_all(child.stderr.take());
    let status =
        wait_within(&mut child, CLIENT_LIMIT).map_err(|e| format!("the gRPC client: {e}"))?;
    let (stdout, stderr) = (joined(stdout), joined(stderr));
    if !status.success() {
        return Err(format!(
            "the gRPC client failed ({status}):\n{stdout}\n{stderr}"
        ));
    }
    let results = stdout
        .lines()
        .map(parse_call)
        .collect::<Result<Vec<_>, _>>()?;
    if results.len() != calls {
        return Err(format!(
            "the gRPC client reported {} calls of {calls}:\n{stdout}\n{stderr}",
            results.len()
        ));
    }
    Ok(results)
}

fn parse_call(line: &str) -> Result<CallResult, String> {
    let value: Value =
        serde_json::from_str(line).map_err(|e| format!("client line {line:?}: {e}"))?;
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_string);
    let bad = || format!("client line without code/details/elapsed_ms: {line}");
    Ok(CallResult {
        code: text("code").ok_or_else(bad)?,
        code_number: value
            .get("code_number")
            .and_then(Value::as_u64)
            .ok_or_else(bad)?,
        details: text("details").ok_or_else(bad)?,
        elapsed_ms: value
            .get("elapsed_ms")
            .and_then(Value::as_f64)
            .ok_or_else(bad)?,
        trailing: value
            .get("trailing")
            .and_then(Value::as_object)
            .map(|map| {
                map.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// One call that reached the server.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerCall {
    /// 1, 2, ... in arrival order.
    pub call: u64,
    /// Arrival, Unix epoch milliseconds.
    pub arrival_ms: f64,
    /// The metadata it carried (text values only; grpcio keeps `grpc-timeout` to itself).
    pub metadata: Vec<(String, String)>,
    /// The deadline left at arrival as the server's gRPC library saw it (from `grpc-timeout`).
    pub time_remaining_ms: Option<f64>,
    /// How its handler ended: `finished`, `cancelled`, `relayed CODE` (an application hop), or
    /// `None` while it still runs.
    pub outcome: Option<String>,
    /// When it ended, milliseconds after arrival.
    pub ended_after_ms: Option<f64>,
}

impl ServerCall {
    /// A metadata value.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A running gRPC server that sleeps `sleep_ms` per call; stopped when dropped.
pub struct GrpcServer {
    child: Child,
    stdin: Option<ChildStdin>,
    port: u16,
    lines: Receiver<String>,
    calls: Vec<ServerCall>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl GrpcServer {
    /// Starts the server on a port the system chooses and waits until it listens.
    pub fn start(sleep_ms: u64) -> Result<GrpcServer, String> {
        GrpcServer::launch(sleep_ms, &[])
    }

    /// An application between two proxies (`server.py --forward`): each call works `sleep_ms`
    /// whether or not its caller still waits, then goes to `next` with its metadata copied, no
    /// deadline of its own and never cancelled; what comes back is the answer.
    pub fn forwarding(sleep_ms: u64, next: SocketAddr) -> Result<GrpcServer, String> {
        if !next.ip().is_loopback() {
            return Err(format!("{next} is not loopback"));
        }
        GrpcServer::launch(sleep_ms, &["--forward".to_string(), next.to_string()])
    }

    fn launch(sleep_ms: u64, extra: &[String]) -> Result<GrpcServer, String> {
        let mut child = Command::new(python()?)
            .arg(repo_file("host-tests/e2e/grpc/server.py"))
            .args(["--port", "0", "--sleep-ms", &sleep_ms.to_string()])
            .args(["--max-seconds", &SERVER_MAX_SECONDS.to_string()])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the gRPC server: {e}"))?;
        let stdin = child.stdin.take();
        let (sender, lines) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let stderr = read_all(child.stderr.take());
        let mut server = GrpcServer {
            child,
            stdin,
            port: 0,
            lines,
            calls: Vec::new(),
            stderr,
        };
        let deadline = Instant::now() + SERVER_READY;
        while server.port == 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match server.lines.recv_timeout(left) {
                Ok(line) => {
                    let value: Value = serde_json::from_str(&line)
                        .map_err(|e| format!("server line {line:?}: {e}"))?;
                    if value.get("event").and_then(Value::as_str) == Some("listening") {
                        server.port = value
                            .get("port")
                            .and_then(Value::as_u64)
                            .and_then(|p| u16::try_from(p).ok())
                            .ok_or_else(|| format!("server line without a port: {line}"))?;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "the gRPC server did not listen in {SERVER_READY:?}"
                    ))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = server.child.wait();
                    let stderr = joined(server.stderr.take());
                    return Err(format!("the gRPC server exited during start-up:\n{stderr}"));
                }
            }
        }
        Ok(server)
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every call that reached the server so far, with what is known of its end. Waits `settle`
    /// first, for reports still on their way.
    pub fn calls(&mut self, settle: Duration) -> Result<Vec<ServerCall>, String> {
        std::thread::sleep(settle);
        while let Ok(line) = self.lines.try_recv() {
            self.record(&line)?;
        }
        Ok(self.calls.clone())
    }

    fn record(&mut self, line: &str) -> Result<(), String> {
        let value: Value =
            serde_json::from_str(line).map_err(|e| format!("server line {line:?}: {e}"))?;
        let number = |key: &str| value.get(key).and_then(Value::as_f64);
        let call = value.get("call").and_then(Value::as_u64).unwrap_or(0);
        match value.get("event").and_then(Value::as_str) {
            Some("call") => self.calls.push(ServerCall {
                call,
                arrival_ms: number("arrival_ms").unwrap_or(0.0),
                metadata: value
                    .get("metadata")
                    .and_then(Value::as_object)
                    .map(|map| {
                        map.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                            .collect()
                    })
                    .unwrap_or_default(),
                time_remaining_ms: number("time_remaining_ms"),
                outcome: None,
                ended_after_ms: None,
            }),
            Some("end") => {
                if let Some(known) = self.calls.iter_mut().find(|c| c.call == call) {
                    known.outcome = value
                        .get("outcome")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    known.ended_after_ms = number("after_ms");
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        drop(self.stdin.take()); // the server's stdin closes: it stops by itself
        let _ = wait_within(&mut self.child, Duration::from_secs(5)); // kills it after that
    }
}

/// Reads a pipe to its end on a thread.
fn read_all<R: Read + Send + 'static>(pipe: Option<R>) -> Option<std::thread::JoinHandle<String>> {
    pipe.map(|mut pipe| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    })
}

fn joined(reader: Option<std::thread::JoinHandle<String>>) -> String {
    reader
        .and_then(|handle| handle.join().ok())
        .unwrap_or_default()
}

/// Waits for `child` at most `limit`; kills it after that and says so.
fn wait_within(child: &mut Child, limit: Duration) -> Result<std::process::ExitStatus, String> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("killed after {limit:?}: it did not stop by itself"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_client_line() {
        let line = r#"{"call": 0, "code": "DEADLINE_EXCEEDED", "code_number": 4, "details": "x", "elapsed_ms": 150.5}"#;
        assert_eq!(
            parse_call(line),
            Ok(CallResult {
                code: "DEADLINE_EXCEEDED".into(),
                code_number: 4,
                details: "x".into(),
                elapsed_ms: 150.5,
                trailing: Vec::new(),
            })
        );
        let marked = r#"{"call": 1, "code": "UNAVAILABLE", "code_number": 14, "details": "",
            "elapsed_ms": 3.0, "trailing": {"x-ballast-final": "upstream", "n": 3}}"#;
        let marked = parse_call(marked).unwrap();
        assert_eq!(marked.trailer("x-ballast-final"), Some("upstream"));
        assert_eq!(marked.trailer("n"), None, "text values only");
        assert!(parse_call(r#"{"error": "cannot connect"}"#).is_err());
    }
}
