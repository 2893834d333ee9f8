//! Reading the wire types (`raw.rs`) out of a [`Node`]: what serde derive did, written once.
//!
//! Why by hand: see `json.rs`. Each value is read with its JSON path at hand, so a wrong type
//! and an unknown, duplicate or missing field are reported where they are. The messages keep
//! serde's words, which operators (and tests) already know: `invalid type: string "yes",
//! expected a boolean`, ``unknown field `polcy_sets`, expected one of ...``, ``missing field
//! `policy_set` ``, ``duplicate field `ratio` ``.
//!
//! The rules are serde's too: `null` or absence leaves an `Option` empty; absence gives a
//! collection or a flag its default, but `null` there is a type error; a required field must
//! be present; integers are not read from floats (`5.0` is no `u32`), floats are read from
//! integers.

use super::error::Path;
use super::json::Node;
use super::raw::NamedMap;
use super::ConfigError;
use crate::numeric::{approx_f64, approx_f64_signed};

/// A wire type, read from the node at `path`.
pub(super) trait Decode: Sized {
    /// Reads `node`, or says at `path` why it cannot.
    fn decode(node: Node, path: &Path<'_>) -> Result<Self, ConfigError>;
}

/// Declares a wire struct and reads it from a JSON object, field by field in document order
/// (so the first mistake in the document is the one reported). A field absent from the object
/// keeps its type's default (`None` for an `Option`) unless marked `[required]`; `as "name"`
/// when the JSON name is no Rust identifier. Unknown and duplicate keys are errors.
macro_rules! wire_struct {
    (
        $(#[$meta:meta])*
        pub(crate) struct $name:ident {
            $(
                $(#[$field_meta:meta])*
                $([$required:ident])? $field:ident $(as $json:literal)? : $ty:ty
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Default)]
        pub(crate) struct $name {
            $( $(#[$field_meta])* pub $field: $ty, )*
        }

        impl $crate::config::decode::Decode for $name {
            fn decode(
                node: $crate::config::json::Node,
                path: &$crate::config::error::Path<'_>,
            ) -> Result<Self, $crate::config::ConfigError> {
                #[allow(non_camel_case_types)]
                #[derive(Clone, Copy)]
                enum Field { $($field),* }
                const NAMES: &[&str] = &[$( wire_struct!(@name $field $(, $json)?) ),*];
                const FIELDS: &[Field] = &[$(Field::$field),*];
                let mut raw = Self::default();
                #[allow(unused_variables)]
                let seen = $crate::config::decode::fields(node, path, NAMES, &mut |index, node, at| {
                    match FIELDS.get(index) {
                        $( Some(Field::$field) => {
                            raw.$field = $crate::config::decode::Decode::decode(node, at)?;
                        } )*
                        None => {}
                    }
                    Ok(())
                })?;
                $( $(
                    wire_struct!(@$required seen, Field::$field as usize, path, NAMES);
                )? )*
                Ok(raw)
            }
        }
    };
    (@name $field:ident) => { stringify!($field) };
    (@name $field:ident, $json:literal) => { $json };
    (@required $seen:expr, $index:expr, $path:expr, $names:expr) => {
        if !$seen.contains(&$index) {
            return Err($crate::config::decode::missing($path, $names, $index));
        }
    };
}
pub(super) use wire_struct;

/// Hands each entry of an object to `take` in document order, with its field's index in
/// `names` and its path; a key not in `names`, or given twice, is an error. Returns the
/// indexes of the fields present.
pub(super) fn fields(
    node: Node,
    path: &Path<'_>,
    names: &[&str],
    take: &mut dyn FnMut(usize, Node, &Path<'_>) -> Result<(), ConfigError>,
) -> Result<Vec<usize>, ConfigError> {
    let entries = match node {
        Node::Object(entries) => entries,
        other => return Err(invalid_type(&other, "an object", path)),
    };
    let mut seen = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        let Some(index) = names.iter().position(|name| *name == key) else {
            return Err(path.field(&key).error(unknown_field(&key, names)));
        };
        if seen.contains(&index) {
            return Err(path.error(format!("duplicate field `{key}`")));
        }
        seen.push(index);
        take(index, value, &path.field(&key))?;
    }
    Ok(seen)
}

/// A required field is absent.
pub(super) fn missing(path: &Path<'_>, names: &[&str], index: usize) -> ConfigError {
    let name = names.get(index).copied().unwrap_or_default();
    path.error(format!("missing field `{name}`"))
}

fn unknown_field(key: &str, names: &[&str]) -> String {
    let mut message = format!("unknown field `{key}`, expected ");
    match names {
        [] => message.push_str("no fields"),
        [only] => message.push_str(&format!("`{only}`")),
        [first, second] => message.push_str(&format!("`{first}` or `{second}`")),
        _ => {
            message.push_str("one of ");
            let quoted: Vec<String> = names.iter().map(|name| format!("`{name}`")).collect();
            message.push_str(&quoted.join(", "));
        }
    }
    message
}

/// `invalid type: <what the node is>, expected <expected>`, at `path`.
pub(super) fn invalid_type(node: &Node, expected: &str, path: &Path<'_>) -> ConfigError {
    path.error(format!(
        "invalid type: {}, expected {expected}",
        describe(node)
    ))
}

fn describe(node: &Node) -> String {
    match node {
        Node::Null => "null".to_string(),
        Node::Bool(value) => format!("boolean `{value}`"),
        Node::Unsigned(value) => format!("integer `{value}`"),
        Node::Signed(value) => format!("integer `{value}`"),
        Node::Float(_, text) => format!("floating point `{text}`"),
        Node::Str(value) => format!("string {value:?}"),
        Node::Array(_) => "sequence".to_string(),
        Node::Object(_) => "map".to_string(),
    }
}

impl<T: Decode> Decode for Option<T> {
    fn decode(node: Node, path: &Path<'_>) -> Result<Self, ConfigError> {
        match node {
            Node::Null => Ok(None),
            node => T::decode(node, path).map(Some),
        }
    }
}

impl Decode for Node {
    fn decode(node: Node, _: &Path<'_>) -> Result<Self, ConfigError> {
        Ok(node)
    }
}

impl Decode for String {
    fn decode(node: Node, path: &Path<'_>) -> Result<Self, ConfigError> {
        match node {
            Node::Str(text) => Ok(text),
            other => Err(invalid_type(&other, "a string", path)),
        }
    }
}

impl Decode for bool {
    fn decode(node: Node, path: &Path<'_>) -> Result<Self, ConfigError> {
        match node {
            Node::Bool(value) => Ok(value),
            other => Err(invalid_type(&other, "a boolean", path)),
        }
    }
}

impl Decode for f64 {
    fn decode(node: Node, path: &Path<'_>) -> Result<Self, ConfigError> {
        match node {
            Node::Float(value, _) => Ok(value),
            Node::Unsigned(value) => Ok(approx_f64(value)),
            Node::Signed(value) => Ok(approx_f64_signed(value)),
            other => Err(invalid_type(&other, "f64", path)),
        }
    }
}

/// A non-negative integer that fits `T` (`expected` names it in messages).
fn integer<T: TryFrom<u64>>(node: Node, path: &Path<'_>, expected: &str) -> Result<T, ConfigError> {
    let out_of_range = |shown: String| {
        path.error(format!(
            "invalid value: integer `{shown}`, expected {expected}"
        ))
    };
    match node {
        Node::Unsigned(value) => T::try_from(value).map_err(|_| out_of_range(value.to_string())),
        Node::Signed(value) => Err(out_of_range(value.to_string())),
        other => Err(invalid_type(&other, expected, path)),
    }
}

impl Decode for u32 {
    fn decode(node: Node, path: &Path<'_>) -> Result<Self, ConfigError> {
        integer(node, path, "u32")
    }
}

impl Decode for u16 {
    fn decode(node: Node, path: &Path<'_>) -> Result<Self, ConfigError> {
        integer(node, path, "u16")
    }
}

impl<T: Decode> Decode for Vec<T> {
    fn decode(node: Node, path: &Path<'_>) -> Result<Self, ConfigError> {
        match node {
            Node::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(index, item)| T::decode(item, &path.index(index)))
                .collect(),
            other => Err(invalid_type(&other, "a sequence", path)),
        }
    }
}

impl<T: Decode> Decode for NamedMap<T> {
    fn decode(node: Node, path: &Path<'_>) -> Result<Self, ConfigError> {
        let entries = match node {
            Node::Object(entries) => entries,
            other => return Err(invalid_type(&other, "an object of named entries", path)),
        };
        let mut named: Vec<(String, T)> = Vec::with_capacity(entries.len());
        for (name, value) in entries {
            if named.iter().any(|(existing, _)| *existing == name) {
                return Err(path.error(format!("duplicate name `{name}`")));
            }
            let value = T::decode(value, &path.field(&name))?;
            named.push((name, value));
        }
        Ok(NamedMap(named))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::test_support::test;

    /// Shape errors: each row's document has one mistake, reported at its path in serde's words.
    #[test]
    fn shape_errors_name_path_and_reason() {
        let rows = [
            (
                r#"{"dry_run": null}"#,
                "dry_run",
                "invalid type: null, expected a boolean",
            ),
            (
                r#"{"metric_prefix": 5}"#,
                "metric_prefix",
                "invalid type: integer `5`, expected a string",
            ),
            (
                r#"{"metric_prefix": -5}"#,
                "metric_prefix",
                "invalid type: integer `-5`, expected a string",
            ),
            (
                r#"{"metric_prefix": true}"#,
                "metric_prefix",
                "invalid type: boolean `true`, expected a string",
            ),
            (
                r#"{"metric_prefix": "a\"b"}"#,
                "metric_prefix",
                r#"must match"#,
            ),
            (
                r#"{"dry_run": "a\"b"}"#,
                "dry_run",
                r#"invalid type: string "a\"b", expected a boolean"#,
            ),
            (
                r#"{"routes": {}}"#,
                "routes",
                "invalid type: map, expected a sequence",
            ),
            (
                r#"{"policy_sets": []}"#,
                "policy_sets",
                "invalid type: sequence, expected an object of named entries",
            ),
            (
                r#"{"priority": [["a", "b"]]}"#,
                "priority",
                "invalid type: sequence, expected an object",
            ),
            (
                r#"{"priority": "a"}"#,
                "priority",
                r#"invalid type: string "a", expected an object"#,
            ),
            (
                r#"{"priority": {"classes": ["a"], "classes": ["b"]}}"#,
                "priority",
                "duplicate field `classes`",
            ),
            (
                r#"{"priority": {"classes": ["a"], "default": null, "default": "a"}}"#,
                "priority",
                "duplicate field `default`",
            ),
            (
                r#"{"priority": {"default": "a"}}"#,
                "priority",
                "missing field `classes`",
            ),
            (
                r#"{"trusted_peers": {"cidrs": []}}"#,
                "trusted_peers.cidrs",
                "unknown field `cidrs`, expected `source_cidrs` or `principals`",
            ),
            (
                r#"{"policy_sets": {"a": {"retry": {"max_retries_per_request": 5.0}}}}"#,
                "policy_sets.a.retry.max_retries_per_request",
                "invalid type: floating point `5.0`, expected u32",
            ),
            (
                r#"{"policy_sets": {"a": {"retry": {"max_retries_per_request": 4294967296}}}}"#,
                "policy_sets.a.retry.max_retries_per_request",
                "invalid value: integer `4294967296`, expected u32",
            ),
            (
                r#"{"policy_sets": {"a": {"concurrency": {"reject_status": 65536}}}}"#,
                "policy_sets.a.concurrency.reject_status",
                "invalid value: integer `65536`, expected u16",
            ),
            (
                r#"{"policy_sets": {"a": {"concurrency": {"reject_status": -503}}}}"#,
                "policy_sets.a.concurrency.reject_status",
                "invalid value: integer `-503`, expected u16",
            ),
            (
                r#"{"policy_sets": {"a": {"retry_budget": {"ratio": "0.2"}}}}"#,
                "policy_sets.a.retry_budget.ratio",
                r#"invalid type: string "0.2", expected f64"#,
            ),
            (
                r#"{"routes": [{"match": null, "policy_set": "a"}]}"#,
                "routes[0].match",
                "invalid type: null, expected an object",
            ),
        ];
        for (text, path, reason) in rows {
            let err = Config::from_json(text.as_bytes()).unwrap_err();
            assert_eq!(err.path, path, "{text}: {err}");
            assert!(err.reason.contains(reason), "{text}: {err}");
        }
    }

    /// `null` is an absent optional field; integers are read where floats are expected.
    #[test]
    fn null_is_absent_and_integers_are_floats() {
        let config = Config::from_json(
            br#"{"metric_prefix": null, "priority": null, "trusted_peers": null,
                 "policy_sets": {"a": {"retry_budget": {"ratio": 1, "ttl": null}, "retry": null}},
                 "default_policy_set": null}"#,
        )
        .unwrap();
        assert_eq!(config.metric_prefix, "ballast");
        let set = config
            .policy_set(config.policy_set_named("a").unwrap())
            .unwrap();
        assert_eq!(set.retry_budget.unwrap().ratio_ppm, 1_000_000);
        assert_eq!(config.routes.default, None);
    }
}
