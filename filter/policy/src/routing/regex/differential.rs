//! The engine against `regex-lite`, the library it replaces, pattern by pattern.
//!
//! Why: a route rule that changes meaning when the engine changes sends traffic to the wrong
//! policy set without any error. So for many patterns of the supported grammar (random syntax
//! trees printed to text) and many values (ASCII and multi-byte, most made to nearly match), our
//! answer must be `regex-lite`'s anchored answer; every pattern it refuses must be refused here
//! too; and a pattern refused here that it accepts must be one of the documented exceptions.
//! Then the lexical corners (class bodies, escapes, flag groups, counted repetitions) are
//! enumerated exhaustively over small alphabets, where a generator would rarely go.

use super::Regex;
use crate::test_support::test;

/// Patterns per randomised test (fewer under wasm, where tests run in an interpreter-like VM).
const PATTERNS: usize = if cfg!(target_arch = "wasm32") {
    1_500
} else {
    15_000
};

/// xorshift64*: deterministic, so a failure names its seed and pattern.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() >> 33).unwrap() % n.max(1)
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// Characters values are made of, and literals of patterns.
const ALPHABET: &[char] = &[
    'a', 'b', 'c', 'k', 's', 'z', 'A', 'B', 'K', 'S', 'Z', '0', '9', '_', '-', '/', '.', ' ', '\n',
    '\t', 'é', 'É', 'ß', 'ſ', '\u{212A}', '😀', '[', ']', '^', '&', '~', ':', '\\',
];

/// Escapes and other atoms outside classes, with a value each matches ("" for assertions).
const ATOMS: &[(&str, &str)] = &[
    (r"\.", "."),
    (r"\/", "/"),
    (r"\\", "\\"),
    (r"\t", "\t"),
    (r"\n", "\n"),
    (r"\x41", "A"),
    (r"\x{e9}", "é"),
    (r"\u0062", "b"),
    (r"\U0001F600", "😀"),
    (r"\-", "-"),
    (r"\ ", " "),
    (r"\#", "#"),
    (r"\d", "7"),
    (r"\D", "x"),
    (r"\w", "_"),
    (r"\W", "é"),
    (r"\s", " "),
    (r"\S", "ß"),
    (".", "a"),
    ("^", ""),
    ("$", ""),
    (r"\A", ""),
    (r"\z", ""),
    (r"\b", ""),
    (r"\B", ""),
    (r"\<", ""),
    (r"\>", ""),
    (r"\b{start}", ""),
    (r"\b{end}", ""),
    (r"\b{start-half}", ""),
    (r"\b{end-half}", ""),
];

/// Items of a bracketed class, with a character each contains.
const CLASS_ITEMS: &[(&str, char)] = &[
    ("a", 'a'),
    ("z", 'z'),
    ("K", 'K'),
    ("0", '0'),
    ("_", '_'),
    ("é", 'é'),
    ("😀", '😀'),
    ("a-c", 'b'),
    ("A-Z", 'Q'),
    ("0-9", '5'),
    ("M-c", '_'),
    ("Z-a", '^'),
    ("y-~", '{'),
    ("é-ü", 'ö'),
    (r"\x00-\x7F", 'q'),
    (r"\-", '-'),
    (r"\]", ']'),
    (r"\[", '['),
    (r"\\", '\\'),
    (r"\^", '^'),
    (r"\n", '\n'),
    (r"\d", '3'),
    (r"\W", '-'),
    (r"\s", ' '),
    (r"\S", 'é'),
    ("[:alpha:]", 'x'),
    ("[:^digit:]", 'y'),
    ("[:upper:]", 'U'),
    ("[:punct:]", '!'),
    ("[:xdigit:]", 'f'),
    ("[:space:]", '\t'),
    ("&", '&'),
    ("~", '~'),
    (".", '.'),
];

