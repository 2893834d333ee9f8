//! `jsonschema` errors reworded the way the Kubernetes API server words them, so Istio's
//! invalid examples can be matched against their expected messages.

use crate::crd::type_name;
use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::{Map, Value};

pub(crate) fn display_path(path: &str) -> &str {
    if path.is_empty() {
        "<root>"
    } else {
        path
    }
}

/// The API server's way of writing an instance location: `spec.match[0].ports[0].number`,
/// map entries as `spec.selector.matchLabels[app]`. Follows the published schema to tell map
/// entries (`additionalProperties`) from fields.
fn k8s_path(pointer: &str, schema: &Value, doc: &Value) -> String {
    let mut out = String::new();
    let mut schema = schema;
    let mut value = doc;
    let tokens = pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"));
    for token in tokens {
        match value {
            Value::Array(items) => {
                out.push_str(&format!("[{token}]"));
                value = token
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| items.get(i))
                    .unwrap_or(&Value::Null);
                schema = &schema["items"];
            }
            _ => {
                if schema["properties"].get(&token).is_none()
                    && schema["additionalProperties"].is_object()
                {
                    out.push_str(&format!("[{token}]"));
                    schema = &schema["additionalProperties"];
                } else {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(&token);
                    schema = &schema["properties"][token.as_str()];
                }
                value = value.get(&token).unwrap_or(&Value::Null);
            }
        }
    }
    out
}

/// One `jsonschema` error in the API server's words.
pub(crate) fn k8s_message(
    error: &jsonschema::ValidationError<'_>,
    schema: &Value,
    doc: &Value,
) -> Vec<String> {
    let path = k8s_path(error.instance_path().as_str(), schema, doc);
    let instance: &Value = error.instance();
    let at = display_path(&path);
    let message = match error.kind() {
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or("?");
            if path.is_empty() {
                format!("{name}: Required value")
            } else {
                format!("{path}.{name}: Required value")
            }
        }
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => t.to_string(),
                TypeKind::Multiple(set) => set
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(" or "),
            };
            format!(
                "{at} in body must be of type {expected}: \"{}\"",
                type_name(instance)
            )
        }
        ValidationErrorKind::MinLength { limit } => {
            format!("{at} in body should be at least {limit} chars long")
        }
        ValidationErrorKind::MaxLength { limit } => {
            format!("{at} in body should be at most {limit} chars long")
        }
        ValidationErrorKind::Pattern { pattern } => {
            format!("{at} in body should match '{pattern}'")
        }
        ValidationErrorKind::Enum { options } => {
            let supported: Vec<String> = options
                .as_array()
                .into_iter()
                .flatten()
                .map(Value::to_string)
                .collect();
            format!(
                "{at}: Unsupported value: {instance}: supported values: {}",
                supported.join(", ")
            )
        }
        ValidationErrorKind::Minimum { limit } => {
            format!("{at} in body should be greater than or equal to {limit}")
        }
        ValidationErrorKind::Maximum { limit } => {
            format!("{at} in body should be less than or equal to {limit}")
        }
        ValidationErrorKind::MaxItems { limit } | ValidationErrorKind::MaxProperties { limit } => {
            let count = instance
                .as_array()
                .map(Vec::len)
                .or_else(|| instance.as_object().map(Map::len))
                .unwrap_or(0);
            format!("{at}: Too many: {count}: must have at most {limit} items")
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            return unexpected
                .iter()
                .map(|name| {
                    let field = if path.is_empty() {
                        name.clone()
                    } else {
                        format!("{path}.{name}")
                    };
                    format!("{field}: unknown field (kubectl apply --validate=strict refuses it)")
                })
                .collect();
        }
        ValidationErrorKind::Format { format } => {
            format!("{at} in body must be of type {format}: {instance}")
        }
        _ => format!("{at}: {error}"),
    };
    vec![message]
}
