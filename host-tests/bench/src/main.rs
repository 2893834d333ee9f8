//! `make bench` and `make bench-quick`: what ballast costs and what it buys, measured side by
//! side in one run and printed as tables (JSON and SVG beside them under `target/bench/`).
//!
//! Why one program and not a script per benchmark: every figure here is a comparison made in
//! the same run on the same machine (these machines are shared and noisy, so an absolute time
//! means little), and the comparisons share their pieces: Envoy started from the shipped
//! bootstrap, the demo upstream, the paced open-loop client, the mock host. It never fails on
//! a timing; it fails only when something could not be measured (Envoy would not start, a
//! request that must succeed did not). Each target is printed beside its number, met or not.
//!
//! Sections (`--quick` runs the first and the last only, with shorter rounds):
//! 1. overhead through real Envoy (`overhead`, and ballast policy by policy: `by-policy`);
//! 2. overload quality (`overload`); 3. retry storm and 4. deadline waste across a 3-hop
//!    chain (`chains`); 5. the harness's speed, determinism and host calls per request
//!    (`harness`); 6. footprint (`footprint`).

mod chains;
mod footprint;
mod harness;
mod oha;
mod overhead;
mod overload;
mod procfs;
mod report;
mod svg;
mod wrk;

use report::Report;
use std::path::PathBuf;
use std::process::ExitCode;

/// Where `--publish` puts the plots, relative to the repository root (BENCHMARKS.md links them).
const PUBLISHED_PLOTS: &str = "host-tests/bench/results/";

/// What the command line asked for.
struct Options {
    quick: bool,
    /// Also write BENCHMARKS.md at the repository root, its plots under [`PUBLISHED_PLOTS`].
    publish: bool,
    out: PathBuf,
    /// Sections to run (all when empty): overhead, by-policy, overload, chains, harness, footprint.
    only: Vec<String>,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        quick: false,
        publish: false,
        out: ballast_e2e::paths::workspace_root().join("target/bench"),
        only: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--publish" => options.publish = true,
            "--out" => options.out = PathBuf::from(args.next().ok_or("--out needs a directory")?),
            "--only" => options.only.extend(
                args.next()
                    .ok_or("--only needs a section")?
                    .split(',')
                    .map(String::from),
            ),
            "-h" | "--help" => {
                println!(
                    "usage: ballast-bench [--quick] [--publish] [--out DIR] [--only overhead,by-policy,overload,chains,harness,footprint]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(options)
}

fn run(options: &Options) -> Result<Report, String> {
    std::fs::create_dir_all(&options.out)
        .map_err(|e| format!("cannot create {}: {e}", options.out.display()))?;
    let wanted = |section: &str| {
        if options.only.is_empty() {
            !options.quick || section == "overhead" || section == "footprint"
        } else {
            options.only.iter().any(|s| s == section)
        }
    };
    let command = match (options.only.is_empty(), options.quick) {
        (true, false) => "make bench".to_string(),
        (true, true) => "make bench-quick".to_string(),
        (false, quick) => format!(
            "cargo run -p ballast-bench --{} --only {}",
            if quick { " --quick" } else { "" },
            options.only.join(",")
        ),
    };
    let mut report = Report::new(command);
    let mut envoy_rss = None;
    if wanted("overhead") {
        let measured = overhead::run(options.quick, &options.out)?;
        envoy_rss = Some(measured.rss);
        report.add(measured.table, measured.plots);
    }
    if wanted("by-policy") {
        report.add(
            overhead::by_policy(options.quick, &options.out)?,
            Vec::new(),
        );
    }
    if wanted("overload") {
        let (table, plots) = overload::run(&options.out, 10)?;
        report.add(table, plots);
    }
    if wanted("chains") {
        report.add(chains::retry_storm(&options.out)?, Vec::new());
        report.add(chains::deadline_waste(&options.out)?, Vec::new());
    }
    if wanted("harness") {
        report.add(harness::speed(&options.out)?, Vec::new());
        report.add(harness::host_calls(&options.out)?, Vec::new());
    }
    if wanted("footprint") {
        report.add(
            footprint::run(&options.out, options.quick, envoy_rss.as_deref())?,
            Vec::new(),
        );
    }
    Ok(report)
}

/// Writes BENCHMARKS.md beside the JSON and plots; with `--publish`, also at the repository
/// root with the plots copied under [`PUBLISHED_PLOTS`].
fn write(options: &Options, report: &Report) -> Result<(), String> {
    report.write_markdown(&options.out.join("BENCHMARKS.md"), "")?;
    println!("\n(tables, JSON and plots in {})", options.out.display());
    if options.publish {
        let root = ballast_e2e::paths::workspace_root();
        let plots = root.join(PUBLISHED_PLOTS);
        std::fs::create_dir_all(&plots).map_err(|e| format!("{}: {e}", plots.display()))?;
        for plot in report.plots() {
            std::fs::copy(options.out.join(plot), plots.join(plot))
                .map_err(|e| format!("cannot copy {plot}: {e}"))?;
        }
        report.write_markdown(&root.join("BENCHMARKS.md"), PUBLISHED_PLOTS)?;
        println!("(BENCHMARKS.md and {PUBLISHED_PLOTS} updated)");
    }
    Ok(())
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ballast-bench: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&options).and_then(|report| write(&options, &report)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ballast-bench: {e}");
            ExitCode::from(2)
        }
    }
}
