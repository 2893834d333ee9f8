//! The events a scenario is made of, and the configurations and header vocabulary they draw
//! on. `arbitrary` derives the decoding: libFuzzer's bytes become a `Scenario`.

use arbitrary::Arbitrary;

const TRUST: &str = r#""trusted_peers": {"source_cidrs": ["10.0.0.0/8"]},
    "priority": {"classes": ["critical", "normal", "sheddable"], "default": "normal",
                 "header": "x-ballast-priority"}"#;

/// Fixed limits (the bound is checked while only these ran): every request goes to `api`.
const FIXED: [(&str, u32); 2] = [
    (
        r#""policy_sets": {"api": {
            "concurrency": {"algorithm": "fixed", "initial_limit": 3, "queue": {"size": 4, "max_wait": "50ms"}},
            "retry_budget": {"ratio": 0.2, "min_retries_per_second": 1, "ttl": "2s"},
            "retry": {"max_retries_per_request": 2, "idempotency_key_header": "idempotency-key", "explain_header": "x-ballast-retry"},
            "deadline": {"default": "2s", "max": "5s"},
            "shedding": {"rate_limits": {"sheddable": {"per_second": 20, "burst": 2, "scope": "shared"}}}}},
          "default_policy_set": "api""#,
        3,
    ),
    (
        r#""policy_sets": {"api": {
            "concurrency": {"algorithm": "fixed", "initial_limit": 5, "queue": {"size": 2, "max_wait": "30ms", "order": "lifo"}},
            "deadline": {"default": "1s"}, "shedding": {}}},
          "default_policy_set": "api""#,
        5,
    ),
];

/// Other configurations: adaptive limits, several sets and routes, a dry run, none at all.
const OTHERS: [&str; 3] = [
    r#""policy_sets": {
        "g": {"concurrency": {"algorithm": "gradient2", "initial_limit": 4, "min_limit": 1, "queue": {"size": 3, "max_wait": "40ms"}},
              "retry_budget": {"ratio": 0.1}, "retry": {}, "deadline": {"default": "3s"}, "shedding": {}},
        "v": {"concurrency": {"algorithm": "vegas", "initial_limit": 2, "min_limit": 1, "queue": {"size": 2, "max_wait": "20ms"}}},
        "plain": {}},
      "routes": [{"name": "v", "match": {"path": {"prefix": "/v"}}, "policy_set": "v", "priority": "critical"},
                 {"name": "p", "match": {"headers": [{"name": "x-plain", "present": true}]}, "policy_set": "plain"}],
      "default_policy_set": "g""#,
    r#""dry_run": true, "policy_sets": {"api": {
        "concurrency": {"algorithm": "fixed", "initial_limit": 1, "queue": {"size": 1, "max_wait": "10ms"}},
        "retry_budget": {}, "retry": {}, "deadline": {}, "shedding": {}}},
      "default_policy_set": "api""#,
    r#""policy_sets": {"api": {}}, "default_policy_set": "api""#,
];

/// Headers whose values the fuzzer chooses: every hint ballast reads, and some it passes on.
pub(super) const HEADER_NAMES: [&str; 16] = [
    "grpc-timeout",
    "x-envoy-expected-rq-timeout-ms",
    "x-envoy-upstream-rq-timeout-ms",
    "x-ballast-deadline",
    "x-request-deadline",
    "x-ballast-priority",
    "x-envoy-attempt-count",
    "grpc-previous-rpc-attempts",
    "idempotency-key",
    "content-type",
    "x-plain",
    "te",
    "x-envoy-max-retries",
    "x-ballast-retry",
    "x-ballast-final",
    "x-envoy-ratelimited",
];

pub(super) const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "G\u{e9}T"];
pub(super) const PATHS: [&str; 5] = ["/", "/v/1", "/api/x?q=1", "", "/\u{0}\u{ff}"];

/// `HOLDER_TIMEOUT` of `filter/policy/src/concurrency/holders.rs`, in milliseconds.
pub(super) const HOLDER_TIMEOUT_MS: u64 = 5_000;

/// Wrong statuses to answer host functions with (which ones: every proxy-wasm import of the
/// module, `PluginModule::host_functions`).
pub(super) const STATUSES: [i32; 10] = [1, 2, 3, 4, 6, 7, 8, 10, 12, 99];

#[derive(Arbitrary, Debug)]
pub enum Op {
    Open {
        worker: u8,
        method: u8,
        path: u8,
        headers: Vec<(u8, Vec<u8>)>,
        trusted: bool,
        end: bool,
    },
    RequestBody {
        stream: u8,
        len: u8,
        end: bool,
    },
    RequestTrailers {
        stream: u8,
    },
    Respond {
        stream: u8,
        status: u16,
        headers: Vec<(u8, Vec<u8>)>,
        end: bool,
    },
    ResponseBody {
        stream: u8,
        end: bool,
    },
    ResponseTrailers {
        stream: u8,
        grpc_status: u8,
    },
    Finish {
        stream: u8,
    },
    Advance {
        ms: u16,
    },
    Jump {
        secs: u16,
    },
    StepWall {
        ms: i32,
    },
    Crash {
        worker: u8,
    },
    Reload {
        worker: u8,
    },
    Reconfigure {
        config: u8,
        in_place: bool,
    },
    ReconfigureRaw {
        bytes: Vec<u8>,
    },
    FailImport {
        import: u8,
        status: u8,
    },
    HealImports,
    LoseCas {
        n: u8,
    },
    CorruptShared {
        key: u8,
        bytes: Vec<u8>,
    },
}

#[derive(Arbitrary, Debug)]
pub struct Scenario {
    pub two_workers: bool,
    pub config: u8,
    pub ops: Vec<Op>,
}

/// The policy sets with a limiter in each of `OTHERS`.
const OTHERS_LIMITED: [&[&str]; 3] = [&["g", "v"], &["api"], &[]];

/// A configuration by number (the fixed ones first): its text, its fixed limit, and its
/// policy sets with a limiter.
pub(super) fn config(n: u8) -> (String, Option<u32>, &'static [&'static str]) {
    let n = usize::from(n) % (FIXED.len() + OTHERS.len());
    match FIXED.get(n) {
        Some((body, limit)) => (format!("{{{TRUST}, {body}}}"), Some(*limit), &["api"]),
        None => (
            format!("{{{TRUST}, {}}}", OTHERS[n - FIXED.len()]),
            None,
            OTHERS_LIMITED[n - FIXED.len()],
        ),
    }
}
