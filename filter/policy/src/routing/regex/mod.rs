//! ballast's own regex engine, for the `regex` operator of route and header conditions.
//!
//! Why our own: the shipped .wasm has a size budget, and `regex-lite` cost 47 KB of it for one
//! operator whose regexes are anchored and only asked "does the whole value match?". That
//! question needs no captures, no search for a match's start and no match priorities, so this
//! engine is a parser (`parse`) that emits a small instruction program as it reads
//! (`compile`), and a simulation of every live state at once (`pike`).
//!
//! What it guarantees, since values come from untrusted clients: matching takes at most
//! (characters + 1) × instructions steps (no backtracking), allocates nothing once its buffers
//! have grown to the largest program, and never panics. The pattern comes from the operator's
//! configuration and is checked when the configuration is loaded: nesting depth and program size
//! are bounded, and anything the engine does not implement is refused with `invalid regex: …`.
//!
//! The syntax is `regex-lite`'s, and differential tests (`differential/`, and the `routing`
//! fuzz target) hold the two to the same answers; the exceptions are refusals: verbose mode
//! `(?x)`, CRLF mode `(?R)`, group names that are not ASCII, classes of more than 4096 items,
//! and programs above 4096 instructions or nested deeper than 49 levels.

use core::cell::RefCell;

mod class;
mod compile;
mod parse;
mod pike;

#[cfg(test)]
mod differential;
#[cfg(test)]
mod tests;

/// What the messages of the refusals `regex-lite` does not make contain, each deliberate
/// (verbose and CRLF modes, non-ASCII group names, programs and classes over their size
/// limits, deep nesting): the differential tests and the fuzz target allow these, and no other
/// difference.
pub const REFUSALS_BEYOND_REGEX_LITE: &[&str] = &[
    "flags x and R",
    "group names must be ASCII",
    "too large",
    "nested more than 49 levels",
    "class of more than",
];

/// A compiled, anchored regex: [`Regex::is_match`] asks whether the whole value matches.
#[derive(Debug, Clone)]
pub struct Regex {
    program: Vec<compile::Inst>,
    ranges: Vec<class::Range>,
}

std::thread_local! {
    /// The matcher's buffers, shared by every regex of this thread (one per worker VM).
    static SCRATCH: RefCell<pike::Scratch> = const { RefCell::new(pike::Scratch::new()) };
}

impl Regex {
    /// Compiles `pattern` to match whole values, ASCII case-insensitively when `ignore_case`
    /// (as if the pattern began with `(?i)`). The error says what is wrong and where:
    /// `invalid regex: unclosed group at character 3`.
    pub fn new(pattern: &str, ignore_case: bool) -> Result<Regex, String> {
        let (program, ranges) = parse::Parser::parse(pattern, ignore_case)?;
        Ok(Regex { program, ranges })
    }

    /// Does the whole of `value` match?
    pub fn is_match(&self, value: &str) -> bool {
        self.run(value).0
    }

    /// The answer and the number of instruction visits it took.
    fn run(&self, value: &str) -> (bool, usize) {
        let run =
            |scratch: &mut pike::Scratch| pike::run(&self.program, &self.ranges, value, scratch);
        SCRATCH
            .try_with(|cell| match cell.try_borrow_mut() {
                Ok(mut scratch) => run(&mut scratch),
                Err(_) => run(&mut pike::Scratch::default()),
            })
            .unwrap_or_else(|_| run(&mut pike::Scratch::default()))
    }
}
