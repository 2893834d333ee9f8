//! The engine against `regex-lite`, the library it replaces, pattern by pattern.
//!
//! Why: a route rule that changes meaning when the engine changes sends traffic to the wrong
//! policy set without any error. So for many patterns of the supported grammar (random syntax
//! trees printed to text) and many values (ASCII and multi-byte, most made to nearly match), our
//! answer must be `regex-lite`'s anchored answer; every pattern it refuses must be refused here
//! too; and a pattern refused here that it accepts must be one of the documented exceptions.
//! Then the lexical corners (class bodies, escapes, flag groups, counted repetitions) are
//! enumerated exhaustively over small alphabets, where a generator would rarely go.

mod generate;

use super::Regex;
use crate::test_support::test;
use generate::{enumerate, generate, strings, values, Rng};

/// Patterns per randomised test (fewer under wasm, where tests run in an interpreter-like VM).
const PATTERNS: usize = if cfg!(target_arch = "wasm32") {
    1_500
} else {
    15_000
};

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
                super::REFUSALS_BEYOND_REGEX_LITE
                    .iter()
                    .any(|e| ours.contains(e)),
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
    let alphabet = [
        "1", "2", "0", ",", " ", "}", "{", "x", "?", "*", "\u{a0}", "\u{85}", "\n", "é", "-",
    ];
    let values = strings(&["", "a", "aa", "aaa", "aaaa", "a}", "a{"]);
    let mut tally = Tally::default();
    for before in ["a{", "(a|){", "a*{", "\\b{"] {
        let depth = if cfg!(target_arch = "wasm32") { 3 } else { 4 };
        for pattern in enumerate(&alphabet, depth, before, "") {
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
