//! The configuration document as a tree: a JSON parser that accepts and refuses exactly what
//! serde_json did, in its words and positions.
//!
//! Why our own: a configuration is parsed once, and `serde` plus `serde_json` (and, through
//! them, float printing and parsing from `core`) were a tenth of the shipped .wasm. Why a tree
//! of our own rather than `serde_json::Value`: objects keep document order (policy sets are
//! numbered in it) and duplicate keys (a duplicate is an error, never a silent overwrite).
//!
//! What is kept from serde_json, so that no configuration changes meaning: the grammar
//! (RFC 8259, no trailing commas, nesting below 128), the three kinds of numbers (an integer
//! without a minus sign, a negative integer, anything with a fraction or an exponent) and how a
//! float is computed from its digits (`number.rs`), and the error messages with their line
//! and column. A syntax error names the path it stopped at, as a shape error does: the key
//! being read (`{"policy_sets": ` fails at `policy_sets`) or the array position.

use super::error::Failure;
use super::error::{push_field, push_index};
use super::ConfigError;

/// One JSON value.
#[derive(Debug, PartialEq)]
pub(crate) enum Node {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer without a minus sign.
    Unsigned(u64),
    /// An integer with a minus sign.
    Signed(i64),
    /// A number with a fraction or an exponent (or an integer too long for 64 bits), and its
    /// text as written, for messages.
    Float(f64, String),
    /// A string.
    Str(String),
    /// An array.
    Array(Vec<Node>),
    /// An object: entries in document order, duplicate keys kept.
    Object(Vec<(String, Node)>),
}

/// Parses a whole document (trailing characters are an error).
pub(crate) fn parse(text: &str) -> Result<Node, Failure> {
    let mut parser = Parser {
        text: text.as_bytes(),
        index: 0,
        depth: 128,
        trail: Vec::new(),
    };
    let parsed = parser.value().and_then(|node| match parser.whitespace() {
        Some(_) => Err(parser.peek_error("trailing characters")),
        None => Ok(node),
    });
    parsed.map_err(|error| {
        let mut path = String::new();
        for step in &parser.trail {
            match step {
                Step::Key(key) => push_field(&mut path, key),
                Step::Index(index) => push_index(&mut path, *index),
            }
        }
        let (line, column) = position(text.as_bytes(), error.at);
        Box::new(ConfigError::new(
            path,
            format!("{} at line {line} column {column}", error.message),
        ))
    })
}

/// A syntax error: serde_json's message, and the byte offset its position is computed from.
struct Syntax {
    message: &'static str,
    at: usize,
}

/// Line (from 1) and column (bytes before `at` on its line) of a byte offset.
fn position(text: &[u8], at: usize) -> (usize, usize) {
    let before = text.get(..at).unwrap_or(text);
    let start_of_line = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |newline| newline + 1);
    let lines = before.iter().filter(|b| **b == b'\n').count();
    (1 + lines, at - start_of_line)
}

/// Where the parser is, one level: the key or the array position being read.
enum Step {
    Key(String),
    Index(usize),
}

struct Parser<'t> {
    text: &'t [u8],
    index: usize,
    /// Containers that may still be opened (serde_json's recursion limit).
    depth: u8,
    /// The path to the value being read; left as it is when an error stops the parse.
    trail: Vec<Step>,
}

