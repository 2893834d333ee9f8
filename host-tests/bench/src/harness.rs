//! The harness as a tool (its speed and determinism) and as a microscope on ballast's cost
//! (host calls per request, per policy).
//!
//! Why host calls: in Envoy every call from the VM to the host crosses the V8 boundary and
//! copies its arguments; shared-data calls also take the process-wide lock and copy the value.
//! Counting them per request in the mock host is exact and repeatable where a timing is not,
//! so it says which policy costs what and whether a change made it cheaper.

use crate::procfs::cpu_micros;
use crate::report::{ratio, write_json, Table};
use ballast_e2e::paths::{plugin_wasm, repo_file, workspace_root};
use ballast_mock_host::{Action, Host, PluginModule};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Simulated requests per second the simulator must reach.
const TARGET_SIM_RPS: f64 = 200_000.0;
/// Requests per configuration when counting host calls (after the warm-up).
const COUNTED_REQUESTS: u64 = 2_000;

fn scenario(name: &str) -> PathBuf {
    repo_file(&format!("host-tests/bench/scenarios/{name}"))
}

/// A simulator run's report, with its wall time and the CPU time this process spent on it
/// (single-threaded: the same as wall time on a quiet machine, and steadier on a busy one).
fn simulate(path: &Path, seed: Option<u64>) -> Result<(ballast_sim::Report, Timed), String> {
    let options = ballast_sim::Options {
        wasm: plugin_wasm()?,
        seed,
        progress: false,
    };
    let me = std::process::id();
    let cpu_before = cpu_micros(me)?;
    let started = Instant::now();
    let report = ballast_sim::simulate(path, &options)?;
    let wall = started.elapsed().as_secs_f64();
    let cpu = (cpu_micros(me)? - cpu_before) / 1e6;
    Ok((report, Timed { wall, cpu }))
}

/// Seconds of wall time and of CPU time.
#[derive(Debug, Clone, Copy)]
struct Timed {
    wall: f64,
    cpu: f64,
}

/// Section 5a: simulated requests per second and determinism (the same seed twice gives
/// byte-identical JSON, another seed different JSON). The first run of the process compiles
/// the module with Cranelift (as every `ballast-sim run` does once); later runs reuse it.
pub fn speed(out: &Path) -> Result<Table, String> {
    eprintln!("== harness: simulator speed and determinism");
    let throughput = scenario("throughput.json");
    let (first, cold) = simulate(&throughput, None)?;
    let (again, warm_a) = simulate(&throughput, None)?;
    let (_, warm_b) = simulate(&throughput, None)?;
    let (other, _) = simulate(&throughput, Some(2))?;
    let as_json = |r: &ballast_sim::Report| serde_json::to_vec(r).map_err(|e| e.to_string());
    let identical = as_json(&first)? == as_json(&again)?;
    let differs = as_json(&first)? != as_json(&other)?;
    let warm = if warm_a.cpu <= warm_b.cpu {
        warm_a
    } else {
        warm_b
    };
    let streams = first.streams as f64;
    let rate_cold = streams / cold.cpu;
    let rate = streams / warm.cpu;
    let rate_wall = streams / warm.wall;

    let mut table = Table::new(
        "Harness: simulator speed and determinism",
        &format!(
            "`ballast-sim` on `host-tests/bench/scenarios/throughput.json` (the full example \
             configuration, 2 workers, 20,000 req/s for 30 simulated seconds: {streams:.0} \
             proxy streams through the real .wasm). Rates are per second of the simulator's \
             CPU time (it runs on one thread: on a quiet machine that is its wall time, and \
             other work on the machine moves it less). The first run compiles the module; \
             the second row is the best of two runs after it."
        ),
        &["measure", "value", "target", "ratio"],
    );
    table.row(vec![
        format!(
            "simulated req/s, first run ({:.2} s CPU, module compiled)",
            cold.cpu
        ),
        format!("{rate_cold:.0}"),
        format!("{TARGET_SIM_RPS:.0}"),
        ratio(rate_cold, TARGET_SIM_RPS),
    ]);
    table.row(vec![
        format!(
            "simulated req/s ({:.2} s CPU; by wall time {rate_wall:.0})",
            warm.cpu
        ),
        format!("{rate:.0}"),
        format!("{TARGET_SIM_RPS:.0}"),
        ratio(rate, TARGET_SIM_RPS),
    ]);
    table.row(vec![
        "seed 1 twice: identical JSON".into(),
        yes_no(identical),
        "yes".into(),
        "-".into(),
    ]);
    table.row(vec![
        "seed 2: different JSON".into(),
        yes_no(differs),
        "yes".into(),
        "-".into(),
    ]);
    table.target(
        &format!(">= {TARGET_SIM_RPS:.0} simulated req/s"),
        rate >= TARGET_SIM_RPS,
        format!("{rate:.0}; {rate_cold:.0} in the run that compiled the module"),
    );
    table.target(
        "deterministic",
        identical && differs,
        format!(
            "same seed identical: {}, other seed differs: {}",
            yes_no(identical),
            yes_no(differs)
        ),
    );
    write_json(
        out,
        "harness.json",
        &json!({
            "streams": first.streams,
            "first_run_cpu_s": cold.cpu,
            "run_cpu_s": warm.cpu,
            "run_wall_s": warm.wall,
            "sim_rps_wall": rate_wall,
            "sim_rps_first_run": rate_cold,
            "sim_rps": rate,
            "same_seed_identical": identical,
            "other_seed_differs": differs,
        }),
    )?;
    Ok(table)
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

/// One configuration whose host calls are counted.
struct Counted {
    name: &'static str,
    /// The plugin's JSON configuration (`None`: the minimal wasm filter, which has none).
    config: Option<String>,
}

const PRIORITY: &str = r#""priority": {"classes": ["critical", "normal", "sheddable"], "default": "normal", "header": "x-priority"}"#;

/// A configuration with one policy set `api`, routed by route name, holding `sections`.
pub fn one_set(sections: &str) -> String {
    format!(
        r#"{{{PRIORITY}, "policy_sets": {{"api": {{{sections}}}}},
            "routes": [{{"name": "api", "match": {{"route_name": {{"exact": "api"}}}}, "policy_set": "api"}}],
            "default_policy_set": "api"}}"#
    )
}

