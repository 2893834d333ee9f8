//! The validator proper: the CRD's `openAPIV3Schema` converted to JSON Schema, plus the walk
//! for what JSON Schema cannot express (CEL rules, `x-kubernetes-list-type`) and the coverage
//! check that the CRD holds nothing the validator ignores.

use crate::cel::CelRules;
use crate::k8s_message::k8s_message;
use crate::metadata::check_metadata;
use crate::validation_rules::{check_rules, collect_rules};
use crate::yaml_documents;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Keywords of a CRD's structural schema the converter understands. Any other keyword is
/// reported, so a CRD that starts using one fails the test instead of being half-checked.
const SCHEMA_KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "items",
    "required",
    "enum",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "additionalProperties",
    "anyOf",
    "allOf",
    "oneOf",
    "not",
    "description",
    "default",
    "example",
    "title",
    "format",
    "nullable",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
    "x-kubernetes-validations",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
];

/// `format`s checked; others are accepted unchecked (the API server knows a fixed list and
/// ignores the rest).
const INT_FORMATS: &[(&str, i64, i64)] = &[
    ("int32", i32::MIN as i64, i32::MAX as i64),
    ("int64", i64::MIN, i64::MAX),
];

/// Converts a node of an OpenAPI v3 structural schema to JSON Schema (draft 4).
/// `at` is the node's location in the CRD, for reporting unknown keywords into `unknown`.
pub(crate) fn to_json_schema(node: &Value, at: &str, unknown: &mut Vec<String>) -> Value {
    let Some(node) = node.as_object() else {
        unknown.push(format!("{at}: schema is not an object"));
        return json!({});
    };
    let mut out = Map::new();
    for (key, value) in node {
        if !SCHEMA_KEYWORDS.contains(&key.as_str()) {
            unknown.push(format!("{at}: keyword {key}"));
        }
        let sub = |name: &str, unknown: &mut Vec<String>| to_json_schema(value, name, unknown);
        match key.as_str() {
            // Documentation and defaulting: not validation.
            "description" | "default" | "example" | "title" => {}
            // Handled by the Rust walk (`check_extensions`), or below.
            "x-kubernetes-validations"
            | "x-kubernetes-list-type"
            | "x-kubernetes-list-map-keys"
            | "x-kubernetes-preserve-unknown-fields"
            | "x-kubernetes-int-or-string"
            | "nullable"
            | "format" => {}
            "properties" => {
                let props: Map<String, Value> = value
                    .as_object()
                    .map(|p| {
                        p.iter()
                            .map(|(name, s)| {
                                (
                                    name.clone(),
                                    to_json_schema(s, &format!("{at}.{name}"), unknown),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.insert(key.clone(), Value::Object(props));
            }
            "items" | "not" => {
                out.insert(key.clone(), sub(&format!("{at}[*]"), unknown));
            }
            "additionalProperties" => {
                let converted = match value {
                    Value::Bool(b) => Value::Bool(*b),
                    _ => sub(&format!("{at}[*]"), unknown),
                };
                out.insert(key.clone(), converted);
            }
            "anyOf" | "allOf" | "oneOf" => {
                let branches: Vec<Value> = value
                    .as_array()
                    .map(|b| {
                        b.iter()
                            .enumerate()
                            .map(|(i, s)| to_json_schema(s, &format!("{at}.{key}[{i}]"), unknown))
                            .collect()
                    })
                    .unwrap_or_default();
                out.insert(key.clone(), Value::Array(branches));
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    let flag = |name: &str| node.get(name).and_then(Value::as_bool).unwrap_or(false);

    if flag("x-kubernetes-int-or-string") {
        out.remove("type");
        out.remove("anyOf");
        out.insert(
            "anyOf".into(),
            json!([{ "type": "integer" }, { "type": "string" }]),
        );
    }
    if let Some(format) = node.get("format").and_then(Value::as_str) {
        if let Some((_, min, max)) = INT_FORMATS.iter().find(|(f, _, _)| *f == format) {
            out.entry("minimum").or_insert(json!(min));
            out.entry("maximum").or_insert(json!(max));
        } else if format == "date-time" {
            out.insert("format".into(), json!("date-time"));
        }
    }
    // Unknown fields: strict, unless the schema preserves them.
    let is_object = node.get("type").and_then(Value::as_str) == Some("object");
    if is_object
        && !flag("x-kubernetes-preserve-unknown-fields")
        && !node.contains_key("additionalProperties")
    {
        out.insert("additionalProperties".into(), json!(false));
    }
    if flag("nullable") {
        if let Some(Value::String(t)) = out.get("type").cloned() {
            out.insert("type".into(), json!([t, "null"]));
        }
        if let Some(Value::Array(options)) = out.get_mut("enum") {
            options.push(Value::Null);
        }
    }
    Value::Object(out)
}

/// A validator for the custom resources of one CRD.
pub(crate) struct CrdValidator {
    group: String,
    pub(crate) kind: String,
    /// Served version → (its `openAPIV3Schema` as published, the compiled JSON Schema).
    pub(crate) versions: BTreeMap<String, (Value, jsonschema::Validator)>,
    /// The CEL expressions of every served version, compiled.
    rules: CelRules,
}

/// What the CRD contains that the validator cannot check: must be empty.
#[derive(Debug, Default)]
pub(crate) struct Coverage {
    pub(crate) unknown_keywords: Vec<String>,
    /// Rules and messageExpressions that do not compile or call an undeclared function, with
    /// their text and why.
    pub(crate) rules_not_compiled: Vec<String>,
    pub(crate) unsupported_rule_fields: Vec<String>,
    pub(crate) rules_seen: BTreeSet<String>,
}

impl CrdValidator {
    pub(crate) fn load(path: &Path) -> (CrdValidator, Coverage) {
        let docs = yaml_documents(path);
        assert_eq!(docs.len(), 1, "{}: one CRD expected", path.display());
        CrdValidator::from_crd(&docs[0])
    }

    pub(crate) fn from_crd(crd: &Value) -> (CrdValidator, Coverage) {
        assert_eq!(crd["kind"], "CustomResourceDefinition");
        let group = crd["spec"]["group"].as_str().unwrap().to_string();
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap().to_string();
        let mut rules = CelRules::new();
        let mut coverage = Coverage::default();
        let mut versions = BTreeMap::new();
        for version in crd["spec"]["versions"].as_array().unwrap() {
            if version["served"] != json!(true) {
                continue;
            }
            let name = version["name"].as_str().unwrap().to_string();
            let schema = version["schema"]["openAPIV3Schema"].clone();
            assert!(schema.is_object(), "version {name}: no openAPIV3Schema");

            let mut converted = to_json_schema(&schema, &name, &mut coverage.unknown_keywords);
            // The API server adds the object's envelope to every CRD's schema.
            let root = converted.as_object_mut().unwrap();
            let props = root
                .entry("properties")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .unwrap();
            props.insert("apiVersion".into(), json!({ "type": "string" }));
            props.insert("kind".into(), json!({ "type": "string" }));
            props.insert("metadata".into(), json!({ "type": "object" }));
            let compiled = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft4)
                .should_validate_formats(true)
                .build(&converted)
                .unwrap_or_else(|e| panic!("version {name}: converted schema rejected: {e}"));

            collect_rules(&schema, &name, &mut rules, &mut coverage);
            versions.insert(name, (schema, compiled));
        }
        assert!(!versions.is_empty(), "no served version in {crd}");
        (
            CrdValidator {
                group,
                kind,
                versions,
                rules,
            },
            coverage,
        )
    }

    /// Every problem the API server would report for `doc`, worded like it; empty if accepted.
    pub(crate) fn validate(&self, doc: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        let Some(object) = doc.as_object() else {
            return vec![format!("document is {}, not an object", type_name(doc))];
        };
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let version = api_version
            .strip_prefix(&format!("{}/", self.group))
            .and_then(|v| self.versions.get_key_value(v));
        let Some((_, (schema, compiled))) = version else {
            let served: Vec<String> = self
                .versions
                .keys()
                .map(|v| format!("{}/{v}", self.group))
                .collect();
            return vec![format!(
                "apiVersion: Unsupported value: {api_version:?}: supported values: {served:?}"
            )];
        };
        if object.get("kind").and_then(Value::as_str) != Some(self.kind.as_str()) {
            errors.push(format!(
                "kind: Invalid value: {}: must be {:?}",
                object.get("kind").unwrap_or(&Value::Null),
                self.kind
            ));
        }
        check_metadata(object.get("metadata"), &mut errors);

        for error in compiled.iter_errors(doc) {
            errors.extend(k8s_message(&error, schema, doc));
        }
        self.check_extensions(schema, doc, "", &mut errors);
        errors
    }

    /// The parts of the schema JSON Schema cannot express: CEL rules and list types.
    fn check_extensions(
        &self,
        schema: &Value,
        value: &Value,
        path: &str,
        errors: &mut Vec<String>,
    ) {
        if value.is_null() || !type_matches(schema, value) {
            return; // reported by the structural check; CEL does not run on a wrong type
        }
        check_rules(schema, value, path, &self.rules, errors);
        match value {
            Value::Array(items) => {
                check_list_type(schema, items, path, errors);
                for (i, item) in items.iter().enumerate() {
                    self.check_extensions(&schema["items"], item, &format!("{path}[{i}]"), errors);
                }
            }
            Value::Object(fields) => {
                for (name, field) in fields {
                    if let Some(sub) = schema["properties"].get(name) {
                        let sub_path = if path.is_empty() {
                            name.clone()
                        } else {
                            format!("{path}.{name}")
                        };
                        self.check_extensions(sub, field, &sub_path, errors);
                    } else if schema["additionalProperties"].is_object() {
                        let sub_path = format!("{path}[{name}]");
                        self.check_extensions(
                            &schema["additionalProperties"],
                            field,
                            &sub_path,
                            errors,
                        );
                    }
                }
            }
            _ => {}
        }
    }
}

/// `x-kubernetes-list-type: map` (unique by `x-kubernetes-list-map-keys`) and `set`.
fn check_list_type(schema: &Value, items: &[Value], path: &str, errors: &mut Vec<String>) {
    let key_of = |item: &Value| -> Value {
        match schema["x-kubernetes-list-type"].as_str() {
            Some("map") => {
                let keys = schema["x-kubernetes-list-map-keys"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let mut key = Map::new();
                for k in keys.iter().filter_map(Value::as_str) {
                    key.insert(k.to_string(), item.get(k).cloned().unwrap_or(Value::Null));
                }
                Value::Object(key)
            }
            _ => item.clone(),
        }
    };
    if !matches!(
        schema["x-kubernetes-list-type"].as_str(),
        Some("map" | "set")
    ) {
        return;
    }
    let mut seen = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let key = key_of(item);
        if seen.contains(&key) {
            errors.push(format!("{path}[{i}]: Duplicate value: {key}"));
        } else {
            seen.push(key);
        }
    }
}

fn type_matches(schema: &Value, value: &Value) -> bool {
    match schema["type"].as_str() {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    }
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
