//! The configuration's wire form, as data: exactly what the JSON may contain, nothing more.
//!
//! Why data and one checker: the shape of every section (its fields, their types, which may be
//! absent) is a table below, and [`check`] walks a document against it once, before anything
//! is built. Typed serde structs did the same with code generated per field, which made up a
//! fifth of the .wasm; a table costs a few bytes per field. After the check, the builders read
//! fields through [`Fields`], which cannot meet a wrong type any more.
//!
//! The rules and the words are serde's, which operators (and tests) know: `null` or absence
//! leaves an optional field unset; absence gives a collection or a flag its default, but `null`
//! there is a type error; a required field must be present; integers are not read from floats
//! (`5.0` is no `u32`), floats are read from integers; unknown and duplicate keys are errors;
//! the first mistake in document order is the one reported (`invalid type: string "yes",
//! expected a boolean`, ``unknown field `polcy_sets`, expected one of ...``, ``missing field
//! `policy_set` ``, ``duplicate field `ratio` ``).

use super::error::Failure;
use super::error::Path;
use super::json::Node;
use crate::numeric::{approx_f64, approx_f64_signed};

/// What a JSON value must be.
pub(super) enum Shape {
    Str,
    Bool,
    U32,
    U16,
    F64,
    /// Anything: the section that reads it says what it accepts (`method`).
    Any,
    List(&'static Shape),
    /// An object of named entries: any keys, each once.
    Named(&'static Shape),
    /// An object with these fields only.
    Object(&'static [Field]),
}

/// A field of an object.
pub(super) struct Field {
    name: &'static str,
    shape: Shape,
    presence: Presence,
}

#[derive(Clone, Copy, PartialEq)]
enum Presence {
    /// May be absent or `null`.
    Optional,
    /// May be absent (then its default), but not `null`.
    Defaulted,
    Required,
}

const fn field(name: &'static str, shape: Shape, presence: Presence) -> Field {
    Field {
        name,
        shape,
        presence,
    }
}

const fn optional(name: &'static str, shape: Shape) -> Field {
    field(name, shape, Presence::Optional)
}

const fn defaulted(name: &'static str, shape: Shape) -> Field {
    field(name, shape, Presence::Defaulted)
}

const fn required(name: &'static str, shape: Shape) -> Field {
    field(name, shape, Presence::Required)
}

use Shape::{Any, Bool, List, Named, Object, Str, F64, U16, U32};

/// The whole document.
pub(super) const CONFIG: Shape = Object(&[
    optional("metric_prefix", Str),
    defaulted("dry_run", Bool),
    optional("priority", Object(PRIORITY)),
    optional("trusted_peers", Object(TRUSTED_PEERS)),
    defaulted("policy_sets", Named(&Object(POLICY_SET))),
    defaulted("routes", List(&Object(ROUTE))),
    optional("default_policy_set", Str),
]);

const PRIORITY: &[Field] = &[
    required("classes", List(&Str)),
    optional("default", Str),
    optional("header", Str),
    defaulted("values", Named(&Str)),
];

const TRUSTED_PEERS: &[Field] = &[
    defaulted("source_cidrs", List(&Str)),
    defaulted("principals", List(&Object(STRING_MATCH))),
];

const POLICY_SET: &[Field] = &[
    optional("retry_budget", Object(RETRY_BUDGET)),
    optional("retry", Object(RETRY)),
    optional("concurrency", Object(CONCURRENCY)),
    optional("deadline", Object(DEADLINE)),
    optional("shedding", Object(SHEDDING)),
];

const RETRY_BUDGET: &[Field] = &[
    optional("ratio", F64),
    optional("min_retries_per_second", U32),
    optional("ttl", Str),
];

const RETRY: &[Field] = &[
    optional("idempotent_methods", Any),
    optional("idempotency_key_header", Str),
    optional("idempotency_key_from_untrusted", Bool),
    optional("max_retries_per_request", U32),
    optional("explain_header", Str),
    optional("mark_final_failures", Bool),
    optional("strip_marks_to_untrusted", Bool),
];

const CONCURRENCY: &[Field] = &[
    optional("algorithm", Str),
    optional("initial_limit", U32),
    optional("slow_start", Bool),
    optional("min_limit", U32),
    optional("max_limit", U32),
    optional("smoothing", F64),
    optional("rtt_tolerance", F64),
    optional("queue_allowance", F64),
    optional("probe_interval", Str),
    optional("backoff_ratio", F64),
    optional("timeout", Str),
    optional("window", Str),
    optional("min_samples", U32),
    optional("aggregate", Str),
    optional("measure", Str),
    optional("queue", Object(QUEUE)),
    optional("reject_status", U16),
    optional("retry_after", Str),
];

const QUEUE: &[Field] = &[
    optional("size", U32),
    optional("max_wait", Str),
    optional("order", Str),
    optional("respect_deadlines", Bool),
];

const DEADLINE: &[Field] = &[
    optional("default", Str),
    optional("max", Str),
    optional("offset", Str),
    optional("min_useful", Str),
    optional("header", Str),
    optional("max_clock_skew", Str),
    optional("malformed", Str),
    optional("believe_untrusted_peers", Bool),
];

const SHEDDING: &[Field] = &[
    optional("admission", Object(ADMISSION)),
    optional("throttle", Object(THROTTLE)),
    defaulted("rate_limits", Named(&Object(RATE_LIMIT))),
    optional("overload_status", U16),
    optional("rate_limit_status", U16),
    optional("retry_after", Str),
    optional("body", Str),
    optional("propagate", Bool),
];

const ADMISSION: &[Field] = &[
    optional("enabled", Bool),
    optional("target_queue_wait", Str),
    optional("interval", Str),
    optional("step", F64),
];

const THROTTLE: &[Field] = &[
    optional("enabled", Bool),
    optional("k", F64),
    optional("window", Str),
    optional("min_rps", F64),
    optional("max_reject_probability", F64),
];

const RATE_LIMIT: &[Field] = &[
    required("per_second", F64),
    optional("burst", U32),
    optional("scope", Str),
];

const ROUTE: &[Field] = &[
    optional("name", Str),
    defaulted("match", Object(ROUTE_MATCH)),
    required("policy_set", Str),
    optional("priority", Str),
];

const ROUTE_MATCH: &[Field] = &[
    optional("authority", Object(STRING_MATCH)),
    optional("path", Object(STRING_MATCH)),
    optional("method", Any),
    defaulted("headers", List(&Object(HEADER_MATCH))),
    optional("route_name", Object(STRING_MATCH)),
];

const STRING_MATCH: &[Field] = &[
    optional("exact", Str),
    optional("prefix", Str),
    optional("suffix", Str),
    optional("contains", Str),
    optional("regex", Str),
    defaulted("ignore_case", Bool),
];

const HEADER_MATCH: &[Field] = &[
    required("name", Str),
    optional("present", Bool),
    optional("exact", Str),
    optional("prefix", Str),
    optional("suffix", Str),
    optional("contains", Str),
    optional("regex", Str),
    defaulted("ignore_case", Bool),
    defaulted("invert", Bool),
];

/// Checks `node` against `shape`; the first mistake in document order, at its path.
pub(super) fn check(node: &Node, shape: &Shape, path: &Path<'_>) -> Result<(), Failure> {
    let fits = match (shape, node) {
        (Shape::Str, Node::Str(_))
        | (Shape::Bool, Node::Bool(_))
        | (Shape::Any, _)
        | (Shape::F64, Node::Float(..) | Node::Unsigned(_) | Node::Signed(_)) => true,
        (Shape::U32 | Shape::U16, Node::Unsigned(value)) => {
            let max = if matches!(shape, Shape::U32) {
                u64::from(u32::MAX)
            } else {
                u64::from(u16::MAX)
            };
            if *value > max {
                return Err(out_of_range(&value.to_string(), shape, path));
            }
            true
        }
        (Shape::U32 | Shape::U16, Node::Signed(value)) => {
            return Err(out_of_range(&value.to_string(), shape, path));
        }
        (Shape::List(item), Node::Array(items)) => {
            for (index, node) in items.iter().enumerate() {
                check(node, item, &path.index(index))?;
            }
            true
        }
        (Shape::Named(item), Node::Object(entries)) => {
            for (index, (name, node)) in entries.iter().enumerate() {
                let before = entries.get(..index).unwrap_or_default();
                if before.iter().any(|(other, _)| other == name) {
                    return Err(path.error(format!("duplicate name `{name}`")));
                }
                check(node, item, &path.field(name))?;
            }
            true
        }
        (Shape::Object(fields), Node::Object(entries)) => {
            check_fields(entries, fields, path)?;
            true
        }
        _ => false,
    };
    if fits {
        Ok(())
    } else {
        Err(path.error(format!(
            "invalid type: {}, expected {}",
            describe(node),
            expected(shape)
        )))
    }
}

fn check_fields(
    entries: &[(String, Node)],
    fields: &[Field],
    path: &Path<'_>,
) -> Result<(), Failure> {
    for (index, (key, node)) in entries.iter().enumerate() {
        let Some(field) = fields.iter().find(|field| field.name == key) else {
            return Err(path.field(key).error(unknown_field(key, fields)));
        };
        let before = entries.get(..index).unwrap_or_default();
        if before.iter().any(|(other, _)| other == key) {
            return Err(path.error(format!("duplicate field `{key}`")));
        }
        if !(field.presence == Presence::Optional && *node == Node::Null) {
            check(node, &field.shape, &path.field(key))?;
        }
    }
    for field in fields {
        if field.presence == Presence::Required && !entries.iter().any(|(key, _)| key == field.name)
        {
            return Err(path.error(format!("missing field `{}`", field.name)));
        }
    }
    Ok(())
}

fn out_of_range(value: &str, shape: &Shape, path: &Path<'_>) -> Failure {
    path.error(format!(
        "invalid value: integer `{value}`, expected {}",
        expected(shape)
    ))
}

fn expected(shape: &Shape) -> &'static str {
    match shape {
        Shape::Str => "a string",
        Shape::Bool => "a boolean",
        Shape::U32 => "u32",
        Shape::U16 => "u16",
        Shape::F64 => "f64",
        Shape::Any => "any value",
        Shape::List(_) => "a sequence",
        Shape::Named(_) => "an object of named entries",
        Shape::Object(_) => "an object",
    }
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

fn unknown_field(key: &str, fields: &[Field]) -> String {
    let quoted: Vec<String> = fields.iter().map(|f| format!("`{}`", f.name)).collect();
    let expected = match quoted.as_slice() {
        [] => "no fields".to_string(),
        [only] => only.clone(),
        [first, second] => format!("{first} or {second}"),
        _ => format!("one of {}", quoted.join(", ")),
    };
    format!("unknown field `{key}`, expected {expected}")
}

/// The text of a checked string (`""` for anything else, which [`check`] refused).
pub(super) fn text(node: &Node) -> &str {
    match node {
        Node::Str(text) => text,
        _ => "",
    }
}

/// The fields of a checked object, by name; `null` reads as absent (only optional fields may
/// be `null`), and a value of the wrong type (which [`check`] refused) as absent too.
#[derive(Clone, Copy, Default)]
pub(super) struct Fields<'n> {
    entries: &'n [(String, Node)],
}

impl<'n> Fields<'n> {
    /// The fields of `node` (none when it is no object).
    pub(super) fn of(node: &'n Node) -> Self {
        match node {
            Node::Object(entries) => Fields { entries },
            _ => Fields { entries: &[] },
        }
    }

    /// The value of field `name`, unless absent or `null`.
    pub(super) fn node(self, name: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(key, node)| key == name && *node != Node::Null)
            .map(|(_, node)| node)
    }

    pub(super) fn str(self, name: &str) -> Option<&'n str> {
        match self.node(name)? {
            Node::Str(text) => Some(text),
            _ => None,
        }
    }

