//! The matcher: every live state of the automaton advanced together, one character at a time.
//!
//! Why this and not backtracking: the values come from untrusted clients, and a backtracking
//! matcher takes exponential time on patterns such as `(a*)*b`. Here each character costs at most
//! one visit per instruction (a state already live at a position is not visited again), so a
//! match costs at most (characters + 1) × instructions steps, whatever the pattern and value.
//! Only whether the whole value matches is wanted, so there are no captures and no priorities:
//! a set of states is all there is, and laziness cannot change the answer.
//!
//! The buffers are sized by the program and reused from match to match ([`Scratch`]), so a
//! match allocates nothing once a program of that size has run.

use super::class::{self, Range};
use super::compile::Inst;

/// An assertion about the characters on either side of a position (ASCII words, as in
/// `regex-lite`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Look {
    /// `^`, `\A`: the start of the value.
    Start,
    /// `$`, `\z`: the end of the value.
    End,
    /// `(?m)^`: the start of the value or of a line.
    LineStart,
    /// `(?m)$`: the end of the value or of a line.
    LineEnd,
    /// `\b`: a word character on one side only.
    WordBoundary,
    /// `\B`: word characters on both sides or on neither.
    NotWordBoundary,
    /// `\<`, `\b{start}`: a word starts here.
    WordStart,
    /// `\>`, `\b{end}`: a word ends here.
    WordEnd,
    /// `\b{start-half}`: no word character before.
    WordStartHalf,
    /// `\b{end-half}`: no word character after.
    WordEndHalf,
}

impl Look {
    fn holds(self, before: Option<char>, after: Option<char>) -> bool {
        let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let (word_before, word_after) = (word(before), word(after));
        match self {
            Look::Start => before.is_none(),
            Look::End => after.is_none(),
            Look::LineStart => matches!(before, None | Some('\n')),
            Look::LineEnd => matches!(after, None | Some('\n')),
            Look::WordBoundary => word_before != word_after,
            Look::NotWordBoundary => word_before == word_after,
            Look::WordStart => !word_before && word_after,
            Look::WordEnd => word_before && !word_after,
            Look::WordStartHalf => !word_before,
            Look::WordEndHalf => !word_after,
        }
    }
}

/// The matcher's working memory, kept between matches.
#[derive(Default)]
pub(super) struct Scratch {
    /// Per instruction: the step at which it was last made live.
    seen: Vec<usize>,
    /// Live states waiting for the current character.
    current: Vec<usize>,
    /// Live states waiting for the next one.
    next: Vec<usize>,
    /// Instructions still to follow within one step.
    stack: Vec<usize>,
}

impl Scratch {
    pub(super) const fn new() -> Self {
        Scratch {
            seen: Vec::new(),
            current: Vec::new(),
            next: Vec::new(),
            stack: Vec::new(),
        }
    }
}

/// One position of the value: the step number and the characters around it.
#[derive(Clone, Copy)]
struct At {
    step: usize,
    before: Option<char>,
    after: Option<char>,
}

/// Does the program match all of `value`? Also returns the number of instruction visits, the
/// measure of work the tests bound.
pub(super) fn run(
    program: &[Inst],
    ranges: &[Range],
    value: &str,
    scratch: &mut Scratch,
) -> (bool, usize) {
    let Scratch {
        seen,
        current,
        next,
        stack,
    } = scratch;
    seen.clear();
    seen.resize(program.len(), 0);
    current.clear();
    let mut steps = 0;
    let mut chars = value.chars();
    let mut at = At {
        step: 1,
        before: None,
        after: chars.next(),
    };
    follow(program, 0, at, seen, stack, current, &mut steps);
    while let Some(c) = at.after {
        if current.is_empty() {
            return (false, steps);
        }
        at = At {
            step: at.step.saturating_add(1),
            before: Some(c),
            after: chars.next(),
        };
        next.clear();
        for &pc in current.iter() {
            if let Some(Inst::Set(start, end)) = program.get(pc) {
                if class::contains(ranges.get(*start..*end).unwrap_or_default(), c) {
                    follow(
                        program,
                        pc.saturating_add(1),
                        at,
                        seen,
                        stack,
                        next,
                        &mut steps,
                    );
                }
            }
        }
        core::mem::swap(current, next);
    }
    let matched = current
        .iter()
        .any(|&pc| matches!(program.get(pc), Some(Inst::Match)));
    (matched, steps)
}

/// Makes `pc` live at `at`, with everything reachable from it without consuming a character;
/// the states that consume one (and `Match`) go to `live`.
fn follow(
    program: &[Inst],
    pc: usize,
    at: At,
    seen: &mut [usize],
    stack: &mut Vec<usize>,
    live: &mut Vec<usize>,
    steps: &mut usize,
) {
    let mut visit = |pc: usize, stack: &mut Vec<usize>| {
        if let Some(mark) = seen.get_mut(pc) {
            if *mark != at.step {
                *mark = at.step;
                stack.push(pc);
            }
        }
    };
    visit(pc, stack);
    while let Some(pc) = stack.pop() {
        *steps = steps.saturating_add(1);
        match program.get(pc) {
            Some(Inst::Jump(to)) => visit(*to, stack),
            Some(Inst::Split(first, second)) => {
                visit(*second, stack);
                visit(*first, stack);
            }
            Some(Inst::Look(look)) if look.holds(at.before, at.after) => {
                visit(pc.saturating_add(1), stack);
            }
            Some(Inst::Set(..) | Inst::Match) => live.push(pc),
            Some(Inst::Look(_)) | None => {}
        }
    }
}

#[cfg(test)]
impl Scratch {
    /// How much the buffers hold, to check that matches reuse them.
    pub(super) fn capacity(&self) -> usize {
        self.seen.capacity()
            + self.current.capacity()
            + self.next.capacity()
            + self.stack.capacity()
    }
}
