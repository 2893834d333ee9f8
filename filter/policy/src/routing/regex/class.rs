//! Sets of characters: the one thing the engine compares a character against.
//!
//! Why one representation: a literal, `.`, `[a-z]`, `\d`, a POSIX class, each of them case-folded
//! or negated, all become one sorted list of code point ranges. The matcher then has a single
//! instruction that consumes a character, and the compiler a single thing to copy. Only ASCII
//! knowledge is built in, as in `regex-lite`: `\w`, `\d`, `\s`, the POSIX classes and case
//! folding are ASCII-only, which keeps Unicode tables out of the .wasm.

/// An inclusive range of Unicode scalar values, as `u32` so that negation can step over the
/// surrogate gap without a conversion that could fail.
pub(super) type Range = (u32, u32);

/// The largest Unicode scalar value.
const MAX_CHAR: u32 = 0x10_FFFF;

/// `\d`, `\s`, `\w` (ASCII, as in `regex-lite`), by the letter of their escape.
pub(super) fn perl(letter: char) -> Option<Vec<Range>> {
    let ranges: &[(u8, u8)] = match letter.to_ascii_lowercase() {
        'd' => DIGIT,
        's' => SPACE,
        'w' => WORD,
        _ => return None,
    };
    let ranges = widen(ranges);
    Some(if letter.is_ascii_uppercase() {
        negate(&ranges)
    } else {
        ranges
    })
}

const DIGIT: &[(u8, u8)] = &[(b'0', b'9')];
const SPACE: &[(u8, u8)] = &[(b'\t', b'\r'), (b' ', b' ')];
const WORD: &[(u8, u8)] = &[(b'0', b'9'), (b'A', b'Z'), (b'_', b'_'), (b'a', b'z')];

/// The names of the POSIX ASCII classes allowed inside brackets (`[[:alpha:]]`).
pub(super) const POSIX_NAMES: [&str; 14] = [
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

/// Their ranges, in the same order.
const POSIX: [&[(u8, u8)]; 14] = [
    &[(b'0', b'9'), (b'A', b'Z'), (b'a', b'z')],
    &[(b'A', b'Z'), (b'a', b'z')],
    &[(0, 0x7F)],
    &[(b'\t', b'\t'), (b' ', b' ')],
    &[(0, 0x1F), (0x7F, 0x7F)],
    DIGIT,
    &[(b'!', b'~')],
    &[(b'a', b'z')],
    &[(b' ', b'~')],
    &[(b'!', b'/'), (b':', b'@'), (b'[', b'`'), (b'{', b'~')],
    SPACE,
    &[(b'A', b'Z')],
    WORD,
    &[(b'0', b'9'), (b'A', b'F'), (b'a', b'f')],
];

/// The POSIX class at `index` of [`POSIX_NAMES`].
pub(super) fn posix(index: usize) -> Option<Vec<Range>> {
    POSIX.get(index).map(|ranges| widen(ranges))
}

fn widen(ranges: &[(u8, u8)]) -> Vec<Range> {
    ranges
        .iter()
        .map(|&(lo, hi)| (u32::from(lo), u32::from(hi)))
        .collect()
}

/// `.`: every character, or every character but `\n`.
pub(super) fn dot(with_newline: bool) -> Vec<Range> {
    if with_newline {
        vec![(0, MAX_CHAR)]
    } else {
        vec![(0, 9), (11, MAX_CHAR)]
    }
}

/// Sorts the ranges and merges those that overlap or touch. An insertion sort: classes are
/// short (the parser bounds them), and the library's sort would add kilobytes to the .wasm.
pub(super) fn canonicalize(ranges: &mut Vec<Range>) {
    for i in 1..ranges.len() {
        let mut j = i;
        while let (Some(before), Some(here)) = (ranges.get(j.wrapping_sub(1)), ranges.get(j)) {
            if before <= here {
                break;
            }
            ranges.swap(j - 1, j);
            j -= 1;
        }
    }
    let mut merged: Vec<Range> = Vec::with_capacity(ranges.len());
    for &(lo, hi) in ranges.iter() {
        match merged.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    *ranges = merged;
}

/// Every character not in `ranges` (which must be canonical).
pub(super) fn negate(ranges: &[Range]) -> Vec<Range> {
    let mut out = Vec::with_capacity(ranges.len().saturating_add(1));
    let mut next = 0;
    for &(lo, hi) in ranges {
        if lo > next {
            out.push((next, lo.saturating_sub(1)));
        }
        next = hi.saturating_add(1);
    }
    if next <= MAX_CHAR {
        out.push((next, MAX_CHAR));
    }
    out
}

/// Adds the other ASCII case of the letters in canonical `ranges`, the way `regex-lite` does:
/// each range gains the upper case of its lower-case letters or, when it has none, the lower
/// case of its upper-case letters (so `(?i)[M-c]` adds `A-C` but not `m-z`; a range from an
/// upper-case letter to a lower-case one is the only case where this differs from folding
/// every letter).
pub(super) fn fold_ascii(ranges: &mut Vec<Range>) {
    const CASE: u32 = 0x20;
    let mut added = Vec::new();
    for &(lo, hi) in ranges.iter() {
        let (lower_lo, lower_hi) = (lo.max(0x61), hi.min(0x7A));
        let (upper_lo, upper_hi) = (lo.max(0x41), hi.min(0x5A));
        if lower_lo <= lower_hi {
            added.push((lower_lo - CASE, lower_hi - CASE));
        } else if upper_lo <= upper_hi {
            added.push((upper_lo + CASE, upper_hi + CASE));
        }
    }
    if !added.is_empty() {
        ranges.append(&mut added);
        canonicalize(ranges);
    }
}

/// Is `c` in the canonical `ranges`?
pub(super) fn contains(ranges: &[Range], c: char) -> bool {
    let c = u32::from(c);
    for &(lo, hi) in ranges {
        if c < lo {
            return false;
        }
        if c <= hi {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::test;

    #[test]
    fn canonical_negated_and_folded() {
        let mut ranges = vec![(5, 9), (0, 2), (3, 4), (20, 30), (25, 26)];
        canonicalize(&mut ranges);
        assert_eq!(ranges, [(0, 9), (20, 30)]);
        assert_eq!(negate(&ranges), [(10, 19), (31, MAX_CHAR)]);
        assert_eq!(negate(&[]), [(0, MAX_CHAR)]);
        assert!(negate(&[(0, MAX_CHAR)]).is_empty());
        let mut letters = vec![(u32::from('b'), u32::from('d'))];
        fold_ascii(&mut letters);
        assert_eq!(letters, [(0x42, 0x44), (0x62, 0x64)]);
        // regex-lite's rule: a range from `M` to `c` gains `A-C` only.
        let mut mixed = vec![(u32::from('M'), u32::from('c'))];
        fold_ascii(&mut mixed);
        assert!(contains(&mixed, 'A') && contains(&mixed, 'M') && !contains(&mixed, 'm'));
    }

    #[test]
    fn named_classes() {
        let word = perl('w').unwrap();
        assert!(contains(&word, '_') && contains(&word, 'Z') && !contains(&word, 'é'));
        let not_space = perl('S').unwrap();
        assert!(contains(&not_space, 'é') && !contains(&not_space, '\u{b}'));
        assert!(perl('x').is_none());
        let punct = posix(9).unwrap();
        assert_eq!(POSIX_NAMES[9], "punct");
        assert!(contains(&punct, '`') && contains(&punct, '~') && !contains(&punct, 'a'));
        assert!(posix(14).is_none());
        assert!(!contains(&dot(false), '\n') && contains(&dot(true), '\n'));
    }
}