type Parsed<T> = Result<T, Syntax>;

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.index).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.index += 1;
        Some(byte)
    }

    /// An error about a byte already read (its position: after it).
    fn error(&self, message: &'static str) -> Syntax {
        Syntax {
            message,
            at: self.index,
        }
    }

    /// An error about the byte not yet read (its position: after it).
    fn peek_error(&self, message: &'static str) -> Syntax {
        Syntax {
            message,
            at: (self.index + 1).min(self.text.len()),
        }
    }

    /// Skips whitespace; the next byte, not consumed.
    fn whitespace(&mut self) -> Option<u8> {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.index += 1;
        }
        self.peek()
    }

    fn value(&mut self) -> Parsed<Node> {
        let Some(first) = self.whitespace() else {
            return Err(self.peek_error("EOF while parsing a value"));
        };
        match first {
            b'n' => self.word(b"null").map(|()| Node::Null),
            b't' => self.word(b"true").map(|()| Node::Bool(true)),
            b'f' => self.word(b"false").map(|()| Node::Bool(false)),
            b'-' | b'0'..=b'9' => self.number(),
            b'"' => {
                self.index += 1;
                self.string().map(Node::Str)
            }
            b'[' | b'{' => {
                self.depth -= 1;
                if self.depth == 0 {
                    return Err(self.peek_error("recursion limit exceeded"));
                }
                self.index += 1;
                let node = if first == b'[' {
                    self.array()?
                } else {
                    self.object()?
                };
                self.depth += 1;
                // The closing bracket, which `array` and `object` stopped at.
                self.index += 1;
                Ok(node)
            }
            _ => Err(self.peek_error("expected value")),
        }
    }

    fn word(&mut self, word: &[u8]) -> Parsed<()> {
        self.index += 1;
        for expected in word.iter().skip(1) {
            match self.next() {
                None => return Err(self.error("EOF while parsing a value")),
                Some(byte) if byte != *expected => return Err(self.error("expected ident")),
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn array(&mut self) -> Parsed<Node> {
        let mut items = Vec::new();
        loop {
            self.trail.push(Step::Index(items.len()));
            let Some(next) = self.whitespace() else {
                return Err(self.peek_error("EOF while parsing a list"));
            };
            if next == b']' {
                self.trail.pop();
                return Ok(Node::Array(items));
            }
            if !items.is_empty() {
                if next != b',' {
                    return Err(self.peek_error("expected `,` or `]`"));
                }
                self.index += 1;
                match self.whitespace() {
                    Some(b']') => return Err(self.peek_error("trailing comma")),
                    Some(_) => {}
                    None => return Err(self.peek_error("EOF while parsing a value")),
                }
            }
            items.push(self.value()?);
            self.trail.pop();
        }
    }

    fn object(&mut self) -> Parsed<Node> {
        let mut entries = Vec::new();
        loop {
            let Some(next) = self.whitespace() else {
                return Err(self.peek_error("EOF while parsing an object"));
            };
            if next == b'}' {
                return Ok(Node::Object(entries));
            }
            let next = if entries.is_empty() {
                next
            } else if next == b',' {
                self.index += 1;
                match self.whitespace() {
                    Some(b'}') => return Err(self.peek_error("trailing comma")),
                    Some(byte) => byte,
                    None => return Err(self.peek_error("EOF while parsing a value")),
                }
            } else {
                return Err(self.peek_error("expected `,` or `}`"));
            };
            if next != b'"' {
                return Err(self.peek_error("key must be a string"));
            }
            self.index += 1;
            let key = self.string()?;
            self.trail.push(Step::Key(key));
            match self.whitespace() {
                Some(b':') => self.index += 1,
                Some(_) => return Err(self.peek_error("expected `:`")),
                None => return Err(self.peek_error("EOF while parsing an object")),
            }
            let value = self.value()?;
            if let Some(Step::Key(key)) = self.trail.pop() {
                entries.push((key, value));
            }
        }
    }

    /// The rest of a string whose opening quote was read.
    fn string(&mut self) -> Parsed<String> {
        let mut out = Vec::new();
        loop {
            let Some(byte) = self.next() else {
                return Err(self.error("EOF while parsing a string"));
            };
            match byte {
                b'"' => break,
                b'\\' => self.escape(&mut out)?,
                0..=0x1f => {
                    return Err(self
                        .error("control character (\\u0000-\\u001F) found while parsing a string"))
                }
                _ => out.push(byte),
            }
        }
        // The document is UTF-8 and escapes add whole characters.
        String::from_utf8(out).map_err(|_| self.error("invalid unicode code point"))
    }

    fn escape(&mut self, out: &mut Vec<u8>) -> Parsed<()> {
        let Some(byte) = self.next() else {
            return Err(self.error("EOF while parsing a string"));
        };
        let plain = match byte {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => return self.unicode_escape(out),
            _ => return Err(self.error("invalid escape")),
        };
        out.push(plain);
        Ok(())
    }

    /// `\u` and its hex digits, and the second half of a surrogate pair.
    fn unicode_escape(&mut self, out: &mut Vec<u8>) -> Parsed<()> {
        let lone = "lone leading surrogate in hex escape";
        let first = self.hex()?;
        let code = match first {
            0xDC00..=0xDFFF => return Err(self.error(lone)),
            0xD800..=0xDBFF => {
                for expected in [b'\\', b'u'] {
                    match self.peek() {
                        None => return Err(self.error("EOF while parsing a string")),
                        Some(byte) => {
                            self.index += 1;
                            if byte != expected {
                                return Err(self.error("unexpected end of hex escape"));
                            }
                        }
                    }
                }
                let second = self.hex()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(self.error(lone));
                }
                0x1_0000 + ((first - 0xD800) << 10 | (second - 0xDC00))
            }
            _ => first,
        };
        let character = char::from_u32(code).ok_or_else(|| self.error("invalid escape"))?;
        let mut buffer = [0; 4];
        out.extend_from_slice(character.encode_utf8(&mut buffer).as_bytes());
        Ok(())
    }

    fn hex(&mut self) -> Parsed<u32> {
        let Some(digits) = self.text.get(self.index..self.index + 4) else {
            self.index = self.text.len();
            return Err(self.error("EOF while parsing a string"));
        };
        self.index += 4;
        digits.iter().try_fold(0, |code, digit| {
            let value = char::from(*digit)
                .to_digit(16)
                .ok_or_else(|| self.error("invalid escape"))?;
            Ok(code << 4 | value)
        })
    }
}

mod number;

#[cfg(test)]
mod tests;
