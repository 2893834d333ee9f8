//! The simulator end to end: the shipped example scenarios run against the real plugin .wasm
//! and meet their expectations; the same seed gives byte-identical JSON; the CLI's exit status
//! follows the expectations; bad scenarios are refused with the JSON path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use ballast_sim::{simulate, Options};
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{root, wasm};

fn scenario(name: &str) -> PathBuf {
    root().join("examples/scenarios").join(name)
}

fn sim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ballast-sim"))
        .args(args)
        .env("BALLAST_WASM", wasm())
        .output()
        .unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ballast-sim-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn example_scenarios_meet_their_expectations() {
    let options = Options {
        wasm: wasm(),
        seed: None,
        progress: false,
    };
    let mut ran = 0;
    for entry in std::fs::read_dir(root().join("examples/scenarios")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let report =
            simulate(&path, &options).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            report.passed(),
            "{}: {:#?}",
            path.display(),
            report.expectations
        );
        assert!(
            !report.expectations.is_empty(),
            "{}: examples carry expectations",
            path.display()
        );
        assert_eq!(
            report.total.attempts, report.streams,
            "one proxy stream per attempt"
        );
        assert!(report.total.offered > 1000, "{}", path.display());
        ran += 1;
    }
    assert!(ran >= 2, "at least two example scenarios ship");
}

#[test]
fn ramp_and_outage_shows_what_it_claims() {
    let options = Options {
        wasm: wasm(),
        seed: None,
        progress: false,
    };
    let report = simulate(&scenario("ramp-and-outage.json"), &options).unwrap();
    let api = &report.classes["api"];
    // The ramp: mean rate 500/s over 0–10 s, then 800/s → about 13,000 first attempts.
    assert!(
        (12_000..14_500).contains(&api.offered),
        "offered {}",
        api.offered
    );
    // The outage refuses requests and clients retry them: amplification above 1.
    assert!(api.failures["upstream_outage"] > 1000, "{:?}", api.failures);
    assert!(
        report.upstream.amplification > 1.1,
        "{}",
        report.upstream.amplification
    );
    // Every attempt went through the plugin, which counted it for its policy set.
    assert_eq!(
        report.plugin_metrics["ballast_requests_total.policy_set=.=api;.;"],
        report.total.attempts
    );
    // The latency shift doubles service time for 5 s: p99 in those buckets rises.
    let p99 = &report.series.p99_ms["api"];
    let before: f64 = p99[3..7].iter().sum::<f64>() / 4.0;
    let during: f64 = p99[12..16].iter().sum::<f64>() / 4.0;
    assert!(
        during > 1.5 * before,
        "p99 before {before} ms, during the shift {during} ms"
    );
}

#[test]
fn same_seed_gives_identical_json_and_another_seed_differs() {
    let dir = scratch("determinism");
    let path = scenario("ramp-and-outage.json");
    let path = path.to_str().unwrap();
    let out = |file: &str, seed: &str| {
        let json = dir.join(file);
        let output = sim(&[
            "run",
            path,
            "--seed",
            seed,
            "--quiet",
            "--json",
            json.to_str().unwrap(),
        ]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::read(json).unwrap()
    };
    let first = out("a.json", "11");
    let second = out("b.json", "11");
    let other = out("c.json", "12");
    assert!(first == second, "same seed, different bytes");
    assert!(first != other, "a different seed should change the run");
    let parsed: serde_json::Value = serde_json::from_slice(&first).unwrap();
    assert_eq!(parsed["seed"], 11);
}

#[test]
fn cli_reports_tables_plots_and_exit_codes() {
    let dir = scratch("cli");
    let plots = dir.join("plots");
    let path = scenario("ramp-and-outage.json");
    let output = sim(&[
        "run",
        path.to_str().unwrap(),
        "--plots",
        plots.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("class") && stdout.contains("goodput/s") && stdout.contains("p99 ms"));
    assert!(stdout.contains("upstream_outage"), "{stdout}");
    for file in ["throughput.svg", "latency.svg", "upstream.svg"] {
        let svg = std::fs::read_to_string(plots.join(file)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("<polyline"),
            "{file}"
        );
    }

    // An expectation that cannot hold makes the run exit 1 and name it.
    let strict = std::fs::read_to_string(&path).unwrap().replace(
        "\"success_ratio_min\": 0.85",
        "\"success_ratio_min\": 0.9999",
    );
    let strict_path = scenario_copy(&dir, "strict.json", &strict);
    let output = sim(&["run", strict_path.to_str().unwrap(), "--quiet"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout)
        .contains("FAIL classes.api.success_ratio >= 0.9999"));

    // A malformed scenario exits 2 with the JSON path of the mistake.
    let bad = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"backoff\"", "\"backof\"");
    let bad_path = scenario_copy(&dir, "bad.json", &bad);
    let output = sim(&["run", bad_path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("classes[0].retries.backof: unknown field `backof`"),
        "{stderr}"
    );
}

/// Writes a scenario next to the examples' config so relative paths still resolve.
fn scenario_copy(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn plugin_rejecting_its_config_is_an_error() {
    let dir = scratch("badconfig");
    let text = std::fs::read_to_string(scenario("ramp-and-outage.json"))
        .unwrap()
        .replace(
            "\"default_policy_set\": \"api\"",
            "\"default_policy_set\": \"nope\"",
        );
    let path = scenario_copy(&dir, "s.json", &text);
    let options = Options {
        wasm: wasm(),
        seed: None,
        progress: false,
    };
    let err = match simulate(&path, &options) {
        Ok(_) => panic!("ran with an invalid plugin configuration"),
        Err(err) => err,
    };
    assert!(
        err.contains("default_policy_set: unknown policy set `nope`"),
        "{err}"
    );
}
