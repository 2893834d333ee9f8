//! A progress bar for long simulations (simulated milliseconds), hidden when stderr is no terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar up to `end_ns` of simulated time.
pub fn bar(end_ns: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(end_ns / 1_000_000), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} simulated ms ({elapsed})")
    {
        bar.set_style(style);
    }
    bar
}