const GROUPS: &[&str] = &[
    "(", "(?:", "(?i:", "(?-i:", "(?s:", "(?m:", "(?U:", "(?is:", "(?i-s:",
];
const FLAG_DIRECTIVES: &[&str] = &["(?i)", "(?-i)", "(?s)", "(?m)", "(?U)", "(?i-m)", "(?u)"];
const REPEATS: &[(&str, usize, usize)] = &[
    ("*", 0, 3),
    ("+", 1, 3),
    ("?", 0, 1),
    ("{2}", 2, 2),
    ("{0}", 0, 0),
    ("{1,}", 1, 3),
    ("{0,2}", 0, 2),
    ("{1,3}", 1, 3),
    ("{ 2 , 3 }", 2, 3),
];

/// A random pattern: printed as text, and able to make a value it (probably) matches.
enum Gen {
    Literal(char),
    Atom(&'static str, &'static str),
    Class(String, Vec<char>),
    Group(String, Box<Gen>),
    Flags(&'static str),
    Concat(Vec<Gen>),
    Alt(Vec<Gen>),
    Repeat(Box<Gen>, String, usize, usize),
}

fn generate(rng: &mut Rng, depth: usize, names: &mut usize) -> Gen {
    let leaf = depth == 0 || rng.chance(35);
    match rng.below(if leaf { 4 } else { 8 }) {
        0 | 1 => Gen::Literal(rng.pick(ALPHABET)),
        2 => {
            let (text, sample) = rng.pick(ATOMS);
            Gen::Atom(text, sample)
        }
        3 => class(rng),
        4 => {
            let opener = if rng.chance(15) {
                *names += 1;
                format!("(?{}<g{names}>", if rng.chance(50) { "P" } else { "" })
            } else {
                rng.pick(GROUPS).to_string()
            };
            Gen::Group(opener, Box::new(generate(rng, depth - 1, names)))
        }
        5 => Gen::Concat(
            (0..1 + rng.below(4))
                .map(|_| {
                    if rng.chance(8) {
                        Gen::Flags(rng.pick(FLAG_DIRECTIVES))
                    } else {
                        generate(rng, depth - 1, names)
                    }
                })
                .collect(),
        ),
        6 => Gen::Alt(
            (0..2 + rng.below(3))
                .map(|_| generate(rng, depth - 1, names))
                .collect(),
        ),
        _ => {
            let (op, min, max) = rng.pick(REPEATS);
            let lazy = if rng.chance(20) { "?" } else { "" };
            let inner = generate(rng, depth - 1, names);
            // A repetition needs an expression before it: group what could be several atoms.
            let inner = match inner {
                Gen::Concat(_) | Gen::Alt(_) | Gen::Flags(_) => {
                    Gen::Group("(?:".into(), Box::new(inner))
                }
                other => other,
            };
            Gen::Repeat(Box::new(inner), format!("{op}{lazy}"), min, max)
        }
    }
}

fn class(rng: &mut Rng) -> Gen {
    let negated = rng.chance(25);
    let mut text = String::from(if negated { "[^" } else { "[" });
    let mut samples = Vec::new();
    for _ in 0..1 + rng.below(4) {
        let (item, sample) = rng.pick(CLASS_ITEMS);
        text.push_str(item);
        samples.push(sample);
    }
    text.push(']');
    if negated {
        samples = vec![rng.pick(ALPHABET)];
    }
    Gen::Class(text, samples)
}

impl Gen {
    fn print(&self, out: &mut String) {
        match self {
            Gen::Literal(c) => {
                if "\\.+*?()|[]{}^$".contains(*c) {
                    out.push('\\');
                }
                out.push(*c);
            }
            Gen::Atom(text, _) | Gen::Flags(text) => out.push_str(text),
            Gen::Class(text, _) => out.push_str(text),
            Gen::Group(opener, inner) => {
                out.push_str(opener);
                inner.print(out);
                out.push(')');
            }
            Gen::Concat(items) => items.iter().for_each(|item| item.print(out)),
            Gen::Alt(branches) => {
                for (i, branch) in branches.iter().enumerate() {
                    if i > 0 {
                        out.push('|');
                    }
                    branch.print(out);
                }
            }
            Gen::Repeat(inner, op, _, _) => {
                inner.print(out);
                out.push_str(op);
            }
        }
    }

