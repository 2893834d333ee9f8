//! What ballast takes from the proxy besides time: the .wasm's size (each worker compiles and
//! holds it; Istio pulls it over the network), each VM's linear memory, and Envoy's resident
//! memory with and without the plugin.
//!
//! Why linear memory twice: a wasm VM's memory only grows; a per-request leak shows up as
//! growth between warm-up and a million requests later, and never shrinks back.

use crate::harness::{all_policies, minimal_wasm, one_request};
use crate::overhead::EnvoyRss;
use crate::report::{write_json, Table};
use ballast_e2e::paths::plugin_wasm;
use ballast_mock_host::{Host, PluginModule};
use serde_json::json;
use std::path::Path;

/// The size the .wasm should not exceed.
const TARGET_WASM_BYTES: u64 = 200 * 1024;
const WARM_UP_REQUESTS: u64 = 20_000;

/// Section 6.
pub fn run(out: &Path, quick: bool, envoy_rss: Option<&[EnvoyRss]>) -> Result<Table, String> {
    eprintln!("== footprint");
    let wasm = plugin_wasm()?;
    let size = file_size(&wasm)?;
    let minimal_size = file_size(&minimal_wasm()).ok();
    let requests: u64 = if quick { 200_000 } else { 1_000_000 };
    let (warm, after) = linear_memory(requests)?;

    let mut table = Table::new(
        "Footprint",
        &format!(
            "Size of `target/ballast.wasm` as shipped (wasm-release profile, `wasm-opt -Oz`). \
             Linear memory of each of 2 worker VMs in the harness with every policy on, after \
             {WARM_UP_REQUESTS} requests of warm-up and again after {requests} more (virtual \
             time, 1 ms apart, every fourth answered 503). Envoy's resident memory (VmRSS) \
             after the overhead rounds, 1 worker each."
        ),
        &["measure", "value", "reference"],
    );
    table.row(vec![
        ".wasm size".into(),
        format!("{size} bytes ({:.0} KiB)", size as f64 / 1024.0),
        format!("target {} KiB", TARGET_WASM_BYTES / 1024),
    ]);
    if let Some(minimal) = minimal_size {
        table.row(vec![
            ".wasm size of the minimal filter".into(),
            format!("{minimal} bytes"),
            "proxy-wasm SDK alone".into(),
        ]);
    }
    for (worker, (w, a)) in warm.iter().zip(&after).enumerate() {
        table.row(vec![
            format!("linear memory, worker {worker}"),
            format!("{w} bytes after warm-up, {a} after {requests} requests"),
            "equal".into(),
        ]);
    }
    let mut rss_json = Vec::new();
    if let Some(rss) = envoy_rss {
        let base = rss
            .iter()
            .find(|(n, _)| n == "no-filter")
            .map(|(_, kib)| *kib);
        for (name, kib) in rss {
            let delta = base.map_or(String::new(), |b| {
                format!("{:+} KiB vs no-filter", *kib as i64 - b as i64)
            });
            table.row(vec![
                format!("Envoy RSS, {name}"),
                format!("{kib} KiB"),
                delta,
            ]);
            rss_json.push(json!({ "name": name, "rss_kib": kib }));
        }
    }
    table.target(
        ".wasm <= 200 KiB",
        size <= TARGET_WASM_BYTES,
        format!("{size} bytes"),
    );
    table.target(
        "linear memory after warm-up == after the run",
        warm == after,
        format!("{warm:?} -> {after:?} bytes"),
    );
    write_json(
        out,
        "footprint.json",
        &json!({
            "wasm_bytes": size,
            "minimal_wasm_bytes": minimal_size,
            "requests": requests,
            "linear_memory_after_warm_up": warm,
            "linear_memory_after_run": after,
            "envoy_rss": rss_json,
        }),
    )?;
    Ok(table)
}

fn file_size(path: &Path) -> Result<u64, String> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Linear memory of each worker after the warm-up and after `requests` more.
fn linear_memory(requests: u64) -> Result<(Vec<usize>, Vec<usize>), String> {
    let module = PluginModule::load(plugin_wasm()?).map_err(|e| e.to_string())?;
    let mut host = Host::builder(&module)
        .workers(2)
        .plugin_config(all_policies())
        .capture_logs(None)
        .recycle_finished_streams(true)
        .build()
        .map_err(|e| e.to_string())?;
    if !host.start().map_err(|e| e.to_string())?.all_ok() {
        return Err("the all-policies configuration was refused".into());
    }
    let memory = |host: &Host| -> Result<Vec<usize>, String> {
        (0..2)
            .map(|w| host.memory_bytes(w).map_err(|e| e.to_string()))
            .collect()
    };
    drive(&mut host, WARM_UP_REQUESTS)?;
    let warm = memory(&host)?;
    drive(&mut host, requests)?;
    Ok((warm, memory(&host)?))
}

/// `n` requests, alternating workers, 1 ms apart; every fourth answered 503.
fn drive(host: &mut Host, n: u64) -> Result<(), String> {
    for i in 0..n {
        let status = if i % 4 == 3 { "503" } else { "200" };
        one_request(host, usize::from(i % 2 == 1), status)?;
    }
    Ok(())
}
