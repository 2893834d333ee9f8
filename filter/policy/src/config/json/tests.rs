//! The parser against serde_json, whose behaviour it keeps: the same documents accepted with the
//! same values, the same refused with the same message, line and column.

use super::*;
use crate::test_support::test;

/// A small deterministic generator (xorshift), so the cases are the same on every run.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// `text` parsed by both: equal trees, or the same error message. Floats are compared bit
/// for bit only where both parsers are exact (this test's serde_json may be built with
/// `float_roundtrip`, which the .wasm's is not); `float_value_rounds_as_serde_json_did` covers
/// the rest.
fn agrees(text: &str) {
    let ours = parse(text);
    let theirs: Result<serde_json::Value, _> = serde_json::from_str(text);
    match (ours, theirs) {
        (Ok(node), Ok(value)) => assert!(same(&node, &value), "{text}: {node:?} vs {value:?}"),
        (Err(err), Err(expected)) => {
            assert_eq!(err.reason, expected.to_string(), "{text}")
        }
        (ours, theirs) => panic!("{text}: {ours:?} vs {theirs:?}"),
    }
}

fn same(node: &Node, value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (node, value) {
        (Node::Null, Value::Null) => true,
        (Node::Bool(a), Value::Bool(b)) => a == b,
        (Node::Unsigned(a), Value::Number(b)) => b.as_u64() == Some(*a),
        (Node::Signed(a), Value::Number(b)) => b.is_i64() && b.as_i64() == Some(*a),
        (Node::Float(a, text), Value::Number(b)) => {
            b.is_f64() && (!exact(text) || b.as_f64().map(f64::to_bits) == Some(a.to_bits()))
        }
        (Node::Str(a), Value::String(b)) => a == b,
        (Node::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b))
        }
        // Without duplicate keys (serde_json keeps the last one, sorted).
        (Node::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(key, a)| b.get(key).is_some_and(|b| same(a, b)))
        }
        _ => false,
    }
}

/// At most 15 significant digits and a power of ten within ±22: every correct parser gives the
/// same float.
fn exact(text: &str) -> bool {
    let (mantissa, exponent) = text.split_once(['e', 'E']).unwrap_or((text, "0"));
    let digits = mantissa
        .trim_start_matches(['-', '0', '.'])
        .replace('.', "");
    let fraction = mantissa.split_once('.').map_or(0, |(_, f)| f.len());
    let power = exponent.parse::<i64>().unwrap_or(i64::MAX) - i64::try_from(fraction).unwrap();
    digits.len() <= 15 && (-22..=22).contains(&power)
}

