//! `ballast-sim run SCENARIO [--seed N] [--json OUT] [--plots DIR] [--html OUT] [--wasm PATH]`
//!
//! Exit status: 0 when every expectation held, 1 when one did not, 2 on any error.

mod html;

use ballast_sim::{load, plots, report, run, Options};
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "ballast-sim",
    version,
    about = "Simulate a ballast policy configuration under load"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario and report per-class outcomes.
    Run {
        /// Scenario file (JSON), e.g. examples/scenarios/steady-overload.json.
        scenario: PathBuf,
        /// Seed (overrides the scenario's).
        #[arg(long)]
        seed: Option<u64>,
        /// Write the full report as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Write SVG plots into this directory.
        #[arg(long)]
        plots: Option<PathBuf>,
        /// Write the report as one self-contained HTML page (tables, expectations, plots) here.
        #[arg(long)]
        html: Option<PathBuf>,
        /// The plugin .wasm (default: $BALLAST_WASM, else target/ballast.wasm).
        #[arg(long)]
        wasm: Option<PathBuf>,
        /// Print nothing but errors and failed expectations.
        #[arg(long)]
        quiet: bool,
    },
}

fn default_wasm() -> PathBuf {
    std::env::var_os("BALLAST_WASM")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/ballast.wasm"))
}

fn main() -> ExitCode {
    let Cli { command } = Cli::parse();
    let Command::Run {
        scenario,
        seed,
        json,
        plots: plot_dir,
        html: html_path,
        wasm,
        quiet,
    } = command;
    let options = Options {
        wasm: wasm.unwrap_or_else(default_wasm),
        seed,
        progress: !quiet && std::io::stderr().is_terminal(),
    };
    let simulated = load(&scenario).and_then(|loaded| {
        let outcome = run(&loaded, &options)?;
        let report = report::build(&loaded, &outcome);
        Ok((loaded, report))
    });
    let (loaded, report) = match simulated {
        Ok(both) => both,
        Err(err) => {
            eprintln!("ballast-sim: {err}");
            return ExitCode::from(2);
        }
    };
    if let Some(path) = &json {
        let written = serde_json::to_vec_pretty(&report)
            .map_err(|e| e.to_string())
            .and_then(|bytes| std::fs::write(path, bytes).map_err(|e| e.to_string()));
        if let Err(err) = written {
            eprintln!("ballast-sim: cannot write {}: {err}", path.display());
            return ExitCode::from(2);
        }
    }
    if let Some(dir) = &plot_dir {
        match plots::write(&report, dir) {
            Ok(files) if !quiet => eprintln!("plots: {}", files.join(", ")),
            Ok(_) => {}
            Err(err) => {
                eprintln!("ballast-sim: {err}");
                return ExitCode::from(2);
            }
        }
    }
    if let Some(path) = &html_path {
        if let Err(err) = html::write(&loaded, &report, path) {
            eprintln!("ballast-sim: {err}");
            return ExitCode::from(2);
        }
        if !quiet {
            eprintln!("html: {}", path.display());
        }
    }
    if quiet {
        for check in report.expectations.iter().filter(|c| !c.ok) {
            println!("FAIL {} (actual {})", check.what, check.actual);
        }
    } else {
        print!("{}", report::table(&report));
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
