//! Section 2: what each proxy makes of overload, side by side on the same upstream and load.
//!
//! The demo upstream serves C = 10 requests at a time, 50–60 ms each (≈ 182 req/s), and
//! queues the rest without bound, as a service with no protection of its own does. Each proxy
//! starts cold (Envoy, 2 workers) and gets 1×, 2×, 3× and 5× C for a while, open loop, in a
//! priority mix (10 % critical, 40 % normal, 50 % sheddable in `x-priority`, so that critical
//! work alone stays within C even at 5×). A client gives up after 2 s. What counts: goodput
//! (2xx answers per second), the success of each class, and the p99 latency of the admitted
//! (2xx) requests. Only ballast reads the priority; the natives treat every request alike.

use crate::oha::{self, Load, OhaRun};
use crate::report::{write_json, Table};
use crate::svg::{self, Line};
use ballast_demo_upstream::RunningUpstream;
use ballast_e2e::{Envoy, EnvoyConfig};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

const CAPACITY: usize = 10;
const SERVICE_MS: u64 = 50;
const JITTER_MS: u64 = 10;
/// C: what the upstream serves per second with every slot busy.
const C: f64 = CAPACITY as f64 * 1000.0 / (SERVICE_MS as f64 + JITTER_MS as f64 / 2.0);
const LOADS: [f64; 4] = [1.0, 2.0, 3.0, 5.0];
const CLASSES: [(&str, f64); 3] = [("critical", 0.1), ("normal", 0.4), ("sheddable", 0.5)];
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
const PATH: &str = "/api/items";

const BALLAST_PLUGIN: &str = r#"{"priority": {"classes": ["critical", "normal", "sheddable"],
    "default": "normal", "header": "x-priority"},
    "policy_sets": {"api": {"concurrency": {}, "shedding": {}}}, "default_policy_set": "api"}"#;

const PROXIES: [&str; 4] = [
    "no protection",
    "native adaptive_concurrency",
    "native admission_control",
    "ballast",
];

fn envoy_config(proxy: &str) -> Result<EnvoyConfig, String> {
    Ok(match proxy {
        "native adaptive_concurrency" => {
            EnvoyConfig::from_file("envoy-config/native-adaptive-concurrency.yaml")?
        }
        "native admission_control" => {
            EnvoyConfig::from_file("envoy-config/native-admission-control.yaml")?
        }
        "ballast" => EnvoyConfig::from_file("envoy-config/envoy.yaml")?.plugin_json(BALLAST_PLUGIN),
        _ => EnvoyConfig::from_file("envoy-config/envoy.yaml")?.without_plugin(),
    })
}

fn upstream() -> Result<RunningUpstream, String> {
    ballast_e2e::upstreams::limited(CAPACITY, SERVICE_MS, JITTER_MS)
}

/// One proxy at one load.
struct Cell {
    proxy: &'static str,
    load: f64,
    /// Per class, in [`CLASSES`] order.
    classes: Vec<OhaRun>,
    seconds: f64,
    /// The share of the upstream's slot time that was busy.
    utilisation: f64,
}

impl Cell {
    fn goodput(&self) -> f64 {
        self.classes.iter().map(|c| c.ok).sum::<u64>() as f64 / self.seconds
    }

    fn success(&self, class: usize) -> f64 {
        self.classes
            .get(class)
            .map_or(f64::NAN, |c| c.ok as f64 / c.requests.max(1) as f64)
    }

    fn p99(&self, class: usize) -> f64 {
        self.classes.get(class).map_or(f64::NAN, |c| c.ok_p99_ms)
    }
}

