//! One table row per feature: the pattern, values it must match and values it must not. Then the
//! refusals, with the words their message must contain, and the bound on work.

use super::Regex;
use crate::test_support::test;

fn re(pattern: &str) -> Regex {
    match Regex::new(pattern, false) {
        Ok(regex) => regex,
        Err(err) => panic!("{pattern:?}: {err}"),
    }
}

#[test]
fn features_match_what_they_should() {
    #[rustfmt::skip]
    let rows: &[(&str, &[&str], &[&str])] = &[
        // literals and escapes
        ("", &[""], &["a"]),
        ("abc", &["abc"], &["ab", "abcd", "ABC", "xabc"]),
        ("é/😀", &["é/😀"], &["e/😀", "é/"]),
        (r"\.\/\\\t\n\-\ \#\&\~", &["./\\\t\n- #&~"], &[]),
        (r"\x41\x{1F600}\u0062\u{63}\U00000064\U{65}", &["A😀bcde"], &[]),
        (r"\a\f\v\r", &["\x07\x0C\x0B\r"], &[]),
        // any character, Perl classes (ASCII)
        (".", &["a", "é", "😀", "\r"], &["", "\n", "ab"]),
        ("(?s).", &["\n"], &[]),
        (r"\d\D", &["0a", "9é"], &["a0", "00", "٣a"]),
        (r"\w+", &["a_Z9"], &["é", "a-b"]),
        (r"\W", &["-", "é"], &["_"]),
        (r"\s\S", &["\tx", " é"], &["\u{a0}x", "xx"]),
        // bracketed classes
        ("[a-c_0-9]+", &["abc", "_9"], &["d", "A", ""]),
        ("[^a-c]", &["d", "é", "\n"], &["a", ""]),
        ("[]a]", &["]", "a"], &["b"]),
        ("[^]a]", &["b"], &["]", "a"]),
        ("[-a]", &["-", "a"], &["b"]),
        ("[a-]", &["-", "a"], &["b"]),
        ("[--a]", &["-", "a"], &["0"]),
        ("[a-b-c]", &["a", "-", "c"], &["0"]),
        (r"[\[\]\\^]", &["[", "]", "\\", "^"], &["a"]),
        (r"[\d\s]", &["1", " "], &["a"]),
        (r"[\W]", &["-"], &["a"]),
        ("[[:alpha:][:digit:]]", &["a", "Z", "5"], &["_"]),
        ("[[:^alpha:]]", &["5", "é"], &["a"]),
        ("[[:punct:]]", &["!", "`", "~", "["], &["a", " "]),
        ("[[:xdigit:]]+", &["09afAF"], &["g"]),
        ("[:alpha:]", &[":", "a"], &["b"]),
        (r"[^\s\S]", &[], &["a", "", " "]),
        ("[😀-😂]", &["😁"], &["😃"]),
        // groups, alternation
        ("(a|bc)d", &["ad", "bcd"], &["abcd", "d"]),
        ("(?:ab)+", &["ab", "abab"], &["", "aba"]),
        ("(?P<first>a)(?<second>b)", &["ab"], &["a"]),
        ("a|", &["a", ""], &["b"]),
        ("|b", &["", "b"], &["a"]),
        ("()", &[""], &["a"]),
        ("(|a)+", &["", "aaa"], &["b"]),
        // repetitions, greedy and lazy alike
        ("a*", &["", "aaaa"], &["b"]),
        ("a+?", &["a", "aa"], &[""]),
        ("a??b", &["b", "ab"], &["aab"]),
        ("a{3}", &["aaa"], &["aa", "aaaa"]),
        ("a{2,}", &["aa", "aaaaa"], &["a"]),
        ("a{1,3}?", &["a", "aaa"], &["", "aaaa"]),
        ("a{ 2 , 3 }", &["aa", "aaa"], &["a"]),
        ("a{0}", &[""], &["a"]),
        ("a**", &["", "aa"], &["b"]),
        ("ab(?i)*", &["a", "abb"], &["aB"]),
        ("a{2}{3}", &["aaaaaa"], &["aaaa"]),
        ("(a{2}|b)*c", &["c", "aabaac"], &["ac"]),
        ("[a-z0-9-]{1,5}", &["a", "a-9zz"], &["", "abcdef"]),
        // anchors and boundaries
        ("^a$", &["a"], &["aa"]),
        (r"\Aa\z", &["a"], &[]),
        ("a^b", &[], &["ab"]),
        ("a$|b", &["a", "b"], &[]),
        ("(?m)a$\n^b", &["a\nb"], &["ab"]),
        ("a$\n", &[], &["a\n"]),
        (r"a\b", &["a"], &[]),
        (r"a\b.", &["a-", "a "], &["ab", "a_"]),
        (r"a\B.", &["ab", "a_"], &["a-"]),
        (r"\b", &[], &[""]),
        (r"\B", &[""], &[]),
        (r".\<a\>.", &["-a-"], &["bab", "-ab"]),
        (r".\b{start}a\b{end}.", &["-a-"], &["bab"]),
        (r".\b{start-half}a\b{end-half}.", &["-a-"], &["bab", "-ab"]),
        (r"é\b", &[], &["é"]),
        (r"\b{2}a", &["a"], &[]),
        // flags
        ("(?i)abc", &["abc", "AbC"], &["abd"]),
        ("a(?i)b|c", &["aB", "C"], &[]),
        ("(?:a(?i)b)|c", &["aB", "c"], &["C"]),
        ("(a(?i))b", &["ab"], &["aB"]),
        ("(?i:a)b", &["Ab"], &["AB"]),
        ("(?i)a(?-i)b", &["Ab"], &["AB"]),
        ("(?i)é", &["é"], &["É"]),
        ("(?i)k", &["K", "k"], &["\u{212A}"]),
        ("(?i)[a-c]", &["B"], &["D"]),
        ("(?i)[^a]", &["b"], &["a", "A"]),
        ("(?i)[[:upper:]]", &["a", "A"], &["1"]),
        ("(?i)[M-c]", &["A", "M", "c"], &["m"]), // regex-lite's folding of mixed ranges
        ("(?U)a+", &["aa"], &[]),
        ("(?u)a(?-u)b(?-x)c(?-R)", &["abc"], &[]),
        ("(?ms).$", &["\n"], &[]),
    ];
    for (pattern, yes, no) in rows {
        let regex = re(pattern);
        for value in *yes {
            assert!(regex.is_match(value), "{pattern:?} should match {value:?}");
        }
        for value in *no {
            assert!(
                !regex.is_match(value),
                "{pattern:?} should not match {value:?}"
            );
        }
    }
}

