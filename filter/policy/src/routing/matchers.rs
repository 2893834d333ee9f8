//! String and header conditions used by routing and trust rules.
//!
//! Why our own small matcher: Envoy's `StringMatcher` semantics (exact, prefix, suffix, contains,
//! regex, `ignore_case`) are what platform engineers already know, and the plugin must evaluate
//! them without allocating on the request path. Regexes use ballast's own small engine
//! ([`super::regex`]); patterns are anchored (a regex must match the whole value, as in Envoy's
//! `safe_regex`).

use super::regex::Regex;

/// One string operator, compiled once at configuration time.
#[derive(Debug, Clone)]
pub enum StringMatcher {
    /// The whole value equals the pattern.
    Exact(String),
    /// The value starts with the pattern.
    Prefix(String),
    /// The value ends with the pattern.
    Suffix(String),
    /// The value contains the pattern.
    Contains(String),
    /// The whole value matches the (anchored) regex.
    Regex(Regex),
}

/// A [`StringMatcher`] plus case sensitivity.
#[derive(Debug, Clone)]
pub struct StringMatch {
    /// The operator and its pattern.
    pub matcher: StringMatcher,
    /// Compare ASCII letters case-insensitively (regexes are compiled with `(?i)` instead).
    pub ignore_case: bool,
}

impl StringMatch {
    /// Does `value` satisfy this condition?
    pub fn matches(&self, value: &str) -> bool {
        let eq = |a: &str, b: &str| {
            if self.ignore_case {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        };
        match &self.matcher {
            StringMatcher::Exact(pattern) => eq(value, pattern),
            StringMatcher::Prefix(pattern) => value
                .get(..pattern.len())
                .is_some_and(|head| eq(head, pattern)),
            StringMatcher::Suffix(pattern) => value
                .len()
                .checked_sub(pattern.len())
                .and_then(|start| value.get(start..))
                .is_some_and(|tail| eq(tail, pattern)),
            StringMatcher::Contains(pattern) => {
                if self.ignore_case {
                    contains_ignore_ascii_case(value, pattern)
                } else {
                    value.contains(pattern.as_str())
                }
            }
            StringMatcher::Regex(regex) => regex.is_match(value),
        }
    }
}

fn contains_ignore_ascii_case(haystack: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Compiles a user regex so that it must match the whole value.
pub(crate) fn compile_anchored(pattern: &str, ignore_case: bool) -> Result<Regex, String> {
    Regex::new(pattern, ignore_case)
}

/// What a header condition asks of the header.
#[derive(Debug, Clone)]
pub enum HeaderCondition {
    /// `present: true` — the header exists; `present: false` — it does not.
    Present(bool),
    /// The header exists and its value satisfies the matcher (or, with `invert`, does not).
    Value {
        /// The value condition.
        matcher: StringMatch,
        /// Match when the value does *not* satisfy the matcher (an absent header still fails).
        invert: bool,
    },
}

/// A condition on one request header (name stored lower-case, as proxies deliver it).
#[derive(Debug, Clone)]
pub struct HeaderMatch {
    /// Lower-case header name.
    pub name: String,
    /// What must hold of it.
    pub condition: HeaderCondition,
}

impl HeaderMatch {
    /// Evaluates the condition given the header's value, `None` when absent.
    pub fn matches(&self, value: Option<&str>) -> bool {
        match (&self.condition, value) {
            (HeaderCondition::Present(wanted), value) => *wanted == value.is_some(),
            (HeaderCondition::Value { .. }, None) => false,
            (HeaderCondition::Value { matcher, invert }, Some(value)) => {
                matcher.matches(value) != *invert
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::test;

    fn m(matcher: StringMatcher, ignore_case: bool) -> StringMatch {
        StringMatch {
            matcher,
            ignore_case,
        }
    }

    #[test]
    fn string_operators() {
        let rows: Vec<(StringMatch, &str, bool)> = vec![
            (m(StringMatcher::Exact("/a".into()), false), "/a", true),
            (m(StringMatcher::Exact("/a".into()), false), "/A", false),
            (m(StringMatcher::Exact("/a".into()), true), "/A", true),
            (
                m(StringMatcher::Prefix("/api".into()), false),
                "/api/v1",
                true,
            ),
            (m(StringMatcher::Prefix("/api".into()), false), "/ap", false),
            (
                m(StringMatcher::Prefix("/API".into()), true),
                "/api/v1",
                true,
            ),
            (
                m(StringMatcher::Suffix(".com".into()), false),
                "x.com",
                true,
            ),
            (m(StringMatcher::Suffix(".com".into()), false), "com", false),
            (
                m(StringMatcher::Contains("mid".into()), false),
                "amidst",
                true,
            ),
            (
                m(StringMatcher::Contains("MID".into()), true),
                "amidst",
                true,
            ),
            (
                m(StringMatcher::Contains("zz".into()), true),
                "amidst",
                false,
            ),
            (
                m(
                    StringMatcher::Regex(compile_anchored("/v[0-9]+/.*", false).unwrap()),
                    false,
                ),
                "/v2/x",
                true,
            ),
            (
                m(
                    StringMatcher::Regex(compile_anchored("/v[0-9]+", false).unwrap()),
                    false,
                ),
                "/v2/x",
                false,
            ),
            (
                m(
                    StringMatcher::Regex(compile_anchored("abc", true).unwrap()),
                    true,
                ),
                "ABC",
                true,
            ),
        ];
        for (i, (matcher, value, expected)) in rows.iter().enumerate() {
            assert_eq!(
                matcher.matches(value),
                *expected,
                "row {i}: {matcher:?} vs {value}"
            );
        }
    }

    #[test]
    fn multibyte_values_do_not_panic() {
        let prefix = m(StringMatcher::Prefix("é".into()), false);
        assert!(!prefix.matches("e"));
        assert!(prefix.matches("éa"));
        let suffix = m(StringMatcher::Suffix("a".into()), false);
        assert!(!suffix.matches("é"));
    }

    #[test]
    fn header_conditions() {
        let present = HeaderMatch {
            name: "x-a".into(),
            condition: HeaderCondition::Present(true),
        };
        assert!(present.matches(Some("")));
        assert!(!present.matches(None));
        let absent = HeaderMatch {
            name: "x-a".into(),
            condition: HeaderCondition::Present(false),
        };
        assert!(absent.matches(None));
        let inverted = HeaderMatch {
            name: "x-a".into(),
            condition: HeaderCondition::Value {
                matcher: m(StringMatcher::Exact("canary".into()), false),
                invert: true,
            },
        };
        assert!(inverted.matches(Some("stable")));
        assert!(!inverted.matches(Some("canary")));
        assert!(
            !inverted.matches(None),
            "absent header never satisfies a value condition"
        );
    }

    #[test]
    fn bad_regex_reason_is_one_line() {
        let err = compile_anchored("(unclosed", false).unwrap_err();
        assert!(err.starts_with("invalid regex"), "{err}");
        assert!(!err.contains('\n'));
    }
}