    fn sample(&self, rng: &mut Rng, out: &mut String) {
        match self {
            Gen::Literal(c) if rng.chance(20) => {
                out.extend(c.to_uppercase().chain(c.to_lowercase()).take(1))
            }
            Gen::Literal(c) => out.push(*c),
            Gen::Atom(_, sample) => out.push_str(sample),
            Gen::Class(_, samples) => out.push(rng.pick(samples)),
            Gen::Group(_, inner) => inner.sample(rng, out),
            Gen::Flags(_) => {}
            Gen::Concat(items) => items.iter().for_each(|item| item.sample(rng, out)),
            Gen::Alt(branches) => branches[rng.below(branches.len())].sample(rng, out),
            Gen::Repeat(inner, _, min, max) => {
                for _ in 0..min + rng.below(max - min + 1) {
                    inner.sample(rng, out);
                }
            }
        }
    }
}

/// Values to try a pattern on: samples it should match, near misses, and random strings.
fn values(rng: &mut Rng, gen: &Gen) -> Vec<String> {
    let mut values = vec![String::new()];
    for _ in 0..8 {
        let mut sample = String::new();
        gen.sample(rng, &mut sample);
        let mut chars: Vec<char> = sample.chars().collect();
        values.push(sample);
        if !chars.is_empty() {
            let at = rng.below(chars.len());
            match rng.below(3) {
                0 => {
                    chars.remove(at);
                }
                1 => chars.insert(at, rng.pick(ALPHABET)),
                _ => chars[at] = rng.pick(ALPHABET),
            }
            values.push(chars.into_iter().collect());
        }
    }
    for _ in 0..8 {
        let len = rng.below(7);
        values.push((0..len).map(|_| rng.pick(ALPHABET)).collect());
    }
    values
}

/// Refusals of ours that `regex-lite` does not make, each deliberate (see the module doc of
/// `super`).
const DOCUMENTED_EXCEPTIONS: &[&str] = &[
    "flags x and R",
    "group names must be ASCII",
    "too large",
    "nested more than 49 levels",
    "class of more than",
];

#[derive(Default, Debug)]
struct Tally {
    patterns: usize,
    both_accept: usize,
    both_refuse: usize,
    exceptions: usize,
    comparisons: usize,
    matches: usize,
}

/// Compares one pattern on `values`; panics on any disagreement.
fn compare(pattern: &str, ignore_case: bool, values: &[String], tally: &mut Tally) {
    tally.patterns += 1;
    let theirs = regex_lite::Regex::new(pattern).and_then(|_| {
        regex_lite::RegexBuilder::new(&format!("^(?:{pattern})$"))
            .case_insensitive(ignore_case)
            .build()
    });
    let ours = Regex::new(pattern, ignore_case);
    match (theirs, ours) {
        (Err(_), Err(_)) => tally.both_refuse += 1,
        (Err(theirs), Ok(_)) => {
            panic!(
                "{pattern:?} (ignore_case {ignore_case}): regex-lite refuses ({theirs}), we accept"
            )
        }
        (Ok(_), Err(ours)) => {
            assert!(
                DOCUMENTED_EXCEPTIONS.iter().any(|e| ours.contains(e)),
                "{pattern:?}: regex-lite accepts, we refuse: {ours}"
            );
            tally.exceptions += 1;
        }
        (Ok(theirs), Ok(ours)) => {
            tally.both_accept += 1;
            for value in values {
                let expected = theirs.is_match(value);
                assert_eq!(
                    ours.is_match(value),
                    expected,
                    "{pattern:?} (ignore_case {ignore_case}) on {value:?}"
                );
                tally.comparisons += 1;
                tally.matches += usize::from(expected);
            }
        }
    }
}

#[test]
fn generated_patterns_agree_with_regex_lite() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut tally = Tally::default();
    for _ in 0..PATTERNS {
        let mut names = 0;
        let gen = generate(&mut rng, 4, &mut names);
        let mut pattern = String::new();
        gen.print(&mut pattern);
        let values = values(&mut rng, &gen);
        compare(&pattern, rng.chance(20), &values, &mut tally);
    }
    // Most generated patterns are valid, and a fair share of the values match.
    assert!(tally.both_accept * 10 > tally.patterns * 9, "{tally:?}");
    assert!(tally.matches * 5 > tally.comparisons, "{tally:?}");
    #[cfg(not(target_arch = "wasm32"))]
    println!("generated: {tally:?}");
}

