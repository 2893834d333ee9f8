//! Open-loop load at a fixed rate with oha (crates.io), read from its JSON report.
//!
//! Why oha: an overload benchmark must offer the load it claims whatever the proxy does, so
//! requests are sent on a schedule, not when an answer frees a connection (a closed loop
//! offers less as latency grows: coordinated omission). oha sends at `-q` per second on
//! enough connections, and with `--latency-correction` measures each latency from the moment
//! the request was due, so a request that waited for a free connection is not flattered.
//! Each load is `rate × duration` requests exactly: those still out when the duration ends
//! are waited for.
//! `--stats-success-breakdown` gives the latency of the 2xx answers alone: the admitted work.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The version `make bench` installs (`cargo install oha --locked`).
pub const VERSION: &str = "1.16.0";

/// One oha run's result.
#[derive(Debug, Clone, Default)]
pub struct OhaRun {
    /// Requests that got an answer or an error (timeouts included).
    pub requests: u64,
    /// Answers with a 2xx status.
    pub ok: u64,
    /// Answers by status.
    pub statuses: Vec<(u16, u64)>,
    /// Client-side errors (timeouts, refused connections).
    pub errors: u64,
    /// p99 latency of the 2xx answers, ms (NaN when none).
    pub ok_p99_ms: f64,
    /// p50 latency of the 2xx answers, ms.
    pub ok_p50_ms: f64,
}

/// oha in cargo's bin directory.
fn cargo_bin() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|p| p.join("bin/oha"))
}

/// oha [`VERSION`], on PATH or in cargo's bin directory.
fn find() -> Option<String> {
    let on_path = Some("oha".to_string());
    let in_cargo = cargo_bin().map(|p| p.display().to_string());
    [on_path, in_cargo].into_iter().flatten().find(|candidate| {
        Command::new(candidate)
            .arg("--version")
            .output()
            .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(VERSION))
    })
}

/// Finds oha, or installs it from crates.io when it is missing.
pub fn ensure_installed() -> Result<String, String> {
    if let Some(oha) = find() {
        return Ok(oha);
    }
    eprintln!("== installing oha {VERSION} from crates.io (about 8 minutes on 2 cores, once)");
    let installed = Command::new("cargo")
        .args(["install", "oha", "--locked", "--version", VERSION])
        .status()
        .is_ok_and(|s| s.success());
    match find() {
        Some(oha) if installed => Ok(oha),
        _ => Err(format!(
            "oha {VERSION} is missing and `cargo install oha` failed"
        )),
    }
}

/// What to send.
pub struct Load<'a> {
    pub addr: SocketAddr,
    pub path: &'a str,
    pub rate: f64,
    pub duration: Duration,
    pub headers: Vec<(String, String)>,
    /// The client gives up on a request after this long (counted as an error).
    pub timeout: Duration,
}

/// A started oha process; [`Running::wait`] reads its report.
pub struct Running {
    child: Child,
}

/// Starts oha against `load` (loopback only); several can run at once.
pub fn start(oha: &str, load: &Load<'_>) -> Result<Running, String> {
    if !load.addr.ip().is_loopback() {
        return Err(format!("{} is not loopback", load.addr));
    }
    if !(load.rate > 0.0 && load.rate <= 20_000.0) || load.duration > Duration::from_secs(120) {
        return Err("load out of bounds (rate 0..20,000/s, at most 120 s)".into());
    }
    // Enough connections for every request that may be outstanding at once: the rate times
    // the longest a request can take, with room to spare.
    let connections = ((load.rate * load.timeout.as_secs_f64() * 1.25).ceil() as usize).max(16);
    let mut command = Command::new("timeout");
    command
        .arg((load.duration.as_secs() + load.timeout.as_secs() + 30).to_string())
        .arg(oha)
        .args([
            "--no-tui",
            "--output-format",
            "json",
            "--latency-correction",
        ])
        .arg("--stats-success-breakdown")
        // Requests still out when the duration ends are waited for (up to the timeout), not
        // counted as aborted: every request sent is answered or times out.
        .arg("--wait-ongoing-requests-after-deadline")
        .args(["-q", &format!("{:.3}", load.rate)])
        .args(["-z", &format!("{}ms", load.duration.as_millis())])
        .args(["-c", &connections.to_string()])
        .args(["-t", &format!("{}ms", load.timeout.as_millis())]);
    for (name, value) in &load.headers {
        command.args(["-H", &format!("{name}: {value}")]);
    }
    command.arg(format!("http://{}{}", load.addr, load.path));
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("oha: {e}"))?;
    Ok(Running { child })
}

impl Running {
    /// Waits for the run to end and reads its report.
    pub fn wait(self) -> Result<OhaRun, String> {
        let output = self
            .child
            .wait_with_output()
            .map_err(|e| format!("oha: {e}"))?;
        let text = String::from_utf8_lossy(&output.stdout);
        parse(&text).ok_or_else(|| {
            format!(
                "cannot read oha's report ({}):\n{text}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )
        })
    }
}

/// Reads oha's JSON report (`--output-format json --stats-success-breakdown`).
pub fn parse(text: &str) -> Option<OhaRun> {
    let report: serde_json::Value = serde_json::from_str(text).ok()?;
    let mut statuses: Vec<(u16, u64)> = report
        .get("statusCodeDistribution")?
        .as_object()?
        .iter()
        .filter_map(|(code, n)| Some((code.parse().ok()?, n.as_u64()?)))
        .collect();
    statuses.sort_unstable();
    let errors: u64 = report
        .get("errorDistribution")
        .and_then(|e| e.as_object())
        .map_or(0, |e| {
            e.values().filter_map(serde_json::Value::as_u64).sum()
        });
    let ok = statuses
        .iter()
        .filter(|(code, _)| (200..300).contains(code))
        .map(|(_, n)| n)
        .sum();
    let answered: u64 = statuses.iter().map(|(_, n)| n).sum();
    let percentile = |key: &str| -> f64 {
        report
            .get("latencyPercentilesSuccessful")
            .and_then(|p| p.get(key))
            .and_then(serde_json::Value::as_f64)
            .map_or(f64::NAN, |seconds| seconds * 1000.0)
    };
    Some(OhaRun {
        requests: answered + errors,
        ok,
        statuses,
        errors,
        ok_p99_ms: percentile("p99"),
        ok_p50_ms: percentile("p50"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ohas_report() {
        let text = r#"{"summary": {"successRate": 0.9},
            "latencyPercentilesSuccessful": {"p50": 0.055, "p99": 0.110},
            "statusCodeDistribution": {"200": 90, "503": 8},
            "errorDistribution": {"timeout": 2}}"#;
        let run = parse(text).unwrap();
        assert_eq!(run.requests, 100);
        assert_eq!(run.ok, 90);
        assert_eq!(run.errors, 2);
        assert_eq!(run.statuses, vec![(200, 90), (503, 8)]);
        assert!((run.ok_p99_ms - 110.0).abs() < 1e-9);
        assert!(parse("not json").is_none());
    }
}
