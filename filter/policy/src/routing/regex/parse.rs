//! Pattern text to an instruction program, with the flags applied as it is read.
//!
//! Why flags are applied here: `(?i)`, `(?s)` and `(?m)` only change what a literal, `.`, a
//! class, `^` or `$` means, so the program holds the resolved meaning (a set of characters, an
//! assertion) and the matcher knows nothing of flags. Groups leave nothing behind: for a yes/no
//! match a group is only its contents.
//!
//! The grammar is `regex-lite`'s, minus what a route rule has no use for and this engine does not
//! implement, which is refused rather than read differently: verbose mode `(?x)`, CRLF mode
//! `(?R)`, and group names that are not ASCII. Nesting is bounded ([`MAX_DEPTH`]), counted the
//! way `regex-lite` counts it or more strictly, so that whatever it refuses as too deep is
//! refused here too, and so that the parser's recursion stays shallow.

use super::class::{self, Range};
use super::compile::{Inst, Program};
use super::pike::Look;

/// How deeply groups, alternations, concatenations and repetitions may nest: one less than
/// `regex-lite`'s 50, which was applied to the pattern inside the anchoring `^(?:…)$`.
pub(super) const MAX_DEPTH: usize = 49;

const TOO_DEEP: &str = "nested more than 49 levels deep";

/// How many ranges one class may list before they are sorted (which takes quadratic time).
const MAX_CLASS_RANGES: usize = 4096;

/// What went wrong and where: a byte offset into the pattern, or [`Error::HERE`] for wherever
/// the parser is. Made into the message once, at the top ([`Parser::parse`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Error(pub(super) &'static str, pub(super) usize);

impl Error {
    /// The position of an error found outside the parser: the parser's own.
    pub(super) const HERE: usize = usize::MAX;
}

fn error(what: &'static str, at: usize) -> Error {
    Error(what, at)
}

#[derive(Clone, Copy)]
struct Flags {
    fold: bool,
    multi_line: bool,
    dot_newline: bool,
}

/// What a backslash escape stands for.
enum Escape {
    Char(char),
    Class(Vec<Range>),
    Look(Look),
}

pub(super) struct Parser<'p> {
    pattern: &'p str,
    /// A byte offset into `pattern`.
    pos: usize,
    flags: Flags,
    program: Program,
    /// The character sets of every `Inst::Set`, back to back.
    ranges: Vec<Range>,
    /// Group names seen so far (duplicates are an error).
    names: Vec<&'p str>,
}

impl<'p> Parser<'p> {
    /// Compiles `pattern`, case-insensitively from the start when `ignore_case`, to a program
    /// and the character sets its `Set` instructions refer to.
    pub(super) fn parse(
        pattern: &'p str,
        ignore_case: bool,
    ) -> Result<(Vec<Inst>, Vec<Range>), String> {
        let mut parser = Parser {
            pattern,
            pos: 0,
            flags: Flags {
                fold: ignore_case,
                multi_line: false,
                dot_newline: false,
            },
            program: Program::default(),
            ranges: Vec::new(),
            names: Vec::new(),
        };
        let compiled = parser.alternation(0).and_then(|_| {
            if parser.peek().is_some() {
                // Only an unmatched `)` stops the top-level alternation early.
                return Err(error("unmatched ')'", parser.pos));
            }
            parser.program.push(Inst::Match)
        });
        if let Err(Error(what, at)) = compiled {
            let at = if at == Error::HERE { parser.pos } else { at };
            let before = pattern.get(..at).unwrap_or(pattern);
            let position = before.chars().fold(1usize, |n, _| n.saturating_add(1));
            return Err(format!("invalid regex: {what} at character {position}"));
        }
        Ok((parser.program.insts, parser.ranges))
    }

