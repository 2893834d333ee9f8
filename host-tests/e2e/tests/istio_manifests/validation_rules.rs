//! `x-kubernetes-validations` read as data: each rule's fields checked and its expressions
//! compiled (`cel.rs`) when the CRD is loaded, then each rule checked against the value at the
//! schema node that carries it, with a failure worded the way the API server words it.
//!
//! The API server's behaviour followed here (apiextensions-apiserver's CEL validator): a null
//! value is not validated; a rule reading `oldSelf` is a transition rule and does not run on
//! create unless it sets `optionalOldSelf` (then `oldSelf` is `optional.none()`); on failure
//! the message is the `messageExpression`'s result when it evaluates to a non-blank single-line
//! string, else `message`, else `failed rule: <rule>`; `fieldPath` moves the error to a field
//! below the node; `reason` picks the error type (`Invalid value`, `Forbidden`, `Required
//! value`, `Duplicate value`); an evaluation error is `<error> evaluating rule: <message or
//! rule>`.

use crate::cel::CelRules;
use crate::crd::{type_name, Coverage};
use crate::k8s_message::display_path;
use cel::Value as CelValue;
use serde_json::Value;

/// One entry of `x-kubernetes-validations`.
struct Rule<'a> {
    rule: &'a str,
    message: Option<&'a str>,
    message_expression: Option<&'a str>,
    reason: Reason,
    field_path: Option<&'a str>,
    optional_old_self: bool,
}

/// `reason`: the type of the error a failed rule produces.
#[derive(Clone, Copy)]
enum Reason {
    Invalid,
    Forbidden,
    Required,
    Duplicate,
}

impl<'a> Rule<'a> {
    /// Reads a rule; `Err` names a field or value the validator does not know.
    fn read(entry: &'a Value) -> Result<Rule<'a>, String> {
        let fields = entry.as_object().ok_or("a rule is not an object")?;
        let text = |name: &str| fields.get(name).and_then(Value::as_str);
        for name in fields.keys() {
            if !matches!(
                name.as_str(),
                "rule"
                    | "message"
                    | "messageExpression"
                    | "reason"
                    | "fieldPath"
                    | "optionalOldSelf"
            ) {
                return Err(format!("field {name}"));
            }
        }
        let reason = match text("reason") {
            None | Some("FieldValueInvalid") => Reason::Invalid,
            Some("FieldValueForbidden") => Reason::Forbidden,
            Some("FieldValueRequired") => Reason::Required,
            Some("FieldValueDuplicate") => Reason::Duplicate,
            Some(other) => return Err(format!("reason {other}")),
        };
        Ok(Rule {
            rule: text("rule").ok_or("a rule without rule text")?,
            message: text("message").filter(|m| !m.trim().is_empty()),
            message_expression: text("messageExpression"),
            reason,
            field_path: text("fieldPath").filter(|p| !p.is_empty()),
            optional_old_self: fields.get("optionalOldSelf") == Some(&Value::Bool(true)),
        })
    }

    /// What a failure says when no `messageExpression` answers (also names the rule in
    /// evaluation errors).
    fn message_or_rule(&self) -> String {
        match self.message {
            Some(m) => m.trim().to_string(),
            None => format!("failed rule: {}", self.rule.trim()),
        }
    }
}

/// Walks the published schema when the CRD is loaded: every rule is read and compiled, and its
/// `fieldPath` resolved; what cannot be is recorded in `coverage` with the rule's text.
pub(crate) fn collect_rules(schema: &Value, at: &str, cel: &mut CelRules, coverage: &mut Coverage) {
    for entry in schema["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let text = entry["rule"].as_str().unwrap_or("").to_string();
        coverage.rules_seen.insert(text.clone());
        let rule = match Rule::read(entry) {
            Ok(rule) => rule,
            Err(e) => {
                coverage
                    .unsupported_rule_fields
                    .push(format!("{at}: {e} in rule {text}"));
                continue;
            }
        };
        for source in [Some(rule.rule), rule.message_expression]
            .into_iter()
            .flatten()
        {
            if let Err(e) = cel.compile(source) {
                coverage
                    .rules_not_compiled
                    .push(format!("{at}: {source}: {e}"));
            }
        }
        if let Some(Err(e)) = rule.field_path.map(|p| field_path_suffix(schema, p)) {
            coverage
                .unsupported_rule_fields
                .push(format!("{at}: fieldPath {e} in rule {text}"));
        }
    }
    if let Some(props) = schema["properties"].as_object() {
        for (name, sub) in props {
            collect_rules(sub, &format!("{at}.{name}"), cel, coverage);
        }
    }
    for key in ["items", "additionalProperties"] {
        if schema[key].is_object() {
            collect_rules(&schema[key], &format!("{at}[*]"), cel, coverage);
        }
    }
    for key in ["anyOf", "allOf", "oneOf"] {
        for sub in schema[key].as_array().into_iter().flatten() {
            collect_rules(sub, at, cel, coverage);
        }
    }
}

/// Checks the rules `schema` carries against `value` (found at `path`), appending failures.
pub(crate) fn check_rules(
    schema: &Value,
    value: &Value,
    path: &str,
    cel: &CelRules,
    errors: &mut Vec<String>,
) {
    let kind = schema_type(schema, value);
    let invalid = |path: &str, detail: String| {
        format!(
            "{}: Invalid value: \"{kind}\": {detail}",
            display_path(path)
        )
    };
    for entry in schema["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let rule = match Rule::read(entry) {
            Ok(rule) => rule,
            Err(e) => {
                errors.push(invalid(path, format!("rule not understood: {e}: {entry}")));
                continue;
            }
        };
        let program = match cel.program(rule.rule) {
            Ok(program) => program,
            Err(e) => {
                errors.push(invalid(
                    path,
                    format!("rule compile error: {e}: {}", rule.rule),
                ));
                continue;
            }
        };
        if cel.uses_old_self(rule.rule) && !rule.optional_old_self {
            continue; // a transition rule: no old object on create
        }
        match cel.run(program, value, schema, rule.optional_old_self) {
            Ok(CelValue::Bool(true)) => {}
            Ok(CelValue::Bool(false)) => {
                errors.push(failure(&rule, schema, value, path, cel));
            }
            Ok(other) => errors.push(invalid(
                path,
                format!("rule evaluated to {other:?}, not a bool: {}", rule.rule),
            )),
            Err(e) => errors.push(invalid(
                path,
                format!("{e} evaluating rule: {}", rule.message_or_rule()),
            )),
        }
    }
}

