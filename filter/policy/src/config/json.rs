//! The configuration document as a tree, read once with `serde_json`'s parser.
//!
//! Why a tree of our own: typed serde derive with `serde_path_to_error` was monomorphised for
//! every field of every section, a fifth of the shipped .wasm for a parse that runs once per
//! configuration. One visitor that builds a [`Node`], and a walk over it (`decode.rs`) that
//! knows each value's JSON path anyway, do the same work once. Why not `serde_json::Value`:
//! its objects keep neither document order (policy sets are numbered in it) nor duplicate keys
//! (a duplicate is an error here, never a silent overwrite).
//!
//! Numbers keep the kind serde_json gives them (non-negative integer, negative integer, float),
//! so a field reads `5`, `-1` and `5.0` exactly as a typed field would. A syntax error still
//! names a path: as the error unwinds, each object and array it leaves records the key or index
//! it was reading, so `{"policy_sets": ` fails at `policy_sets`.

use super::error::{push_field, push_index};
use super::ConfigError;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// One JSON value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer without a minus sign.
    Unsigned(u64),
    /// An integer with a minus sign.
    Signed(i64),
    /// A number with a fraction or an exponent.
    Float(f64),
    /// A string.
    Str(String),
    /// An array.
    Array(Vec<Node>),
    /// An object: entries in document order, duplicate keys kept.
    Object(Vec<(String, Node)>),
}

/// Parses a whole document (trailing characters are an error).
pub(crate) fn parse(text: &str) -> Result<Node, ConfigError> {
    let mut trail = Vec::new();
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let parsed = Reader { trail: &mut trail }
        .deserialize(&mut deserializer)
        .and_then(|node| deserializer.end().map(|()| node));
    parsed.map_err(|err| {
        let mut path = String::new();
        for step in trail.iter().rev() {
            match step {
                Step::Key(key) => push_field(&mut path, key),
                Step::Index(index) => push_index(&mut path, *index),
            }
        }
        ConfigError::new(path, err.to_string())
    })
}

/// Where a syntax error was, one level: recorded innermost first while the error unwinds.
enum Step {
    Key(String),
    Index(usize),
}

/// Reads one value; `trail` collects the error's path on the way out.
struct Reader<'t> {
    trail: &'t mut Vec<Step>,
}

impl<'de> DeserializeSeed<'de> for Reader<'_> {
    type Value = Node;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Reader<'_> {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_bool<E>(self, value: bool) -> Result<Node, E> {
        Ok(Node::Bool(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Node, E> {
        Ok(Node::Unsigned(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Node, E> {
        Ok(Node::Signed(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Node, E> {
        Ok(Node::Float(value))
    }

    fn visit_str<E>(self, value: &str) -> Result<Node, E> {
        Ok(Node::Str(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Node, E> {
        Ok(Node::Str(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let trail = self.trail;
        let mut items = Vec::new();
        loop {
            match seq.next_element_seed(Reader { trail: &mut *trail }) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => return Ok(Node::Array(items)),
                Err(err) => {
                    trail.push(Step::Index(items.len()));
                    return Err(err);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let trail = self.trail;
        let mut entries = Vec::new();
        // An error inside a key (an unterminated string) is the object's own.
        while let Some(key) = map.next_key::<String>()? {
            match map.next_value_seed(Reader { trail: &mut *trail }) {
                Ok(value) => entries.push((key, value)),
                Err(err) => {
                    trail.push(Step::Key(key));
                    return Err(err);
                }
            }
        }
        Ok(Node::Object(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::test;

    #[test]
    fn keeps_order_duplicates_and_number_kinds() {
        let node =
            parse(r#"{"b": [1, -2, 3.5, 4e0], "a": null, "b": {"x": true, "s": "t"}}"#).unwrap();
        let expected = Node::Object(vec![
            (
                "b".into(),
                Node::Array(vec![
                    Node::Unsigned(1),
                    Node::Signed(-2),
                    Node::Float(3.5),
                    Node::Float(4.0),
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
                "EOF while parsing a value",
            ),
            (r#"{"a": [1, {"b": [tru]}]}"#, "a[1].b[0]", "expected ident"),
            (r#"{"a": 1e999}"#, "a", "number out of range"),
            (r#"{"a": {"b": 1,}}"#, "a", "trailing comma"),
            ("{} {}", "", "trailing characters"),
        ];
        for (text, path, reason) in rows {
            let err = parse(text).unwrap_err();
            assert_eq!(err.path, path, "{text}: {err}");
            assert!(err.reason.contains(reason), "{text}: {err}");
        }
    }
}