fn measure(oha: &str, proxy: &'static str, load: f64, duration: Duration) -> Result<Cell, String> {
    let up = upstream()?;
    let envoy = Envoy::start(
        &envoy_config(proxy)?
            .upstream_port(up.addr().port())
            .concurrency(2),
    )
    .map_err(|e| format!("{proxy}: {e}"))?;
    let before = up.stats();
    let started = Instant::now();
    let running = CLASSES
        .iter()
        .map(|(class, share)| {
            oha::start(
                oha,
                &Load {
                    addr: envoy.listener(),
                    path: PATH,
                    rate: load * C * share,
                    duration,
                    headers: vec![("x-priority".into(), (*class).into())],
                    timeout: CLIENT_TIMEOUT,
                },
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let classes = running
        .into_iter()
        .map(oha::Running::wait)
        .collect::<Result<Vec<_>, _>>()?;
    let elapsed = started.elapsed().as_secs_f64();
    let after = up.stats();
    drop(envoy);
    let _ = up.stop();
    let busy = after.busy_slot_seconds - before.busy_slot_seconds;
    let cell = Cell {
        proxy,
        load,
        classes,
        seconds: duration.as_secs_f64(),
        utilisation: busy / (CAPACITY as f64 * elapsed),
    };
    eprintln!(
        "   {proxy:<28} {load}x: goodput {:.0} req/s ({:.2} C), critical {:.1} % (p99 {:.0} ms), \
         normal {:.1} %, sheddable {:.1} %",
        cell.goodput(),
        cell.goodput() / C,
        100.0 * cell.success(0),
        cell.p99(0),
        100.0 * cell.success(1),
        100.0 * cell.success(2)
    );
    Ok(cell)
}

/// Runs the section: every proxy at every load, `seconds` each.
pub fn run(out: &Path, seconds: u64) -> Result<(Table, Vec<String>), String> {
    eprintln!("== overload: 4 proxies x {LOADS:?} C");
    let oha = oha::ensure_installed()?;
    let duration = Duration::from_secs(seconds);
    let mut cells = Vec::new();
    // Loads in the outer loop: the proxies at one load run minutes apart at most, so a change
    // in the machine's other load hits them alike.
    for load in LOADS {
        for proxy in PROXIES {
            cells.push(measure(&oha, proxy, load, duration)?);
        }
    }
    let table = tabulate(&cells, seconds);
    write_json(out, "overload.json", &to_json(&cells))?;
    let plots = plot(&cells, out)?;
    Ok((table, plots))
}

fn tabulate(cells: &[Cell], seconds: u64) -> Table {
    let mut table = Table::new(
        "Overload quality",
        &format!(
            "Demo upstream C = {CAPACITY} × {SERVICE_MS}–{} ms ≈ {C:.0} req/s, unbounded FIFO \
             queue. Each proxy cold (Envoy 1.40, 2 workers), {seconds} s of open-loop load per \
             cell with oha (`-q`, `--latency-correction`), three processes for the mix 10 % \
             critical / 40 % normal / 50 % sheddable (`x-priority`); a client gives up after \
             2 s. Goodput = 2xx per second; success = 2xx / requests of the class; p99 = of \
             the 2xx answers, from when each request was due. ballast: `concurrency {{}}` + \
             `shedding {{}}`; natives: the shipped `envoy-config/native-*.yaml`.",
            SERVICE_MS + JITTER_MS
        ),
        &[
            "load",
            "proxy",
            "goodput req/s",
            "goodput / C",
            "critical ok",
            "normal ok",
            "sheddable ok",
            "critical p99 ms",
            "normal p99 ms",
            "upstream busy",
        ],
    );
    for cell in cells {
        table.row(vec![
            format!("{}×", cell.load),
            cell.proxy.to_string(),
            format!("{:.0}", cell.goodput()),
            format!("{:.2}", cell.goodput() / C),
            percent(cell.success(0)),
            percent(cell.success(1)),
            percent(cell.success(2)),
            format!("{:.0}", cell.p99(0)),
            format!("{:.0}", cell.p99(1)),
            format!("{:.0} %", 100.0 * cell.utilisation),
        ]);
    }
    let ours = |load: f64| {
        cells
            .iter()
            .find(|c| c.proxy == "ballast" && c.load == load)
    };
    if let Some(at3) = ours(3.0) {
        table.target(
            "ballast goodput >= 0.95 C at 3×",
            at3.goodput() >= 0.95 * C,
            format!("{:.0} req/s = {:.2} C", at3.goodput(), at3.goodput() / C),
        );
    }
    let critical: Vec<String> = LOADS
        .iter()
        .filter_map(|load| ours(*load).map(|c| format!("{load}×: {}", percent(c.success(0)))))
        .collect();
    table.target(
        "ballast critical success >= 99.5 % at every load",
        LOADS
            .iter()
            .all(|load| ours(*load).is_some_and(|c| c.success(0) >= 0.995)),
        critical.join(", "),
    );
    let mut worse = Vec::new();
    for cell in cells.iter().filter(|c| c.proxy.starts_with("native")) {
        if let Some(ballast) = ours(cell.load) {
            if ballast.goodput() < cell.goodput() {
                worse.push(format!(
                    "goodput at {}× {:.0} < {} {:.0}",
                    cell.load,
                    ballast.goodput(),
                    cell.proxy,
                    cell.goodput()
                ));
            }
            if ballast.success(0) < cell.success(0) {
                worse.push(format!(
                    "critical success at {}× below {}",
                    cell.load, cell.proxy
                ));
            }
        }
    }
    table.target(
        "ballast >= each native filter (goodput and critical success, every load)",
        worse.is_empty(),
        if worse.is_empty() {
            "at every load".into()
        } else {
            worse.join("; ")
        },
    );
    table
}

fn percent(ratio: f64) -> String {
    format!("{:.1} %", 100.0 * ratio)
}

fn to_json(cells: &[Cell]) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = cells
        .iter()
        .map(|c| {
            let classes: Vec<serde_json::Value> = CLASSES
                .iter()
                .zip(&c.classes)
                .map(|((name, share), run)| {
                    json!({
                        "class": name,
                        "share": share,
                        "requests": run.requests,
                        "ok": run.ok,
                        "errors": run.errors,
                        "statuses": run.statuses.iter().map(|(s, n)| json!([s, n])).collect::<Vec<_>>(),
                        "ok_p50_ms": run.ok_p50_ms,
                        "ok_p99_ms": run.ok_p99_ms,
                    })
                })
                .collect();
            json!({
                "proxy": c.proxy,
                "load": c.load,
                "goodput_rps": c.goodput(),
                "goodput_over_c": c.goodput() / C,
                "upstream_utilisation": c.utilisation,
                "classes": classes,
            })
        })
        .collect();
    json!({ "capacity_rps": C, "cells": rows })
}

fn plot(cells: &[Cell], out: &Path) -> Result<Vec<String>, String> {
    let by_proxy = |figure: fn(&Cell) -> f64| -> Vec<Line> {
        PROXIES
            .iter()
            .map(|proxy| Line {
                label: (*proxy).to_string(),
                points: cells
                    .iter()
                    .filter(|c| c.proxy == *proxy)
                    .map(|c| (c.load, figure(c)))
                    .collect(),
            })
            .collect()
    };
    svg::lines(
        &out.join("overload-goodput.svg"),
        "Goodput under overload (share of the upstream's capacity C)",
        "offered load (× C)",
        "goodput / C",
        &by_proxy(|c| c.goodput() / C),
    )?;
    svg::lines(
        &out.join("overload-critical.svg"),
        "Critical requests answered 2xx",
        "offered load (× C)",
        "% of critical requests",
        &by_proxy(|c| 100.0 * c.success(0)),
    )?;
    Ok(vec![
        "overload-goodput.svg".into(),
        "overload-critical.svg".into(),
    ])
}