#[test]
fn keeps_order_duplicates_and_number_kinds() {
    let node = parse(r#"{"b": [1, -2, 3.5, 4e0], "a": null, "b": {"x": true, "s": "t"}}"#).unwrap();
    let expected = Node::Object(vec![
        (
            "b".into(),
            Node::Array(vec![
                Node::Unsigned(1),
                Node::Signed(-2),
                Node::Float(3.5, "3.5".into()),
                Node::Float(4.0, "4e0".into()),
            ]),
        ),
        ("a".into(), Node::Null),
        (
            "b".into(),
            Node::Object(vec![
                ("x".into(), Node::Bool(true)),
                ("s".into(), Node::Str("t".into())),
            ]),
        ),
    ]);
    assert_eq!(node, expected);
}

#[test]
fn syntax_errors_name_the_path_they_stopped_at() {
    let rows = [
        (
            r#"{"policy_sets": "#,
            "policy_sets",
            "EOF while parsing a value at line 1 column 16",
        ),
        (
            r#"{"a": [1, {"b": [tru]}]}"#,
            "a[1].b[0]",
            "expected ident at line 1 column 21",
        ),
        (
            r#"{"a": [1, 2"#,
            "a[2]",
            "EOF while parsing a list at line 1 column 11",
        ),
        (
            r#"{"a": 1e999}"#,
            "a",
            "number out of range at line 1 column 11",
        ),
        (
            r#"{"a": {"b": 1,}}"#,
            "a",
            "trailing comma at line 1 column 15",
        ),
        (
            r#"{"a": {"b" 1}}"#,
            "a.b",
            "expected `:` at line 1 column 12",
        ),
        (
            r#"{"a": {1: 1}}"#,
            "a",
            "key must be a string at line 1 column 8",
        ),
        (
            "{\"a\":\n [\"x\ny\"]}",
            "a[0]",
            "control character (\\u0000-\\u001F) found while parsing a string at line 3 column 0",
        ),
        ("{} {}", "", "trailing characters at line 1 column 4"),
    ];
    for (text, path, reason) in rows {
        let err = parse(text).unwrap_err();
        assert_eq!(
            (err.path.as_str(), err.reason.as_str()),
            (path, reason),
            "{text}"
        );
        agrees(text);
    }
}

#[test]
fn agrees_with_serde_json_on_the_edges_of_the_grammar() {
    let rows = [
        "null",
        "true",
        "false",
        "nul",
        "tru",
        "fals",
        "nulx",
        "0",
        "-0",
        "-",
        "-x",
        "01",
        "1.",
        "1.x",
        "1e",
        "1e+",
        "1e-x",
        "1E5",
        "1e-5",
        "-1.5e+3",
        ".5",
        "+1",
        "0.0000000000000000000001",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "-9223372036854775809",
        "-18446744073709551616",
        "184467440737095516160.1",
        "1844674407370955161.99999",
        "12345678901234567890123456789.123456789e-5",
        "1e2147483647",
        "1e2147483648",
        "0e2147483648",
        "1e-2147483648",
        "-1e99999999999",
        "1e308",
        "1.7976931348623157e308",
        "1.8e308",
        "1e-330",
        "4.9e-324",
        "2.5e-324",
        "\"\\u0041\\u00e9\\u4e2d\\ud83d\\ude00\"",
        "\"\\ud83d\"",
        "\"\\ud83dx\"",
        "\"\\ud83d\\x\"",
        "\"\\ude00\"",
        "\"\\ud83d\\u0041\"",
        "\"\\u12\"",
        "\"\\u12g4\"",
        "\"\\q\"",
        "\"\\",
        "\"a",
        "\"\u{7f}é\"",
        "\"\\/\\b\\f\\n\\r\\t\\\"\\\\\"",
        "[",
        "[1",
        "[1,",
        "[1,]",
        "[,1]",
        "[1 2]",
        "{",
        "{\"a\"",
        "{\"a\":",
        "{\"a\":1",
        "{\"a\":1,",
        "{\"a\":1,}",
        "{,}",
        "{\"a\" 1}",
        "{\"a\":1 \"b\":2}",
        "{\"a\":1,2}",
        " \t\r\n[ ]\n",
        "[]x",
        "\u{a0}1",
    ];
    for text in rows {
        agrees(text);
    }
    let deep = |depth: usize| "[".repeat(depth) + &"]".repeat(depth);
    agrees(&deep(127));
    agrees(&deep(128));
}

#[test]
fn agrees_with_serde_json_on_random_numbers() {
    let mut state = 0x9e37_79b9_7f4a_7c15;
    let digit = |state: &mut u64| char::from(b'0' + u8::try_from(next(state) % 10).unwrap());
    for _ in 0..4000 {
        let mut text = String::new();
        if next(&mut state).is_multiple_of(2) {
            text.push('-');
        }
        let whole = 1 + next(&mut state) % 25;
        text.push(char::from(
            b'1' + u8::try_from(next(&mut state) % 9).unwrap(),
        ));
        for _ in 1..whole {
            text.push(digit(&mut state));
        }
        if next(&mut state).is_multiple_of(2) {
            text.push('.');
            for _ in 0..1 + next(&mut state) % 25 {
                text.push(digit(&mut state));
            }
        }
        if next(&mut state).is_multiple_of(2) {
            text.push_str(&format!(
                "e{}",
                i64::try_from(next(&mut state) % 800).unwrap() - 400
            ));
        }
        agrees(&text);
    }
}

/// Every prefix of the shipped examples (EOF in every place), and bytes swapped for ones that
/// break the grammar.
#[test]
fn agrees_with_serde_json_on_damaged_examples() {
    for (_, text) in crate::config::tests::EXAMPLES {
        for end in (0..text.len()).filter(|end| text.is_char_boundary(*end)) {
            agrees(text.get(..end).unwrap());
        }
        for (at, character) in text.char_indices().step_by(3) {
            let (before, after) = (&text[..at], &text[at + character.len_utf8()..]);
            for replacement in ["", "]", "}", ",", ":", "\"", "0", "-", "\\", "\n", "x"] {
                let damaged = format!("{before}{replacement}{after}");
                agrees(&damaged);
            }
        }
    }
}
