//! The `plugin_events` fuzz target's grammar and properties (`fuzz/src/plugin_events/`) in
//! the ordinary test suite: every input of its committed corpus (inputs libFuzzer kept because
//! each reached new host code), then mutations of them from a seeded generator (byte flips,
//! insertions, deletions, splices: libFuzzer's moves, without its coverage feedback). `make fuzz` runs the same target
//! coverage guided; this replay is its short run in `make test`, without the instrumented
//! build of wasmtime (5 min 20 s cold on 2 cores) that libFuzzer needs.
//!
//! An input that breaks a property is written to `target/plugin-events-failures/` and named
//! in the failure; `cargo +nightly fuzz run plugin_events <file>` (in `host-tests/mock-host`)
//! replays it under libFuzzer, which decodes it to the same scenario.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;
#[path = "../fuzz/src/plugin_events/mod.rs"]
mod plugin_events;

use ballast_mock_host::PluginModule;
use common::{ballast_plugin, Rng};
use plugin_events::Exercised;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/plugin_events");

/// Mutated inputs per run (`BALLAST_PLUGIN_EVENTS_INPUTS` to run more).
const MUTATED_INPUTS: u64 = 20_000;

struct Replay {
    module: PluginModule,
    ran: usize,
    exercised: Exercised,
    failures: Vec<String>,
}

impl Replay {
    fn new() -> Self {
        Replay {
            module: ballast_plugin(),
            ran: 0,
            exercised: Exercised::default(),
            failures: Vec::new(),
        }
    }

    /// Runs one input; a broken property (a panic) is kept as a file and counted.
    fn input(&mut self, name: &str, bytes: &[u8]) {
        let Some(scenario) = plugin_events::decode(bytes) else {
            return;
        };
        self.ran += 1;
        match catch_unwind(AssertUnwindSafe(|| {
            plugin_events::run(&self.module, scenario)
        })) {
            Ok(exercised) => {
                self.exercised.ops += exercised.ops;
                self.exercised.requests += exercised.requests;
            }
            Err(cause) => {
                let cause = cause
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| cause.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let kept = keep_failure(name, bytes);
                self.failures.push(format!("{}: {cause}", kept.display()));
            }
        }
    }

    fn assert_clean(&self) {
        assert!(
            self.failures.is_empty(),
            "{} of {} inputs broke a property:\n{}",
            self.failures.len(),
            self.ran,
            self.failures.join("\n")
        );
    }
}

fn keep_failure(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/plugin-events-failures");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The committed corpus, by file name, in name order.
fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(CORPUS)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= 800,
        "{} corpus files in {CORPUS}",
        files.len()
    );
    files
}

/// One of libFuzzer's mutations, chosen by `rng`, applied to `bytes`.
fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>, donor: &[u8]) {
    let at = |rng: &mut Rng, len: usize| rng.below(len as u64 + 1) as usize;
    match rng.below(5) {
        0 if !bytes.is_empty() => {
            let i = at(rng, bytes.len() - 1);
            bytes[i] ^= 1 << rng.below(8);
        }
        1 => {
            let i = at(rng, bytes.len());
            bytes.insert(i, rng.below(256) as u8);
        }
        2 if !bytes.is_empty() => {
            let i = at(rng, bytes.len() - 1);
            bytes.remove(i);
        }
        3 if !donor.is_empty() => {
            let from = at(rng, donor.len() - 1);
            let to = (from + 1 + rng.below(16) as usize).min(donor.len());
            let i = at(rng, bytes.len());
            bytes.splice(i..i, donor[from..to].iter().copied());
        }
        _ => bytes.extend((0..1 + rng.below(16)).map(|_| rng.below(256) as u8)),
    }
}

#[test]
fn every_committed_corpus_input_holds_every_property() {
    let files = corpus();
    let mut replay = Replay::new();
    for (name, bytes) in &files {
        replay.input(name, bytes);
    }
    replay.assert_clean();
    // libFuzzer keeps only inputs that decode and run; each must still decode to a scenario.
    assert_eq!(
        replay.ran,
        files.len(),
        "corpus inputs that no longer decode"
    );
    // Measured: 713 requests over the 819 inputs of the first corpus, 2,934 over 1,541 now.
    assert!(
        replay.exercised.requests >= files.len() / 2,
        "{:?} over {} inputs: the corpus no longer drives requests",
        replay.exercised,
        files.len()
    );
    eprintln!(
        "plugin_events corpus: {} inputs, {:?}",
        replay.ran, replay.exercised
    );
}

#[test]
fn mutated_corpus_inputs_hold_every_property() {
    let inputs = std::env::var("BALLAST_PLUGIN_EVENTS_INPUTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(MUTATED_INPUTS);
    let files = corpus();
    let seed = 0x5eed_ba11_u64;
    let mut rng = Rng(seed);
    let mut replay = Replay::new();
    for i in 0..inputs {
        let (base, bytes) = rng.pick(&files);
        let (_, donor) = rng.pick(&files);
        let mut bytes = bytes.clone();
        for _ in 0..1 + rng.below(8) {
            mutate(&mut rng, &mut bytes, donor);
        }
        replay.input(&format!("mutated-{i}-of-{base}"), &bytes);
    }
    replay.assert_clean();
    assert!(
        replay.ran as u64 >= inputs / 2,
        "only {} of {inputs} mutated inputs decoded",
        replay.ran
    );
    assert!(
        replay.exercised.requests as u64 >= inputs / 2,
        "{:?}: mutated inputs barely open requests",
        replay.exercised
    );
    eprintln!(
        "plugin_events mutated: {} inputs, {:?}",
        replay.ran, replay.exercised
    );
}
