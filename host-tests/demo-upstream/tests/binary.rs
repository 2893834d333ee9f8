//! The `ballast-demo-upstream` binary: prints its port, serves, refuses non-loopback
//! addresses, and exits cleanly on SIGTERM.
// Test-only crate: its helpers (outside #[test] fns) may panic on failure too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ballast-demo-upstream");

/// Waits for the child to exit, killing it (by its own handle) after `limit`.
fn wait_bounded(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("demo upstream did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn refuses_non_loopback_address() {
    let out = Command::new(BIN)
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("loopback"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn rejects_bad_failure_ratio() {
    let out = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--failure-ratio", "1.5"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("failure_ratio"));
}

#[test]
fn prints_port_serves_and_stops_on_sigterm() {
    let mut child = Command::new(BIN)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--capacity",
            "2",
            "--service-time-ms",
            "1",
            "--failure-ratio",
            "0.0",
            "--failure-status",
            "503",
            "--seed",
            "7",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr: SocketAddr = line
        .trim_end()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    assert!(addr.ip().is_loopback() && addr.port() != 0);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(common::TEST_TIMEOUT, async {
            assert_eq!(common::get(addr, "/__demo/health").await.text(), "ok\n");
            let r = common::get(addr, "/from-binary").await;
            assert_eq!(r.status, 200);
            assert_eq!(r.json()["served_by"], "demo-upstream");
            assert_eq!(common::stats(addr).await["total"], 1);
        })
        .await
        .expect("test timed out");
    });

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = wait_bounded(&mut child, Duration::from_secs(10));
    assert!(status.success(), "exit status {status:?}");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(
        rest.is_empty(),
        "only one line on stdout, got more: {rest:?}"
    );
}