    pub(super) fn string(self, name: &str) -> Option<String> {
        self.str(name).map(str::to_owned)
    }

    pub(super) fn bool(self, name: &str) -> Option<bool> {
        match self.node(name)? {
            Node::Bool(value) => Some(*value),
            _ => None,
        }
    }

    pub(super) fn u64(self, name: &str) -> Option<u64> {
        match self.node(name)? {
            Node::Unsigned(value) => Some(*value),
            _ => None,
        }
    }

    pub(super) fn u32(self, name: &str) -> Option<u32> {
        self.u64(name).and_then(|value| u32::try_from(value).ok())
    }

    pub(super) fn u16(self, name: &str) -> Option<u16> {
        self.u64(name).and_then(|value| u16::try_from(value).ok())
    }

    pub(super) fn f64(self, name: &str) -> Option<f64> {
        match self.node(name)? {
            Node::Float(value, _) => Some(*value),
            Node::Unsigned(value) => Some(approx_f64(*value)),
            Node::Signed(value) => Some(approx_f64_signed(*value)),
            _ => None,
        }
    }

    /// An object field (`None` when absent).
    pub(super) fn object(self, name: &str) -> Option<Fields<'n>> {
        self.node(name).map(Fields::of)
    }

    /// A list field's items (none when absent).
    pub(super) fn list(self, name: &str) -> &'n [Node] {
        match self.node(name) {
            Some(Node::Array(items)) => items,
            _ => &[],
        }
    }

    /// A named-entries field's entries in document order (none when absent).
    pub(super) fn named(self, name: &str) -> &'n [(String, Node)] {
        match self.node(name) {
            Some(Node::Object(entries)) => entries,
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests;
