//! `ballast-sim`: simulate a ballast policy configuration under load, before shipping it.
//!
//! Why: a resilience policy is only as good as its behaviour under the overload it exists for,
//! and that is hard to reproduce against a real deployment. The simulator runs the real plugin
//! .wasm in the mock proxy-wasm host, in virtual time, against a modelled upstream and
//! modelled clients, and reports what each class of request experienced. See
//! `examples/scenarios/` for scenario files and the README section "Simulate a policy".

pub mod arrivals;
pub mod collect;
pub mod engine;
pub mod plots;
pub mod progress;
pub mod report;
pub mod rng;
pub mod scenario;
pub mod series_expect;
pub mod upstream;

pub use engine::{run, Options};
pub use report::Report;
pub use scenario::{load, Loaded};

/// Loads a scenario, runs it and builds the report.
pub fn simulate(path: &std::path::Path, options: &Options) -> Result<Report, String> {
    let loaded = load(path)?;
    let outcome = run(&loaded, options)?;
    Ok(report::build(&loaded, &outcome))
}
