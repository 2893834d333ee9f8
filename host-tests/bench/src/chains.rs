//! Sections 3 and 4: what ballast buys across a chain of three Envoys.
//!
//! Retry storm: every hop's route retries 5xx three times, so a leaf that fails everything
//! sees up to 4³ = 64 requests per client request. Envoy's native answer is a retry budget on
//! each cluster (concurrent retries as a share of active requests); ballast's is a rate budget
//! per hop plus final marks, so only the hop nearest the failure retries.
//!
//! Deadline waste: an application between the hops copies headers verbatim and never cancels,
//! so a relative `grpc-timeout` arrives at each Envoy as fresh as the client sent it. Without
//! ballast the leaf starts work for callers that gave up long ago.

use crate::report::{write_json, Table};
use ballast_e2e::hops::{envoy_chain, DeadlineChain, Shape};
use ballast_e2e::{paced, EnvoyConfig};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

const HOPS: usize = 3;
const RETRY_RATE: f64 = 30.0;
const RETRY_SECONDS: u64 = 10;
/// Leaf requests per client request ballast may cause while the leaf fails everything.
const TARGET_AMPLIFICATION: f64 = 1.3;
/// ballast at its defaults, with the retries per request set to the route's `num_retries`.
const RETRY_PLUGIN: &str = r#"{"policy_sets": {"api": {"retry_budget": {},
    "retry": {"max_retries_per_request": 3}}}, "default_policy_set": "api"}"#;
/// The shipped bootstrap's breaker line, and the same with Envoy's retry budget (its
/// documented defaults: 20 % of active requests, at least 3 concurrent retries).
const SHIPPED_BREAKER: &str =
    "- { max_retries: 100000, max_requests: 100000, max_pending_requests: 100000 }";
const NATIVE_BUDGET_BREAKER: &str = "- { max_requests: 100000, max_pending_requests: 100000, \
     retry_budget: { budget_percent: { value: 20.0 }, min_retry_concurrency: 3 } }";

#[derive(Clone, Copy)]
enum Protection {
    None,
    NativeBudget,
    Ballast,
}

impl Protection {
    fn name(self) -> &'static str {
        match self {
            Protection::None => "no protection (route retries 3 per hop)",
            Protection::NativeBudget => "Envoy retry_budget (20 %, min 3) per hop",
            Protection::Ballast => "ballast retry budget + final marks per hop",
        }
    }

    fn config(self) -> Result<EnvoyConfig, String> {
        let shipped = EnvoyConfig::from_file("envoy-config/envoy.yaml")?;
        Ok(match self {
            Protection::None => shipped.without_plugin(),
            Protection::NativeBudget => shipped
                .without_plugin()
                .substitute(SHIPPED_BREAKER, NATIVE_BUDGET_BREAKER),
            Protection::Ballast => shipped.plugin_json(RETRY_PLUGIN),
        })
    }
}

/// Client requests, successes and leaf requests of one chain run.
struct Storm {
    sent: usize,
    ok: usize,
    leaf: u64,
}

fn storm(protection: Protection, failure_ratio: f64) -> Result<Storm, String> {
    let leaf = ballast_e2e::upstreams::failing(failure_ratio)?;
    let envoys = envoy_chain(HOPS, leaf.addr().port(), |_| protection.config())?;
    let entry = envoys.first().ok_or("no Envoy in the chain")?.listener();
    let run = paced::run(
        entry,
        "/api/items/1",
        RETRY_RATE,
        Duration::from_secs(RETRY_SECONDS),
        16,
    );
    let ok = run
        .outcomes
        .iter()
        .filter(|o| o.status() == Some(200))
        .count();
    drop(envoys);
    let served = leaf.stats().total;
    let _ = leaf.stop();
    Ok(Storm {
        sent: run.outcomes.len(),
        ok,
        leaf: served,
    })
}