    fn rest(&self) -> core::str::Chars<'p> {
        self.pattern.get(self.pos..).unwrap_or_default().chars()
    }

    fn peek(&self) -> Option<char> {
        self.rest().next()
    }

    fn peek2(&self) -> Option<char> {
        let mut rest = self.rest();
        rest.next();
        rest.next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos = self.pos.saturating_add(c.len_utf8());
        Some(c)
    }

    fn eat(&mut self, wanted: char) -> bool {
        let found = self.peek() == Some(wanted);
        if found {
            self.bump();
        }
        found
    }

    /// One level deeper than `height`, if that is allowed.
    fn deeper(&self, height: usize) -> Result<usize, Error> {
        if height >= MAX_DEPTH {
            return Err(error(TOO_DEEP, self.pos));
        }
        Ok(height.saturating_add(1))
    }

    /// Branches separated by `|`; returns how deeply they nest. Each branch but the last gets a
    /// split to the next one in front, once the `|` after it shows there is a next one, and a
    /// jump past the last at its end.
    fn alternation(&mut self, depth: usize) -> Result<usize, Error> {
        let mut branch = self.program.len();
        let mut jumps = Vec::new();
        let mut height = self.concatenation(depth)?;
        while self.eat('|') {
            self.program.fork(branch)?;
            jumps.push(self.program.push(Inst::Jump(0))?);
            let next = self.program.len();
            self.program
                .patch(branch, Inst::Split(branch.saturating_add(1), next));
            branch = next;
            height = height.max(self.concatenation(depth)?);
        }
        if !jumps.is_empty() {
            height = self.deeper(height)?;
        }
        let end = self.program.len();
        for jump in jumps {
            self.program.patch(jump, Inst::Jump(end));
        }
        Ok(height)
    }

    /// Atoms one after the other, each with the repetition operators that follow it. A flag
    /// directive such as `(?i)` is no atom: an operator after it applies to the atom before it
    /// (`a(?i)*` is `a*`), as in `regex-lite`.
    fn concatenation(&mut self, depth: usize) -> Result<usize, Error> {
        let (mut count, mut height) = (0usize, 0);
        // Where the last atom's instructions start, and how deeply it nests.
        let mut last = None;
        while let Some(c) = self.peek() {
            let start = self.program.len();
            let atom_height = match (c, last) {
                ('|' | ')', _) => break,
                ('*' | '+' | '?' | '{', Some((start, atom_height))) => {
                    let (min, max) = self.repetition()?;
                    self.program.repeat(start, min, max)?;
                    let atom_height = self.deeper(atom_height)?;
                    height = height.max(atom_height);
                    last = Some((start, atom_height));
                    continue;
                }
                ('*' | '+' | '?' | '{', None) => {
                    return Err(error(
                        "repetition without an expression before it",
                        self.pos,
                    ))
                }
                ('(', _) => match self.group(depth)? {
                    Some(group) => group,
                    None => continue, // a flag directive
                },
                _ => {
                    self.atom()?;
                    0
                }
            };
            height = height.max(atom_height);
            last = Some((start, atom_height));
            count = count.saturating_add(1);
        }
        if count > 1 {
            height = self.deeper(height)?;
        }
        Ok(height)
    }

    /// A repetition operator: `*`, `+`, `?` or a counted one, each maybe lazy (`x*?`, which
    /// matches the same strings).
    fn repetition(&mut self) -> Result<(u32, Option<u32>), Error> {
        let (min, max) = match self.peek() {
            Some('{') => self.counted()?,
            op => {
                self.bump();
                match op {
                    Some('*') => (0, None),
                    Some('+') => (1, None),
                    _ => (0, Some(1)),
                }
            }
        };
        self.eat('?');
        Ok((min, max))
    }

    /// `{n}`, `{n,}` or `{n,m}`, whitespace allowed around the numbers.
    fn counted(&mut self) -> Result<(u32, Option<u32>), Error> {
        let open = self.pos;
        self.bump();
        self.skip_whitespace();
        let min = self.decimal()?;
        self.skip_whitespace();
        let max = if self.eat(',') {
            if self.peek() == Some('}') {
                None
            } else {
                self.skip_whitespace();
                Some(self.decimal()?)
            }
        } else {
            Some(min)
        };
        self.skip_whitespace();
        if !self.eat('}') {
            return Err(error("unclosed counted repetition", open));
        }
        if max.is_some_and(|max| max < min) {
            return Err(error("counted repetition with min above max", open));
        }
        Ok((min, max))
    }

    /// Reads letters and dashes (a POSIX class or word boundary name), and tells whether they
    /// spell one of `names`; returns its index.
    fn name(&mut self, names: &[&str]) -> Option<usize> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '-')
        {
            self.bump();
        }
        let word = self.pattern.get(start..self.pos);
        names.iter().position(|name| Some(*name) == word)
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    fn decimal(&mut self) -> Result<u32, Error> {
        let start = self.pos;
        let mut value: Option<u32> = Some(0);
        while let Some(digit) = self.peek().and_then(|c| c.to_digit(10)) {
            self.bump();
            value = value
                .and_then(|v| v.checked_mul(10))
                .and_then(|v| v.checked_add(digit));
        }
        match value {
            Some(value) if self.pos > start => Ok(value),
            _ => Err(error("invalid repetition count", start)),
        }
    }

    /// A group, or `None` for a flag directive such as `(?i)`, which changes the flags of the
    /// rest of the enclosing group.
    fn group(&mut self, depth: usize) -> Result<Option<usize>, Error> {
        let open = self.pos;
        self.bump();
        if depth >= MAX_DEPTH {
            return Err(error(TOO_DEEP, open));
        }
        let saved = self.flags;
        if self.eat('?') {
            match self.peek() {
                Some('P') if self.peek2() == Some('<') => {
                    self.bump();
                    self.bump();
                    self.group_name()?;
                }
                Some('<') if !matches!(self.peek2(), Some('=' | '!')) => {
                    self.bump();
                    self.group_name()?;
                }
                Some('=' | '!' | '<') => return Err(error("look-around is not supported", open)),
                _ => {
                    if !self.flag_list(open)? {
                        return Ok(None);
                    }
                }
            }
        }
        let height = self.alternation(depth.saturating_add(1))?;
        if !self.eat(')') {
            return Err(error("unclosed group", open));
        }
        self.flags = saved;
        Ok(Some(self.deeper(height)?))
    }

    /// The name of `(?P<name>…)` or `(?<name>…)`, after the `<`; the name is ignored but must be
    /// valid and unique.
    fn group_name(&mut self) -> Result<(), Error> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']'))
        {
            self.bump();
        }
        let name = self.pattern.get(start..self.pos).unwrap_or_default();
        match self.bump() {
            Some('>') if name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') => {}
            Some(c) if !c.is_ascii() => {
                return Err(error(
                    "group names must be ASCII (letters, digits, _ . [ ])",
                    start,
                ))
            }
            _ => return Err(error("invalid group name", start)),
        }
        if self.names.contains(&name) {
            return Err(error("duplicate group name", start));
        }
        self.names.push(name);
        Ok(())
    }

    /// The flags of `(?flags)` or `(?flags:…)`, after the `?`. Sets them and tells whether a
    /// group follows (`:`) or the directive ended (`)`).
    fn flag_list(&mut self, open: usize) -> Result<bool, Error> {
        let (mut seen, mut negated, mut any, mut dangling) = (0u8, false, false, false);
        loop {
            let at = self.pos;
            let Some(c) = self.bump() else {
                return Err(error("unclosed group", open));
            };
            let bit = match c {
                ':' | ')' if dangling => return Err(error("invalid flag group", at)),
                ')' if !any => return Err(error("invalid flag group", open)),
                ':' | ')' => return Ok(c == ':'),
                '-' if negated => return Err(error("invalid flag group", at)),
                '-' => {
                    (negated, any, dangling) = (true, true, true);
                    continue;
                }
                'x' | 'R' if !negated => {
                    return Err(error(
                        "flags x and R (verbose and CRLF modes) are not supported",
                        at,
                    ))
                }
                'i' => 1,
                'm' => 2,
                's' => 4,
                // Greediness (`U`) does not change whether a value matches; `u` has no effect,
                // nor has turning off x or R, which are never on.
                'U' => 8,
                'u' => 16,
                'x' => 32,
                'R' => 64,
                _ => return Err(error("unknown flag", at)),
            };
            if seen & bit != 0 {
                return Err(error("invalid flag group", at));
            }
            (seen, any, dangling) = (seen | bit, true, false);
            match c {
                'i' => self.flags.fold = !negated,
                'm' => self.flags.multi_line = !negated,
                's' => self.flags.dot_newline = !negated,
                _ => {}
            }
        }
    }

    /// A literal, `.`, `^`, `$`, an escape or a bracketed class.
    fn atom(&mut self) -> Result<(), Error> {
        let at = self.pos;
        let Some(c) = self.bump() else {
            return Ok(());
        };
        let multi_line = self.flags.multi_line;
        let look = match c {
            '\\' => match self.escape(at, false)? {
                Escape::Char(c) => return self.literal(c),
                Escape::Class(ranges) => return self.set(ranges, false),
                Escape::Look(look) => look,
            },
            '[' => return self.class(at),
            '.' => return self.set(class::dot(self.flags.dot_newline), false),
            '^' if multi_line => Look::LineStart,
            '^' => Look::Start,
            '$' if multi_line => Look::LineEnd,
            '$' => Look::End,
            c => return self.literal(c),
        };
        self.program.push(Inst::Look(look)).map(drop)
    }

    fn literal(&mut self, c: char) -> Result<(), Error> {
        self.set(vec![(u32::from(c), u32::from(c))], false)
    }

    /// Compiles a set of characters (case-folded under `(?i)`, then negated if asked).
    fn set(&mut self, mut ranges: Vec<Range>, negated: bool) -> Result<(), Error> {
        if ranges.len() > MAX_CLASS_RANGES {
            return Err(error("class of more than 4096 items", self.pos));
        }
        class::canonicalize(&mut ranges);
        if self.flags.fold {
            class::fold_ascii(&mut ranges);
        }
        if negated {
            ranges = class::negate(&ranges);
        }
        let start = self.ranges.len();
        self.ranges.append(&mut ranges);
        self.program
            .push(Inst::Set(start, self.ranges.len()))
            .map(drop)
    }
}

mod escape;
