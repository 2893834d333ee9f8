//! Closed-loop throughput with wrk (Debian's package), pinned to a core, parsed from its
//! report.
//!
//! Why wrk: a maintained load generator that keeps a fixed number of connections busy and
//! reports requests, errors and latency percentiles; closed loop is the right shape for "what
//! does a request cost", where the question is the proxy's work, not its behaviour under load.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

/// One wrk run's numbers.
#[derive(Debug, Clone, Copy)]
pub struct WrkRun {
    pub requests: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Responses that were not 2xx/3xx, plus socket errors.
    pub errors: u64,
}

/// Installs wrk from Debian's packages if it is missing.
pub fn ensure_installed() -> Result<(), String> {
    if Command::new("wrk").arg("--version").output().is_ok() {
        return Ok(());
    }
    eprintln!("== installing wrk (Debian package)");
    let ok = Command::new("sh")
        .args([
            "-c",
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk",
        ])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err("wrk is missing and could not be installed (apt-get install wrk)".into())
    }
}

/// Runs `taskset -c CPUS wrk -t1 -cN -dS --latency http://ADDR/PATH` (loopback only).
pub fn run(
    addr: SocketAddr,
    path: &str,
    connections: usize,
    duration: Duration,
    cpus: &str,
) -> Result<WrkRun, String> {
    if !addr.ip().is_loopback() {
        return Err(format!("{addr} is not loopback"));
    }
    let output = Command::new("timeout")
        .arg((duration.as_secs() + 20).to_string())
        .args(["taskset", "-c", cpus, "wrk", "-t1"])
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .arg("--latency")
        .arg(format!("http://{addr}{path}"))
        .output()
        .map_err(|e| format!("wrk: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    parse(&text).ok_or_else(|| {
        format!(
            "cannot read wrk's report:\n{text}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Reads wrk's text report.
fn parse(text: &str) -> Option<WrkRun> {
    let mut run = WrkRun {
        requests: 0,
        rps: 0.0,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        errors: 0,
    };
    let mut saw_requests = false;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", v] => run.p50_ms = millis(v)?,
            ["99%", v] => run.p99_ms = millis(v)?,
            [n, "requests", "in", ..] => {
                run.requests = n.parse().ok()?;
                saw_requests = true;
            }
            ["Requests/sec:", v] => run.rps = v.parse().ok()?,
            ["Non-2xx", "or", "3xx", "responses:", n] => run.errors += n.parse::<u64>().ok()?,
            ["Socket", "errors:", rest @ ..] => {
                // "connect 0, read 0, write 0, timeout 0"
                for pair in rest.chunks(2) {
                    if let [_, n] = pair {
                        run.errors += n.trim_end_matches(',').parse::<u64>().ok()?;
                    }
                }
            }
            _ => {}
        }
    }
    saw_requests.then_some(run)
}

/// "123.45us" / "1.20ms" / "2.00s" / "1.00m" → milliseconds.
fn millis(value: &str) -> Option<f64> {
    let split = value.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        "m" => number * 60_000.0,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "Running 5s test @ http://127.0.0.1:20001/api/hello
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   612.31us  201.11us   8.20ms   91.02%
    Req/Sec    13.01k   512.33    13.80k    70.00%
  Latency Distribution
     50%  580.00us
     75%  650.00us
     90%  720.00us
     99%    1.52ms
  64741 requests in 5.00s, 9.51MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  12948.10
Transfer/sec:      1.90MB
";

    #[test]
    fn reads_wrks_report() {
        let run = parse(REPORT).unwrap();
        assert_eq!(run.requests, 64741);
        assert_eq!(run.rps, 12948.10);
        assert_eq!(run.p50_ms, 0.58);
        assert_eq!(run.p99_ms, 1.52);
        assert_eq!(run.errors, 7);
        assert!(parse("connection refused").is_none());
    }
}
