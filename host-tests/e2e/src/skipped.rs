//! Checks that cannot run on this machine say so and are counted, instead of failing or passing
//! in silence.
//!
//! Why: some checks need material a user's clone does not have (Istio's CRD and examples live in
//! `../shared/istio` beside CI's clone only). Such a check returns early after [`skip`], which
//! prints one line naming the check and the reason, and appends that line to the file named by
//! `$BALLAST_SKIP_LOG` (set by the Makefile), so `make test` can say at the end how many checks
//! did not run and why. A skipped check never counts as proof of anything.

use std::io::Write;

/// Records that `check` did not run because of `why`.
pub fn skip(check: &str, why: &str) {
    let line = format!("skipped {check}: {why}");
    eprintln!("{line}");
    let Some(log) = std::env::var_os("BALLAST_SKIP_LOG").filter(|p| !p.is_empty()) else {
        return;
    };
    // One short append per line: O_APPEND keeps lines from parallel tests whole.
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .and_then(|mut file| file.write_all(format!("{line}\n").as_bytes()));
    if let Err(e) = written {
        eprintln!("cannot record the skip in {}: {e}", log.to_string_lossy());
    }
}