/// The error of a rule that evaluated to false.
fn failure(rule: &Rule, schema: &Value, value: &Value, path: &str, cel: &CelRules) -> String {
    let path = match rule.field_path.map(|p| field_path_suffix(schema, p)) {
        Some(Ok(suffix)) if path.is_empty() => suffix.trim_start_matches('.').to_string(),
        Some(Ok(suffix)) => format!("{path}{suffix}"),
        _ => path.to_string(),
    };
    let path = display_path(&path);
    let detail = rule
        .message_expression
        .and_then(|source| cel.program(source).ok())
        .and_then(|program| cel.run(program, value, schema, rule.optional_old_self).ok())
        .and_then(|result| match result {
            CelValue::String(s) => Some(s.trim().to_string()),
            _ => None,
        })
        .filter(|m| !m.is_empty() && !m.contains('\n'))
        .unwrap_or_else(|| rule.message_or_rule());
    let kind = schema_type(schema, value);
    match rule.reason {
        Reason::Invalid => format!("{path}: Invalid value: \"{kind}\": {detail}"),
        Reason::Forbidden => format!("{path}: Forbidden: {detail}"),
        Reason::Required => format!("{path}: Required value: {detail}"),
        Reason::Duplicate => format!("{path}: Duplicate value: \"{kind}\""),
    }
}

/// The type the API server names in `Invalid value: "<type>"`: the schema's, else the value's.
fn schema_type<'a>(schema: &'a Value, value: &Value) -> &'a str {
    schema["type"].as_str().unwrap_or(type_name(value))
}

/// A rule's `fieldPath` (`.field`, `['field']`, chained; no list index) as a suffix of the
/// node's path in the API server's notation: `.field` for a property, `[key]` for a map entry.
fn field_path_suffix(schema: &Value, field_path: &str) -> Result<String, String> {
    let mut schema = schema;
    let mut suffix = String::new();
    let mut rest = field_path;
    while !rest.is_empty() {
        let (name, after) = if let Some(after_dot) = rest.strip_prefix('.') {
            let end = after_dot.find(['.', '[']).unwrap_or(after_dot.len());
            (after_dot[..end].to_string(), &after_dot[end..])
        } else if let Some(bracketed) = rest.strip_prefix('[') {
            bracketed
                .strip_prefix('\'')
                .and_then(quoted_name)
                .ok_or_else(|| {
                    format!("{field_path:?}: expected ['name'] (no list index) at {rest:?}")
                })?
        } else {
            return Err(format!("{field_path:?}: expected . or [ at {rest:?}"));
        };
        if name.is_empty() {
            return Err(format!("{field_path:?}: empty field name"));
        }
        if let Some(properties) = schema["properties"].as_object() {
            schema = properties
                .get(&name)
                .ok_or_else(|| format!("{field_path:?}: no field {name}"))?;
            suffix.push('.');
            suffix.push_str(&name);
        } else if schema["additionalProperties"].is_object() {
            schema = &schema["additionalProperties"];
            suffix.push_str(&format!("[{name}]"));
        } else {
            return Err(format!("{field_path:?}: {name} is not a field"));
        }
        rest = after;
    }
    Ok(suffix)
}

/// `name']...` (after `['`): the unescaped name (`\'` and `\\`) and what follows `]`.
fn quoted_name(text: &str) -> Option<(String, &str)> {
    let mut name = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => name.push(
                chars
                    .next()
                    .map(|(_, e)| e)
                    .filter(|e| *e == '\'' || *e == '\\')?,
            ),
            '\'' => return text[i + 1..].strip_prefix(']').map(|after| (name, after)),
            _ => name.push(c),
        }
    }
    None
}