/// Every policy on, none triggering at this load (the overhead benchmark's `ballast-all`).
pub fn all_policies() -> String {
    one_set(
        r#""retry_budget": {}, "retry": {"max_retries_per_request": 3},
           "concurrency": {"min_limit": 64}, "deadline": {}, "shedding": {}"#,
    )
}

/// ballast's policies one at a time (name, the policy set's sections), as the cost tables
/// break ballast down; `ballast-all` is every one of them together.
pub const ONE_POLICY_EACH: [(&str, &str); 5] = [
    ("ballast, routing only", ""),
    (
        "ballast, retry budget",
        r#""retry_budget": {}, "retry": {"max_retries_per_request": 3}"#,
    ),
    (
        "ballast, concurrency",
        r#""concurrency": {"min_limit": 64}"#,
    ),
    ("ballast, deadline", r#""deadline": {}"#),
    ("ballast, shedding", r#""shedding": {}"#),
];

fn counted_configs() -> Vec<Counted> {
    let mut configs = vec![Counted {
        name: "minimal-wasm",
        config: None,
    }];
    configs.extend(ONE_POLICY_EACH.iter().map(|(name, sections)| Counted {
        name,
        config: Some(one_set(sections)),
    }));
    configs.push(Counted {
        name: "ballast-all",
        config: Some(all_policies()),
    });
    configs
}

/// The minimal wasm filter (`make bench` builds it beside ballast).
pub fn minimal_wasm() -> PathBuf {
    std::env::var_os("BALLAST_MINIMAL_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/minimal.wasm"))
}

/// Requests one at a time on one worker, 1 ms of virtual time apart (1,000 req/s, so the
/// ticks' own calls are shared out as at that rate): host calls per request, per import.
fn count(module: &PluginModule, config: Option<&str>) -> Result<Counts, String> {
    let mut builder = Host::builder(module)
        .workers(1)
        .capture_logs(None)
        .recycle_finished_streams(true);
    if let Some(config) = config {
        builder = builder.plugin_config(config);
    }
    let mut host = builder.build().map_err(|e| e.to_string())?;
    if !host.start().map_err(|e| e.to_string())?.all_ok() {
        return Err(format!("configuration refused: {config:?}"));
    }
    let one = |host: &mut Host| -> Result<(), String> {
        if one_request(host, 0, "200")? {
            Ok(())
        } else {
            Err("a request was refused or paused: the count must be of admitted ones".into())
        }
    };
    // Warm-up: first-use allocations, the first budget and limiter records.
    for _ in 0..200 {
        one(&mut host)?;
    }
    host.count_host_calls(true);
    let fuel_before = host.wasm_fuel_used().ok_or("the module is not metered")?;
    for _ in 0..COUNTED_REQUESTS {
        one(&mut host)?;
    }
    let fuel = host.wasm_fuel_used().ok_or("the module is not metered")? - fuel_before;
    let calls = host
        .host_calls()
        .into_iter()
        .map(|(name, n)| (name, n as f64 / COUNTED_REQUESTS as f64))
        .collect();
    Ok(Counts {
        calls,
        fuel: fuel as f64 / COUNTED_REQUESTS as f64,
    })
}

/// What one request costs inside the VM: host calls per import, and wasm operators executed.
struct Counts {
    calls: BTreeMap<&'static str, f64>,
    fuel: f64,
}

/// Sends one GET on `worker`, routed to the policy set `api` from a loopback peer; unless the
/// plugin answered or paused it, answers it with `status`. Ends the stream and advances
/// virtual time by 1 ms. Returns whether the plugin let the request through.
pub fn one_request(host: &mut Host, worker: usize, status: &str) -> Result<bool, String> {
    let err = |e: ballast_mock_host::Error| e.to_string();
    let mut stream = host.http_stream(worker).map_err(err)?;
    stream.set_property("xds.route_name", "api").map_err(err)?;
    stream
        .set_property("source.address", "127.0.0.1:40000")
        .map_err(err)?;
    stream
        .set_property("upstream.address", "127.0.0.1:8081")
        .map_err(err)?;
    let action = stream
        .request_headers(
            &[
                (":method", "GET"),
                (":path", "/api/items"),
                (":authority", "shop"),
                ("x-request-id", "0b6e0d1e-5b7a-4a42-9a57-4c8e0f0b1a2d"),
            ],
            true,
        )
        .map_err(err)?;
    let admitted = action == Action::Continue && stream.local_response().is_none();
    if admitted {
        stream
            .response_headers(&[(":status", status), ("content-length", "0")], true)
            .map_err(err)?;
    }
    stream.finish().map_err(err)?;
    host.advance(Duration::from_millis(1)).map_err(err)?;
    Ok(admitted)
}

/// Section 5b: host calls per request by configuration, and which imports they are.
pub fn host_calls(out: &Path) -> Result<Table, String> {
    eprintln!("== harness: host calls per request");
    let ballast = PluginModule::load_metered(plugin_wasm()?).map_err(|e| e.to_string())?;
    let minimal = PluginModule::load_metered(minimal_wasm()).map_err(|e| {
        format!("{e} (the minimal filter: make bench builds it at target/minimal.wasm)")
    })?;
    let mut table = Table::new(
        "Harness: host calls per request",
        &format!(
            "The real .wasm in the mock host, one worker, {COUNTED_REQUESTS} admitted GET \
             requests after 200 of warm-up, 1 ms of virtual time apart (ticks included at that \
             rate); calls of each proxy-wasm import divided by the requests. Shared data: `get` \
             and `set` of proxy-wasm shared data, each a lock and a copy of the value in Envoy. \
             Wasm ops: operators the plugin executed per request (wasmtime's fuel, exact and \
             the same on every machine), callbacks, ticks and allocation included."
        ),
        &[
            "configuration",
            "host calls",
            "shared get",
            "shared set",
            "headers",
            "metrics",
            "other",
            "wasm ops",
        ],
    );
    let mut rows = Vec::new();
    for counted in counted_configs() {
        let module = if counted.config.is_some() {
            &ballast
        } else {
            &minimal
        };
        let Counts { calls, fuel } = count(module, counted.config.as_deref())?;
        let total: f64 = calls.values().sum();
        let of = |names: &[&str]| -> f64 {
            calls
                .iter()
                .filter(|(n, _)| names.iter().any(|m| n.starts_with(m)))
                .map(|(_, v)| v)
                .sum::<f64>()
                + 0.0 // an empty sum is -0.0, printed "-0.00"
        };
        let shared_get = of(&["proxy_get_shared_data"]);
        let shared_set = of(&["proxy_set_shared_data"]);
        let headers = of(&[
            "proxy_get_header",
            "proxy_replace_header",
            "proxy_add_header",
            "proxy_remove_header",
        ]);
        let metrics = of(&["proxy_increment_metric", "proxy_record_metric"]);
        let other = (total - shared_get - shared_set - headers - metrics).max(0.0);
        table.row(vec![
            counted.name.to_string(),
            format!("{total:.2}"),
            format!("{shared_get:.2}"),
            format!("{shared_set:.2}"),
            format!("{headers:.2}"),
            format!("{metrics:.2}"),
            format!("{other:.2}"),
            format!("{fuel:.0}"),
        ]);
        rows.push(json!({
            "name": counted.name,
            "total": total,
            "per_import": calls,
            "wasm_ops": fuel,
        }));
    }
    write_json(
        out,
        "host-calls.json",
        &json!({ "requests": COUNTED_REQUESTS, "rows": rows }),
    )?;
    Ok(table)
}