/// Section 3: leaf requests per client request with the leaf failing everything, and the
/// success kept at 10 % independent failures (a budget that never retries would win the first
/// column and lose this one).
pub fn retry_storm(out: &Path) -> Result<Table, String> {
    eprintln!("== retry storm: 3 hops, leaf failing");
    let mut table = Table::new(
        "Retry storm across 3 hops",
        &format!(
            "client → E1 → E2 → E3 → leaf (demo upstream answering 503), every route `retry_on: \
             5xx, num_retries: 3`, 1 worker per Envoy; {RETRY_RATE} req/s for {RETRY_SECONDS} s \
             (open loop). Amplification = requests the leaf received / client requests. Second \
             run: the leaf fails 10 % of requests at random; success = 200s / client requests."
        ),
        &[
            "protection",
            "leaf requests / client request (100 % failing)",
            "success at 10 % failures",
        ],
    );
    let mut rows = Vec::new();
    let mut ours = f64::NAN;
    let mut our_success = f64::NAN;
    for protection in [
        Protection::None,
        Protection::NativeBudget,
        Protection::Ballast,
    ] {
        let failing = storm(protection, 1.0)?;
        let flaky = storm(protection, 0.1)?;
        let amplification = failing.leaf as f64 / failing.sent.max(1) as f64;
        let success = flaky.ok as f64 / flaky.sent.max(1) as f64;
        eprintln!(
            "   {:<44} {amplification:.2}x, {:.1} % ok at 10 % failures",
            protection.name(),
            100.0 * success
        );
        if failing.ok > 0 {
            return Err(format!(
                "{}: a leaf failing everything answered 200",
                protection.name()
            ));
        }
        table.row(vec![
            protection.name().to_string(),
            format!("{amplification:.2}"),
            format!("{:.1} %", 100.0 * success),
        ]);
        rows.push(json!({
            "name": protection.name(),
            "client_requests": failing.sent,
            "leaf_requests": failing.leaf,
            "amplification": amplification,
            "success_at_10_percent_failures": success,
        }));
        if matches!(protection, Protection::Ballast) {
            ours = amplification;
            our_success = success;
        }
    }
    table.target(
        &format!("ballast <= {TARGET_AMPLIFICATION}x leaf requests per client request"),
        ours <= TARGET_AMPLIFICATION,
        format!(
            "{ours:.2}x; {:.1} % success at 10 % failures",
            100.0 * our_success
        ),
    );
    write_json(out, "retry-storm.json", &json!({ "rows": rows }))?;
    Ok(table)
}

const HOP_DELAY_MS: u64 = 30;
const CLIENT_DEADLINE_MS: u64 = 50;
const DEADLINE_REQUESTS: usize = 200;
const DEADLINE_PLUGIN: &str = r#"{"trusted_peers": {"source_cidrs": ["127.0.0.0/8"]},
    "policy_sets": {"api": {"deadline": {}}}, "default_policy_set": "api"}"#;

/// Section 4: leaf requests started after the client's deadline, with applications between
/// the hops.
pub fn deadline_waste(out: &Path) -> Result<Table, String> {
    eprintln!("== deadline waste: 3 hops with applications between");
    let mut table = Table::new(
        "Deadline waste across 3 hops with applications between",
        &format!(
            "client → E1 → A1 → E2 → A2 → E3 → A3 → leaf; each application waits \
             {HOP_DELAY_MS} ms, copies request headers verbatim and never cancels. \
             {DEADLINE_REQUESTS} requests from 10 threads, each with `grpc-timeout: \
             {CLIENT_DEADLINE_MS}m`; the client waits up to 2 s so late answers are seen. \
             Without ballast the same Envoys run without the plugin."
        ),
        &[
            "proxies",
            "leaf starts",
            "leaf starts after the client's deadline",
            "client p50 ms",
            "client max ms",
        ],
    );
    let mut rows = Vec::new();
    let mut ours = usize::MAX;
    for (name, plugin) in [
        ("Envoy without ballast", None),
        ("Envoy + ballast deadline {}", Some(DEADLINE_PLUGIN)),
    ] {
        let chain = DeadlineChain::start(
            Shape::AppsBetween,
            HOPS,
            Duration::from_millis(HOP_DELAY_MS),
            plugin,
        )?;
        let run = chain.run(
            "/chain/items",
            DEADLINE_REQUESTS,
            10,
            CLIENT_DEADLINE_MS,
            Duration::from_secs(2),
        )?;
        let latencies: Vec<Duration> = run.outcomes.iter().map(|o| o.latency).collect();
        let p50 = ballast_e2e::chain::percentile(&latencies, 50);
        let max = ballast_e2e::chain::percentile(&latencies, 100);
        let late = run.late_starts();
        eprintln!(
            "   {name:<30} {} leaf starts, {late} after the deadline",
            run.leaf_starts.len()
        );
        table.row(vec![
            name.to_string(),
            run.leaf_starts.len().to_string(),
            late.to_string(),
            p50.as_millis().to_string(),
            max.as_millis().to_string(),
        ]);
        rows.push(json!({
            "name": name,
            "requests": run.outcomes.len(),
            "leaf_starts": run.leaf_starts.len(),
            "leaf_starts_after_deadline": late,
            "client_p50_ms": p50.as_secs_f64() * 1000.0,
        }));
        if plugin.is_some() {
            ours = late;
        }
    }
    table.target(
        "0 leaf requests started after the client's deadline with ballast",
        ours == 0,
        format!("{ours}"),
    );
    write_json(out, "deadline-waste.json", &json!({ "rows": rows }))?;
    Ok(table)
}