/// Random edits of generated patterns, with syntax characters: mostly invalid or odd patterns,
/// which must be refused whenever `regex-lite` refuses them.
#[test]
fn mutated_patterns_are_refused_when_regex_lite_refuses_them() {
    const SYNTAX: &[char] = &[
        '(', ')', '[', ']', '{', '}', '|', '*', '+', '?', '\\', '^', '$', '-', ',', '&', '~', ':',
        '<', '>', '=', '!', 'P', 'i', 'x', 'R', 'u', 'b', 'd', 'p', '0', '1', '9', ' ', 'é',
    ];
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut tally = Tally::default();
    for _ in 0..PATTERNS {
        let mut names = 0;
        let gen = generate(&mut rng, 3, &mut names);
        let mut pattern = String::new();
        gen.print(&mut pattern);
        let mut chars: Vec<char> = pattern.chars().collect();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(chars.len() + 1);
            match rng.below(3) {
                0 if at < chars.len() => {
                    chars.remove(at);
                }
                1 if at < chars.len() => chars[at] = rng.pick(SYNTAX),
                _ => chars.insert(at, rng.pick(SYNTAX)),
            }
        }
        let pattern: String = chars.into_iter().collect();
        let values = values(&mut rng, &gen);
        compare(&pattern, rng.chance(20), &values, &mut tally);
    }
    assert!(tally.both_refuse * 5 > tally.patterns, "{tally:?}");
    #[cfg(not(target_arch = "wasm32"))]
    println!("mutated: {tally:?}");
}