#[test]
fn ignore_case_is_case_insensitive_from_the_start() {
    let regex = Regex::new("ab[c-d]", true).unwrap();
    assert!(regex.is_match("ABD"));
    let regex = Regex::new("a(?-i)b", true).unwrap();
    assert!(regex.is_match("Ab") && !regex.is_match("AB"));
}

#[test]
fn refusals_say_what_and_where() {
    #[rustfmt::skip]
    let rows: &[(&str, &str)] = &[
        ("(a", "unclosed group at character 1"),
        ("a)", "unmatched ')' at character 2"),
        ("(?:a", "unclosed group"),
        ("[a", "unclosed class at character 1"),
        ("[]", "unclosed class"),
        ("[z-a]", "out of order"),
        (r"[\d-z]", "between two characters"),
        ("[a&&b]", "set operations"),
        ("[a--b]", "set operations"),
        ("[a~~b]", "set operations"),
        ("[[a]]", "nested classes"),
        ("[[:foo:]]", "nested classes"),
        (r"[\b]", "assertion"),
        ("*", "without an expression"),
        ("a|+", "without an expression"),
        ("(?i)*", "without an expression"),
        ("a|(?i)*", "without an expression"),
        ("a{", "invalid repetition count at character 3"),
        ("a{2", "unclosed counted repetition at character 2"),
        ("a{x}", "invalid repetition count"),
        ("a{,2}", "invalid repetition count"),
        ("a{2, }", "invalid repetition count"),
        ("a{4294967296}", "invalid repetition count"),
        ("a{3,2}", "min above max"),
        (r"\1", "backreferences"),
        (r"\pL", "Unicode classes"),
        (r"\e", "unknown escape"),
        (r"\é", "unknown escape"),
        ("a\\", "lone '\\'"),
        (r"\x4", "hexadecimal"),
        (r"\x{}", "hexadecimal"),
        (r"\x{110000}", "hexadecimal"),
        (r"\uD800", "hexadecimal"),
        (r"\b{foo}", "special word boundary"),
        (r"\b{start", "special word boundary"),
        ("(?=a)", "look-around"),
        ("(?<!a)", "look-around"),
        ("(?)", "flag"),
        ("(?i-)", "flag"),
        ("(?ii)", "flag"),
        ("(?-i-s)", "flag"),
        ("(?z)", "flag"),
        ("(?x)a b", "flags x and R"),
        ("(?R)", "flags x and R"),
        ("(?P<>a)", "group name"),
        ("(?P<1a>a)", "group name"),
        ("(?P<a-b>a)", "group name"),
        ("(?P<a>a)(?P<a>b)", "duplicate group name"),
        ("(?P<é>a)", "must be ASCII"),
        ("(?P=a)", "flag"),
        ("a{5000}", "too large"),
        ("(a{100}){100}", "too large"),
        ("a{4294967295}{4294967295}", "too large"),
    ];
    for (pattern, expected) in rows {
        match Regex::new(pattern, false) {
            Ok(_) => panic!("{pattern:?} was accepted"),
            Err(err) => {
                assert!(err.starts_with("invalid regex: "), "{pattern:?}: {err}");
                assert!(
                    err.contains(expected),
                    "{pattern:?}: {err} lacks {expected:?}"
                );
                assert!(!err.contains('\n'), "{pattern:?}: {err}");
            }
        }
    }
}

