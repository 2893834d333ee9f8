//! The instruction program, built while the pattern is read (Thompson's construction).
//!
//! Why a program: the matcher advances every live state by one character at a time, so states
//! must be numbered; a flat list of instructions numbers them and makes each state's successors
//! a jump away. Why built during parsing, with no syntax tree in between: the tree, its
//! destructors and a second pass over it cost more of the .wasm than the few operations below.
//! A piece of the pattern is a *fragment*, the instructions from some start to the end of the
//! program, whose jumps stay inside it or go to its end; a fragment can therefore be moved or
//! copied by shifting its jump targets, which is how repetitions and alternations are built.
//!
//! Counted repetitions are expanded (`x{3}` is three copies of `x`), so a short pattern can ask
//! for a large program (`(x{100}){100}`); every instruction added is counted against
//! [`MAX_INSTRUCTIONS`] before it is added, which bounds both compile time and matching time.

use super::parse::Error;
use super::pike::Look;

/// The most instructions a regex may compile to.
pub(super) const MAX_INSTRUCTIONS: usize = 4096;

/// One state of the automaton.
#[derive(Debug, Clone, Copy)]
pub(super) enum Inst {
    /// Consume one character from `ranges[start..end]`, then go to the next instruction.
    Set(usize, usize),
    /// Go to both instructions.
    Split(usize, usize),
    /// Go to the instruction.
    Jump(usize),
    /// Go to the next instruction if the assertion holds here.
    Look(Look),
    /// The whole value matched (if nothing is left of it).
    Match,
}

impl Inst {
    /// The same instruction in a fragment moved from `from` to `to`.
    fn moved(self, from: usize, to: usize) -> Inst {
        let shift = |target: usize| target.wrapping_sub(from).wrapping_add(to);
        match self {
            Inst::Split(a, b) => Inst::Split(shift(a), shift(b)),
            Inst::Jump(target) => Inst::Jump(shift(target)),
            other => other,
        }
    }
}

/// The program under construction.
#[derive(Default)]
pub(super) struct Program {
    pub(super) insts: Vec<Inst>,
}

impl Program {
    /// Where the next instruction goes.
    pub(super) fn len(&self) -> usize {
        self.insts.len()
    }

    /// Appends an instruction and returns where it is.
    pub(super) fn push(&mut self, inst: Inst) -> Result<usize, Error> {
        self.grow(1)?;
        self.insts.push(inst);
        Ok(self.insts.len().saturating_sub(1))
    }

    pub(super) fn patch(&mut self, at: usize, inst: Inst) {
        if let Some(slot) = self.insts.get_mut(at) {
            *slot = inst;
        }
    }

    fn grow(&self, by: usize) -> Result<(), Error> {
        if self.insts.len().saturating_add(by) > MAX_INSTRUCTIONS {
            return Err(Error(TOO_LARGE, Error::HERE));
        }
        Ok(())
    }

    /// Appends a copy of `fragment`, which was built at `from`.
    fn append(&mut self, fragment: &[Inst], from: usize) -> Result<(), Error> {
        self.grow(fragment.len())?;
        let to = self.insts.len();
        self.insts
            .extend(fragment.iter().map(|inst| inst.moved(from, to)));
        Ok(())
    }

    /// Moves the fragment from `start` one place on, to put a split in front of it (which the
    /// caller patches).
    pub(super) fn fork(&mut self, start: usize) -> Result<(), Error> {
        let fragment = self.insts.split_off(start);
        self.push(Inst::Split(0, 0))?;
        self.append(&fragment, start)
    }

    /// Makes the fragment from `start` to the end repeat at least `min` and at most `max`
    /// (unbounded: `None`) times: `min` copies, then either optional copies up to `max`, each
    /// behind a split that may skip to the end of them all (so `x{0,3}` is `(x(x(x)?)?)?`, and
    /// only one copy is live at a time, not every copy after it), or a split from the end back
    /// into the last copy. (`x*` is one optional copy that loops.)
    pub(super) fn repeat(&mut self, start: usize, min: u32, max: Option<u32>) -> Result<(), Error> {
        let fragment = self.insts.split_off(start);
        if fragment.is_empty() || max == Some(0) {
            return Ok(());
        }
        let (mut last, mut skips) = (start, Vec::new());
        for copy in 0..max.unwrap_or(min.max(1)) {
            if copy >= min {
                skips.push(self.push(Inst::Split(0, 0))?);
            }
            last = self.len();
            self.append(&fragment, start)?;
        }
        if max.is_none() {
            let out = self.len().saturating_add(1);
            self.push(Inst::Split(last, out))?;
        }
        let end = self.len();
        for split in skips {
            self.patch(split, Inst::Split(split.saturating_add(1), end));
        }
        Ok(())
    }
}

const TOO_LARGE: &str = "too large (over 4096 instructions once repetitions are expanded)";