/// Every string of up to `len` pieces from `alphabet`, between `before` and `after`.
fn enumerate(alphabet: &[&str], len: usize, before: &str, after: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut layer = vec![String::new()];
    for _ in 0..len {
        layer = layer
            .iter()
            .flat_map(|s| alphabet.iter().map(move |piece| format!("{s}{piece}")))
            .collect();
        out.extend(layer.iter().cloned());
    }
    out.into_iter()
        .map(|s| format!("{before}{s}{after}"))
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn class_bodies_agree_with_regex_lite() {
    let alphabet = [
        "a",
        "z",
        "-",
        "&",
        "~",
        "]",
        "[",
        ":",
        "^",
        r"\d",
        r"\-",
        r"\b",
        "[:alpha:]",
        "é",
    ];
    let depth = if cfg!(target_arch = "wasm32") { 3 } else { 4 };
    let values = strings(&[
        "", "a", "b", "z", "-", "&", "~", "]", "[", ":", "^", "0", "5", "x", "é", "A", "\\",
    ]);
    let mut tally = Tally::default();
    for pattern in enumerate(&alphabet, depth, "[", "]") {
        compare(&pattern, false, &values, &mut tally);
    }
    for pattern in enumerate(&alphabet, 2, "(?i)[^", "]") {
        compare(&pattern, false, &values, &mut tally);
    }
    assert!(
        tally.both_accept > 1000 && tally.both_refuse > 1000,
        "{tally:?}"
    );
}

#[test]
fn escapes_agree_with_regex_lite() {
    let mut tally = Tally::default();
    let values = strings(&["", "a", "A", "\x07", "\u{b}", "-", "é", "😀", " "]);
    let chars = (' '..='~').chain(['é', '😀', '\t']);
    for c in chars {
        for pattern in [format!("\\{c}"), format!("[\\{c}]"), format!("a[b-\\{c}]")] {
            let mut values = values.clone();
            values.push(c.to_string());
            compare(&pattern, false, &values, &mut tally);
        }
    }
    let hex = [
        "x",
        "x4",
        "x41",
        "x{",
        "x{}",
        "x{41",
        "x{41}",
        "x{0041}",
        "x{10FFFF}",
        "x{110000}",
        "x{D800}",
        "xD8",
        "u004",
        "u0041",
        "u{41}",
        "uD800",
        "U00000041",
        "U0010FFFF",
        "U00110000",
        "U{41}",
        "x{ 41}",
        "xg1",
        "b{start}",
        "b{end}",
        "b{start-half}",
        "b{x}",
        "b{2}",
        "b{ 2}",
        "b{",
        "b{start",
        "b{-}",
        "b{_}",
        "pL",
        "p{L}",
        "0",
        "1",
    ];
    for h in hex {
        for pattern in [format!("\\{h}"), format!("[\\{h}]"), format!("a\\{h}")] {
            compare(&pattern, false, &values, &mut tally);
        }
    }
    assert!(
        tally.both_accept > 100 && tally.both_refuse > 100,
        "{tally:?}"
    );
}

#[test]
fn flag_groups_agree_with_regex_lite() {
    let alphabet = [
        "i", "m", "s", "U", "u", "-", "x", "R", "z", ":", "P", "<", "=",
    ];
    let values = strings(&["", "a", "A", "aA", "\n"]);
    let mut tally = Tally::default();
    for after in [")a", "a)", ")(?-i)A", ":A)a", ":.)"] {
        for pattern in enumerate(&alphabet, 3, "(?", after) {
            compare(&pattern, false, &values, &mut tally);
        }
    }
    for pattern in enumerate(&["a", "-", ">", "1", "é", "_", "."], 3, "(?P<", ">x)") {
        compare(&pattern, false, &strings(&["x"]), &mut tally);
    }
    assert!(
        tally.both_accept > 100 && tally.both_refuse > 100,
        "{tally:?}"
    );
}

#[test]
fn counted_repetitions_agree_with_regex_lite() {
    let alphabet = ["1", "2", "0", ",", " ", "}", "{", "x", "?", "*"];
    let values = strings(&["", "a", "aa", "aaa", "aaaa", "a}", "a{"]);
    let mut tally = Tally::default();
    for before in ["a{", "(a|){", "a*{", "\\b{"] {
        for pattern in enumerate(&alphabet, 4, before, "") {
            compare(&pattern, false, &values, &mut tally);
        }
    }
    assert!(
        tally.both_accept > 100 && tally.both_refuse > 100,
        "{tally:?}"
    );
}

/// Deep nesting that `regex-lite` refuses is refused here too (its limit counts differently).
#[test]
fn deep_nesting_is_refused_when_regex_lite_refuses_it() {
    let mut tally = Tally::default();
    let pieces: [(&str, &str); 6] = [
        ("(", ")"),
        ("(?:", ")"),
        ("(a|", ")"),
        ("(?:a|", ")*"),
        ("(?:", ")*"),
        ("(ab", ")"),
    ];
    for (open, close) in pieces {
        for n in [10, 24, 25, 26, 33, 49, 50, 51, 60] {
            let pattern = format!("{}a{}", open.repeat(n), close.repeat(n));
            compare(&pattern, false, &strings(&["a"]), &mut tally);
        }
    }
    for n in [49, 50, 51] {
        compare(&format!("a{}", "*".repeat(n)), false, &[], &mut tally);
        compare(&format!("a{}", "{1}".repeat(n)), false, &[], &mut tally);
    }
}