#[test]
fn nesting_is_bounded() {
    let deep = |n: usize| format!("{}a{}", "(".repeat(n), ")".repeat(n));
    assert!(Regex::new(&deep(49), false).is_ok());
    let err = Regex::new(&deep(50), false).unwrap_err();
    assert!(err.contains("nested more than 49 levels deep"), "{err}");
    // Deep enough to overflow a stack if the parser recursed without a bound.
    assert!(Regex::new(&deep(100_000), false).is_err());
    assert!(Regex::new(&format!("a{}", "*".repeat(100_000)), false).is_err());
    assert!(Regex::new(&"(a|".repeat(30), false).is_err());
}

#[test]
fn size_limit_counts_expanded_repetitions() {
    assert!(Regex::new("a{4095}", false).is_ok());
    // The README's examples.
    let host = Regex::new("[a-z0-9.-]{1,253}", false).unwrap();
    assert_eq!(host.program.len(), 505 + 1, "505 and `Match`");
    assert!(Regex::new(r"([a-z0-9-]{1,63}\.){1,40}", false).is_err());
    assert!(Regex::new("a{4096}", false).is_err());
    // Repeating nothing is nothing, however often.
    assert!(Regex::new("(?:){4294967295}{4294967295}", false).is_ok());
    assert!(Regex::new("(?:a{0}){4294967295}", false).is_ok());
}

/// Matching is linear: at most one visit per instruction per position, on patterns that make
/// backtracking engines take exponential time.
#[test]
fn pathological_patterns_stay_linear() {
    for pattern in [
        "(a*)*b",
        "(a|a)*c",
        "(a|aa)+$b",
        "(.*)*x",
        "(?:a?){30}a{30}",
        "(\\b|a)*z",
    ] {
        let regex = re(pattern);
        for len in [10, 100, 1000, 10_000] {
            let value = "a".repeat(len);
            let (matched, steps) = regex.run(&value);
            assert!(!matched, "{pattern:?}");
            let bound = (len + 1) * regex.program.len();
            assert!(
                steps <= bound,
                "{pattern:?} on {len}: {steps} steps > {bound}"
            );
        }
    }
    // A long value that matches is as cheap.
    let regex = re("(?:a|b)*(?:a|b)*c");
    let value = format!("{}c", "ab".repeat(5000));
    let (matched, steps) = regex.run(&value);
    assert!(matched && steps <= (value.len() + 1) * regex.program.len());
}

#[test]
fn buffers_are_reused_between_matches() {
    let regex = re("[a-z]+(?:-[a-z]+)*");
    assert!(regex.is_match("abc-def"));
    let capacity = || super::SCRATCH.with(|s| s.borrow().capacity());
    let before = capacity();
    for value in ["x", "abc-def-ghi", "no match!", ""] {
        regex.is_match(value);
    }
    assert_eq!(capacity(), before);
}
