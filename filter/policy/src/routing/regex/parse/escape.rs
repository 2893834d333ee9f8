//! Backslash escapes and bracketed classes: the parts of the grammar read character by character.
//!
//! Why apart from the rest of the parser: these rules are `regex-lite`'s exact lexical ones
//! (which escapes exist, where `-` is a literal, that `&&`, `--` and `~~` are set operations it
//! refuses, that `[` inside a class only opens a POSIX class), and the differential tests check
//! them against it character by character.

use super::{error, Error, Escape, Parser};
use crate::routing::regex::class::{self, Range};
use crate::routing::regex::pike::Look;

impl Parser<'_> {
    /// The escape after a `\` at `at`; assertions are refused inside a class.
    pub(super) fn escape(&mut self, at: usize, in_class: bool) -> Result<Escape, Error> {
        let Some(c) = self.bump() else {
            return Err(error("pattern ends with a lone '\\'", at));
        };
        let look = match c {
            'A' => Look::Start,
            'z' => Look::End,
            'B' => Look::NotWordBoundary,
            '<' => Look::WordStart,
            '>' => Look::WordEnd,
            'b' => self.word_boundary(at)?,
            _ => {
                return match class::perl(c) {
                    Some(ranges) => Ok(Escape::Class(ranges)),
                    None => self.char_escape(c, at).map(Escape::Char),
                }
            }
        };
        if in_class {
            return Err(error("assertion inside a class", at));
        }
        Ok(Escape::Look(look))
    }

    /// An escape that stands for one character.
    fn char_escape(&mut self, c: char, at: usize) -> Result<char, Error> {
        Ok(match c {
            'a' => '\x07',
            'f' => '\x0C',
            't' => '\t',
            'n' => '\n',
            'r' => '\r',
            'v' => '\x0B',
            'x' | 'u' | 'U' => return self.hex(c, at),
            '0'..='9' => return Err(error("backreferences are not supported", at)),
            'p' | 'P' => return Err(error("Unicode classes are not supported", at)),
            c if c.is_ascii() && !c.is_ascii_alphanumeric() => c,
            _ => return Err(error("unknown escape", at)),
        })
    }

    /// `\b`, or a special word boundary such as `\b{start}`. `\b{2}` is `\b` repeated: only a
    /// letter or `-` after the brace makes it special.
    fn word_boundary(&mut self, at: usize) -> Result<Look, Error> {
        let special = self.peek() == Some('{')
            && self
                .peek2()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '-');
        if !special {
            return Ok(Look::WordBoundary);
        }
        self.bump();
        let names = ["start", "end", "start-half", "end-half"];
        let looks = [
            Look::WordStart,
            Look::WordEnd,
            Look::WordStartHalf,
            Look::WordEndHalf,
        ];
        match self.name(&names).and_then(|i| looks.get(i)) {
            Some(look) if self.eat('}') => Ok(*look),
            _ => Err(error("unknown special word boundary", at)),
        }
    }

    /// `\xHH`, `\uHHHH`, `\UHHHHHHHH` or any of them as `\x{H…}`.
    fn hex(&mut self, kind: char, at: usize) -> Result<char, Error> {
        let braced = self.eat('{');
        let fixed = match kind {
            'x' => 2,
            'u' => 4,
            _ => 8,
        };
        let (mut value, mut digits) = (0u32, 0usize);
        loop {
            if !braced && digits == fixed {
                break;
            }
            match self.bump() {
                Some('}') if braced && digits > 0 => break,
                Some(c) => match c.to_digit(16) {
                    Some(digit) => {
                        value = value.saturating_mul(16).saturating_add(digit);
                        digits = digits.saturating_add(1);
                    }
                    None => return Err(error("invalid hexadecimal escape", at)),
                },
                None => return Err(error("invalid hexadecimal escape", at)),
            }
        }
        char::from_u32(value).ok_or_else(|| error("invalid hexadecimal escape", at))
    }

    /// A bracketed class; the `[` at `open` is already read.
    pub(super) fn class(&mut self, open: usize) -> Result<(), Error> {
        let negated = self.eat('^');
        let mut ranges = Vec::new();
        if self.eat(']') {
            // A `]` first is a literal (and starts no range).
            ranges.push((0x5D, 0x5D));
        } else {
            // So are leading dashes.
            while self.eat('-') {
                ranges.push((0x2D, 0x2D));
            }
        }
        loop {
            let at = self.pos;
            let Some(c) = self.bump() else {
                return Err(error("unclosed class", open));
            };
            match (c, self.peek()) {
                (']', _) => break,
                ('&', Some('&')) | ('~', Some('~')) | ('-', Some('-')) => {
                    return Err(error("class set operations are not supported", at))
                }
                // A dash after a range or a class is a literal, never a range's start.
                ('-', _) => ranges.push((0x2D, 0x2D)),
                ('[', _) => ranges.append(&mut self.posix_class(at)?),
                ('\\', _) => match self.escape(at, true)? {
                    Escape::Char(c) => self.range_from(c, &mut ranges)?,
                    Escape::Class(mut perl) => {
                        if self.peek() == Some('-') && self.peek2() != Some(']') {
                            return Err(error("a range must be between two characters", at));
                        }
                        ranges.append(&mut perl);
                    }
                    Escape::Look(_) => return Err(error("assertion inside a class", at)),
                },
                (c, _) => self.range_from(c, &mut ranges)?,
            }
        }
        self.set(ranges, negated)
    }

    /// `start` alone, or the range `start-end` when a `-` and an end follow.
    fn range_from(&mut self, start: char, ranges: &mut Vec<Range>) -> Result<(), Error> {
        let at = self.pos;
        if self.peek() != Some('-') || self.peek2() == Some(']') {
            ranges.push((u32::from(start), u32::from(start)));
            return Ok(());
        }
        if self.peek2() == Some('-') {
            return Err(error("class set operations are not supported", at));
        }
        self.bump();
        let end = match self.bump() {
            None => return Err(error("unclosed class", at)),
            Some('\\') => match self.escape(self.pos.saturating_sub(1), true)? {
                Escape::Char(c) => c,
                _ => return Err(error("a range must be between two characters", at)),
            },
            Some(c) => c,
        };
        if end < start {
            return Err(error("class range out of order", at));
        }
        ranges.push((u32::from(start), u32::from(end)));
        Ok(())
    }

    /// `[:name:]` or `[:^name:]` inside a class, after its `[` at `at`. Any other `[` would
    /// open a nested class, which `regex-lite` does not have either.
    fn posix_class(&mut self, at: usize) -> Result<Vec<Range>, Error> {
        let nested = || error("nested classes are not supported", at);
        if !self.eat(':') {
            return Err(nested());
        }
        let negated = self.eat('^');
        let index = self.name(&class::POSIX_NAMES);
        if !(self.eat(':') && self.eat(']')) {
            return Err(nested());
        }
        let mut ranges = index.and_then(class::posix).ok_or_else(nested)?;
        if negated {
            ranges = class::negate(&ranges);
        }
        Ok(ranges)
    }
}
