//! The event grammar and the properties of the `plugin_events` fuzz target: the real ballast
//! .wasm in the mock host under arbitrary event sequences — requests with hostile headers from
//! trusted and untrusted peers, bodies, responses, resets, ticks, time jumps and wall-clock
//! steps, worker crashes and reloads, configuration updates (new root context, in place,
//! refused, arbitrary bytes), failing host calls, lost CAS races and corrupted shared data.
//!
//! Two programs include this module: the fuzz target (`fuzz_targets/plugin_events.rs`, coverage
//! guided, `make fuzz`) and the replay test in the mock host's suite
//! (`tests/plugin_events_replay.rs`, the committed corpus and seeded mutations of it, part of
//! `make test` without the 5-minute instrumented build). One grammar, one set of properties.
//!
//! Properties, beyond "the VM never traps":
//! - **none lost**: once time has passed every wait, no request of a live VM is still paused
//!   (each was admitted or answered) — checked when no host call was made to fail;
//! - **bounded**: requests forwarded and not yet answered by the upstream never exceed the
//!   largest fixed limit in force — checked while only the fixed-limit configurations ran and
//!   nothing (failed calls, lost races, corrupted records) licensed the limiter to fail open;
//! - **nothing left behind**: when every stream has ended and the dead VMs' entries have timed
//!   out, every limiter gauge reads 0 in flight and 0 queued.
//!
//! A property that does not hold panics with what was seen (both programs report the input).
#![allow(clippy::panic, clippy::expect_used, clippy::indexing_slicing)] // a checker: panics are its verdicts

mod grammar;
mod run;

pub use grammar::Scenario;

use arbitrary::Arbitrary;
use ballast_mock_host::{Host, LogLevel, PluginModule};
use grammar::{config, Op};
use run::{check, Run};

/// An input as libFuzzer's `fuzz_target!` decodes it (too short: none), so that the replay
/// test runs each corpus file as the scenario the fuzzer saw.
#[allow(dead_code)] // used by the replay test; the fuzz target decodes through `fuzz_target!`
pub fn decode(bytes: &[u8]) -> Option<Scenario> {
    if bytes.len() < <Scenario as Arbitrary>::size_hint(0).0 {
        return None;
    }
    Scenario::arbitrary_take_rest(arbitrary::Unstructured::new(bytes)).ok()
}

/// What one scenario exercised (the replay test shows the properties had material).
#[derive(Debug, Default, Clone, Copy)]
pub struct Exercised {
    pub ops: usize,
    /// Requests the scenario began (a crashed worker refuses some).
    pub requests: usize,
}

/// Runs one scenario against `module` and checks every property (panics when one fails).
pub fn run(module: &PluginModule, scenario: Scenario) -> Exercised {
    let workers = if scenario.two_workers { 2 } else { 1 };
    let (text, limit, limited) = config(scenario.config);
    let Ok(mut host) = Host::builder(module)
        .workers(workers)
        .plugin_config(text)
        .capture_logs(Some(LogLevel::Error))
        .build()
    else {
        return Exercised::default();
    };
    let started = check(host.start()).expect("the host starts");
    assert!(
        started.all_ok(),
        "a configuration of this target is refused: {:?}",
        started.logs
    );
    let mut run = Run::new(
        host,
        workers,
        limit,
        limited,
        module.host_functions().to_vec(),
    );
    let mut exercised = Exercised::default();
    for op in scenario.ops.into_iter().take(64) {
        exercised.ops += 1;
        exercised.requests += usize::from(matches!(op, Op::Open { .. }));
        run.apply(op);
    }
    run.check_none_lost();
    run.check_nothing_left();
    exercised
}
