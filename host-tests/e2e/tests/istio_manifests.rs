#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code
//! The Istio manifests in `envoy-config/istio/` are valid `WasmPlugin`s, and their
//! `pluginConfig` is a configuration ballast accepts.
//!
//! There is no Kubernetes API server here, so the check is a validator built from Istio's own
//! CRD (`wasmplugin-crd.yaml` in the shared Istio folder):
//! - the `openAPIV3Schema` of each served version, converted to JSON Schema (draft 4, whose
//!   boolean `exclusiveMinimum` matches OpenAPI 3.0) and checked with the `jsonschema` crate;
//!   unknown fields are errors, as with `kubectl apply --validate=strict`;
//! - the CRD's CEL rules (`x-kubernetes-validations`), each implemented in Rust under its exact
//!   rule text; a rule in the CRD without an implementation fails the test, so a CRD update
//!   cannot be silently half-checked;
//! - `x-kubernetes-list-type: map|set` uniqueness, and the API server's metadata checks
//!   (`apiVersion`/`kind`, name a DNS-1123 subdomain, namespace a DNS-1123 label).
//!
//! Errors are worded the way the API server words them (`spec.url in body should be at least 1
//! chars long`, `spec.vmConfig.env[1]: Duplicate value: ...`), so the validator is proven on
//! Istio's own examples: every document of `wasmplugin-valid.yaml` must pass, and every
//! document of `wasmplugin-invalid.yaml` must fail with the message fragment in its `_err` key.
//!
//! The shared folder is `$BALLAST_ISTIO_SHARED`, else `<repo>/../shared/istio`; it is required.

use ballast_mock_host::{Host, PluginModule};
use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

fn shared_istio_dir() -> PathBuf {
    let dir = std::env::var_os("BALLAST_ISTIO_SHARED")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/istio"));
    assert!(
        dir.join("wasmplugin-crd.yaml").is_file(),
        "Istio's WasmPlugin CRD and examples are missing: expected {}/wasmplugin-crd.yaml \
         (and wasmplugin-valid.yaml, wasmplugin-invalid.yaml). CI has them at \
         <repo>/../shared/istio; elsewhere set BALLAST_ISTIO_SHARED to that folder.",
        dir.display()
    );
    dir
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every non-empty YAML document of a file, as JSON values.
fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_yaml_ng::Deserializer::from_str(&text)
        .enumerate()
        .map(|(i, doc)| {
            Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{} document {i}: not YAML: {e}", path.display()))
        })
        .filter(|doc| !doc.is_null())
        .collect()
}

/// The shipped manifests, as (file name, documents).
fn shipped_manifests() -> Vec<(String, Vec<Value>)> {
    let dir = repo_root().join("envoy-config/istio");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, yaml_documents(p))
        })
        .collect()
}

fn doc_name(doc: &Value) -> String {
    doc.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>")
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// The validator
// ---------------------------------------------------------------------------------------------

/// A CEL rule of the CRD, implemented in Rust: `Ok(false)` is a violation (reported with the
/// rule's message), `Err` an evaluation error (also a rejection, as in the API server).
type CelRule = fn(&Value) -> Result<bool, String>;

/// The URL rule of `spec.url`, exactly as the CRD spells it (a YAML folded string).
const URL_RULE: &str = concat!(
    r#"isURL(self) ? (url(self).getScheme() in ["", "http", "https", "oci", "file"]) : (isURL("http://" + self) &&"#,
    "\n",
    r#"url("http://" + self).getScheme() in ["", "http", "https", "oci", "file"])"#
);

/// Every CEL rule the validator implements, keyed by its exact text in the CRD.
fn cel_rules() -> BTreeMap<&'static str, CelRule> {
    let mut rules: BTreeMap<&'static str, CelRule> = BTreeMap::new();
    // selector.matchLabels values
    rules.insert(r#"!self.contains("*")"#, |v| Ok(!string(v)?.contains('*')));
    // selector.matchLabels keys
    rules.insert(r#"self.all(key, !key.contains("*"))"#, |v| {
        Ok(object(v)?.keys().all(|k| !k.contains('*')))
    });
    rules.insert(r#"self.all(key, key.size() != 0)"#, |v| {
        Ok(object(v)?.keys().all(|k| !k.is_empty()))
    });
    // targetRef(s).namespace
    rules.insert("self.size() == 0", |v| Ok(string(v)?.is_empty()));
    rules.insert(URL_RULE, |v| url_rule(string(v)?));
    // vmConfig.env[*]
    rules.insert(
        r#"(has(self.valueFrom) ? self.valueFrom : "") != "HOST" || !has(self.value)"#,
        |v| {
            let env = object(v)?;
            let value_from = match has(env, "valueFrom") {
                true => string(&env["valueFrom"])?,
                false => "",
            };
            Ok(value_from != "HOST" || !has(env, "value"))
        },
    );
    // spec
    rules.insert(
        "(has(self.selector) ? 1 : 0) + (has(self.targetRef) ? 1 : 0) + (has(self.targetRefs) ? 1 : 0) <= 1",
        |v| {
            let spec = object(v)?;
            let set = ["selector", "targetRef", "targetRefs"]
                .iter()
                .filter(|f| has(spec, f))
                .count();
            Ok(set <= 1)
        },
    );
    rules
}

fn string(v: &Value) -> Result<&str, String> {
    v.as_str()
        .ok_or_else(|| format!("no such overload: expected string, got {}", type_name(v)))
}

fn object(v: &Value) -> Result<&Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("no such overload: expected object, got {}", type_name(v)))
}

/// CEL `has(self.field)` on an object decoded from a manifest: the field is set.
fn has(object: &Map<String, Value>, field: &str) -> bool {
    object.get(field).is_some_and(|v| !v.is_null())
}

/// The `spec.url` rule. `isURL`/`url` are Kubernetes' CEL URL library: `isURL(s)` is Go's
/// `url.ParseRequestURI(s) == nil`, and `url(s)` additionally parses with `url.Parse` (an error
/// there is an evaluation error). CEL's `&&` is false when its left side is false.
fn url_rule(s: &str) -> Result<bool, String> {
    const SCHEMES: [&str; 5] = ["", "http", "https", "oci", "file"];
    if go_url::is_url(s) {
        return Ok(SCHEMES.contains(&go_url::cel_url_scheme(s)?.as_str()));
    }
    let with_http = format!("http://{s}");
    if !go_url::is_url(&with_http) {
        return Ok(false);
    }
    Ok(SCHEMES.contains(&go_url::cel_url_scheme(&with_http)?.as_str()))
}

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
fn to_json_schema(node: &Value, at: &str, unknown: &mut Vec<String>) -> Value {
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
struct CrdValidator {
    group: String,
    kind: String,
    /// Served version → (its `openAPIV3Schema` as published, the compiled JSON Schema).
    versions: BTreeMap<String, (Value, jsonschema::Validator)>,
    rules: BTreeMap<&'static str, CelRule>,
}

/// What the CRD contains that the validator cannot check: must be empty.
#[derive(Debug, Default)]
struct Coverage {
    unknown_keywords: Vec<String>,
    unimplemented_rules: Vec<String>,
    unsupported_rule_fields: Vec<String>,
    rules_seen: BTreeSet<String>,
}

impl CrdValidator {
    fn load(path: &Path) -> (CrdValidator, Coverage) {
        let docs = yaml_documents(path);
        assert_eq!(docs.len(), 1, "{}: one CRD expected", path.display());
        let crd = &docs[0];
        assert_eq!(crd["kind"], "CustomResourceDefinition");
        let group = crd["spec"]["group"].as_str().unwrap().to_string();
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap().to_string();
        let rules = cel_rules();
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

            collect_rules(&schema, &name, &rules, &mut coverage);
            versions.insert(name, (schema, compiled));
        }
        assert!(
            !versions.is_empty(),
            "{}: no served version",
            path.display()
        );
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
    fn validate(&self, doc: &Value) -> Vec<String> {
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
        for rule in schema["x-kubernetes-validations"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let text = rule["rule"].as_str().unwrap_or("");
            let message = rule["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("failed rule: {text}"));
            let outcome = match self.rules.get(text) {
                Some(check) => check(value),
                None => Err(format!("rule not implemented by this validator: {text}")),
            };
            match outcome {
                Ok(true) => {}
                Ok(false) => errors.push(format!(
                    "{}: Invalid value: \"{}\": {message}",
                    display_path(path),
                    type_name(value)
                )),
                Err(e) => errors.push(format!(
                    "{}: Invalid value: \"{}\": {e}",
                    display_path(path),
                    type_name(value)
                )),
            }
        }
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

/// Walks the published schema for the coverage check: every CEL rule must be implemented, and
/// rules may use only `rule` and `message`.
fn collect_rules(
    schema: &Value,
    at: &str,
    implemented: &BTreeMap<&'static str, CelRule>,
    coverage: &mut Coverage,
) {
    for rule in schema["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let text = rule["rule"].as_str().unwrap_or("").to_string();
        if !implemented.contains_key(text.as_str()) {
            coverage.unimplemented_rules.push(format!("{at}: {text}"));
        }
        for field in rule.as_object().into_iter().flat_map(|r| r.keys()) {
            if field != "rule" && field != "message" {
                coverage
                    .unsupported_rule_fields
                    .push(format!("{at}: {field} in rule {text}"));
            }
        }
        coverage.rules_seen.insert(text);
    }
    if let Some(props) = schema["properties"].as_object() {
        for (name, sub) in props {
            collect_rules(sub, &format!("{at}.{name}"), implemented, coverage);
        }
    }
    for key in ["items", "additionalProperties"] {
        if schema[key].is_object() {
            collect_rules(&schema[key], &format!("{at}[*]"), implemented, coverage);
        }
    }
    for key in ["anyOf", "allOf", "oneOf"] {
        for sub in schema[key].as_array().into_iter().flatten() {
            collect_rules(sub, at, implemented, coverage);
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

fn type_name(v: &Value) -> &'static str {
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

fn display_path(path: &str) -> &str {
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
fn k8s_message(
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

/// The API server's checks of `metadata` that matter for a manifest.
fn check_metadata(metadata: Option<&Value>, errors: &mut Vec<String>) {
    let Some(metadata) = metadata.and_then(Value::as_object) else {
        errors.push("metadata: Required value".into());
        return;
    };
    match metadata.get("name").and_then(Value::as_str) {
        None => errors.push("metadata.name: Required value: name or generateName is required".into()),
        Some(name) if !is_dns1123_subdomain(name) => errors.push(format!(
            "metadata.name: Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of \
             lower case alphanumeric characters, '-' or '.', and must start and end with an \
             alphanumeric character"
        )),
        Some(_) => {}
    }
    if let Some(namespace) = metadata.get("namespace") {
        match namespace.as_str() {
            Some(ns) if is_dns1123_label(ns) => {}
            _ => errors.push(format!(
                "metadata.namespace: Invalid value: {namespace}: a lowercase RFC 1123 label must \
                 consist of lower case alphanumeric characters or '-', and must start and end with \
                 an alphanumeric character"
            )),
        }
    }
    if let Some(labels) = metadata.get("labels").and_then(Value::as_object) {
        for (key, value) in labels {
            if !is_qualified_name(key) {
                errors.push(format!(
                    "metadata.labels: Invalid value: {key:?}: not a qualified name"
                ));
            }
            if !value.as_str().is_some_and(is_label_value) {
                errors.push(format!(
                    "metadata.labels: Invalid value: {value}: not a label value"
                ));
            }
        }
    }
    if let Some(annotations) = metadata.get("annotations").and_then(Value::as_object) {
        for key in annotations.keys().filter(|k| !is_qualified_name(k)) {
            errors.push(format!(
                "metadata.annotations: Invalid value: {key:?}: not a qualified name"
            ));
        }
    }
}

fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// `[prefix/]name`: prefix a DNS-1123 subdomain, name ≤ 63 of `[A-Za-z0-9_.-]`, alphanumeric ends.
fn is_qualified_name(s: &str) -> bool {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    prefix.is_none_or(is_dns1123_subdomain) && !name.is_empty() && is_label_value(name)
}

fn is_label_value(s: &str) -> bool {
    let b = s.as_bytes();
    b.is_empty()
        || (b.len() <= 63
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric())
}

/// The parts of Go's `net/url` that Kubernetes' CEL `isURL`/`url` use: `ParseRequestURI` and
/// `Parse`, ported for validation only (they return the scheme or the error Go would give).
mod go_url {
    #[derive(Clone, Copy, PartialEq)]
    enum Mode {
        Path,
        Host,
        Zone,
        UserPassword,
        Fragment,
    }

    fn is_hex(c: u8) -> bool {
        c.is_ascii_hexdigit()
    }

    fn unhex(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => 0,
        }
    }

    fn should_escape(c: u8, mode: Mode) -> bool {
        if c.is_ascii_alphanumeric() {
            return false;
        }
        if matches!(mode, Mode::Host | Mode::Zone)
            && matches!(
                c,
                b'!' | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'['
                    | b']'
                    | b'<'
                    | b'>'
                    | b'"'
            )
        {
            return false;
        }
        match c {
            b'-' | b'_' | b'.' | b'~' => return false,
            b'$' | b'&' | b'+' | b',' | b'/' | b':' | b';' | b'=' | b'?' | b'@' => match mode {
                Mode::Path => return c == b'?',
                Mode::UserPassword => return matches!(c, b'@' | b'/' | b'?' | b':'),
                Mode::Fragment => return false,
                Mode::Host | Mode::Zone => {}
            },
            _ => {}
        }
        if mode == Mode::Fragment && matches!(c, b'!' | b'(' | b')' | b'*') {
            return false;
        }
        true
    }

    /// Go's `unescape`, keeping only its verdict.
    fn unescape(s: &str, mode: Mode) -> Result<(), String> {
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'%' => {
                    if i + 2 >= b.len() || !is_hex(b[i + 1]) || !is_hex(b[i + 2]) {
                        let end = (i + 3).min(b.len());
                        return Err(format!("invalid URL escape {:?}", &s[i..end]));
                    }
                    let escape = &s[i..i + 3];
                    if mode == Mode::Host && unhex(b[i + 1]) < 8 && escape != "%25" {
                        return Err(format!("invalid URL escape {escape:?}"));
                    }
                    if mode == Mode::Zone {
                        let v = (unhex(b[i + 1]) << 4) | unhex(b[i + 2]);
                        if escape != "%25" && v != b' ' && should_escape(v, Mode::Host) {
                            return Err(format!("invalid URL escape {escape:?}"));
                        }
                    }
                    i += 3;
                }
                c => {
                    if matches!(mode, Mode::Host | Mode::Zone) && c < 0x80 && should_escape(c, mode)
                    {
                        return Err(format!("invalid character {:?} in host name", c as char));
                    }
                    i += 1;
                }
            }
        }
        Ok(())
    }

    fn get_scheme(raw: &str) -> Result<(&str, &str), String> {
        for (i, c) in raw.bytes().enumerate() {
            match c {
                b'a'..=b'z' | b'A'..=b'Z' => {}
                b'0'..=b'9' | b'+' | b'-' | b'.' if i == 0 => return Ok(("", raw)),
                b'0'..=b'9' | b'+' | b'-' | b'.' => {}
                b':' if i == 0 => return Err("missing protocol scheme".into()),
                b':' => return Ok((&raw[..i], &raw[i + 1..])),
                _ => return Ok(("", raw)),
            }
        }
        Ok(("", raw))
    }

    fn valid_optional_port(port: &str) -> bool {
        port.is_empty() || (port.starts_with(':') && port[1..].bytes().all(|b| b.is_ascii_digit()))
    }

    fn parse_host(host: &str) -> Result<(), String> {
        if host.starts_with('[') {
            let i = host.rfind(']').ok_or("missing ']' in host")?;
            let colon_port = &host[i + 1..];
            if !valid_optional_port(colon_port) {
                return Err(format!("invalid port {colon_port:?} after host"));
            }
            if let Some(zone) = host[..i].find("%25") {
                unescape(&host[..zone], Mode::Host)?;
                unescape(&host[zone..i], Mode::Zone)?;
                return unescape(&host[i..], Mode::Host);
            }
        } else if let Some(i) = host.rfind(':') {
            let colon_port = &host[i..];
            if !valid_optional_port(colon_port) {
                return Err(format!("invalid port {colon_port:?} after host"));
            }
        }
        unescape(host, Mode::Host)
    }

    fn valid_userinfo(s: &str) -> bool {
        s.chars().all(|r| {
            r.is_ascii_alphanumeric()
                || matches!(
                    r,
                    '-' | '.'
                        | '_'
                        | ':'
                        | '~'
                        | '!'
                        | '$'
                        | '&'
                        | '\''
                        | '('
                        | ')'
                        | '*'
                        | '+'
                        | ','
                        | ';'
                        | '='
                        | '%'
                        | '@'
                )
        })
    }

    fn parse_authority(authority: &str) -> Result<(), String> {
        let at = authority.rfind('@');
        match at {
            None => parse_host(authority)?,
            Some(i) => parse_host(&authority[i + 1..])?,
        }
        let Some(i) = at else { return Ok(()) };
        let userinfo = &authority[..i];
        if !valid_userinfo(userinfo) {
            return Err("net/url: invalid userinfo".into());
        }
        match userinfo.split_once(':') {
            None => unescape(userinfo, Mode::UserPassword),
            Some((user, password)) => {
                unescape(user, Mode::UserPassword)?;
                unescape(password, Mode::UserPassword)
            }
        }
    }

    /// Go's `parse(rawURL, viaRequest)`; returns the lower-cased scheme.
    fn parse(raw: &str, via_request: bool) -> Result<String, String> {
        if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err("net/url: invalid control character in URL".into());
        }
        if raw.is_empty() && via_request {
            return Err("empty url".into());
        }
        if raw == "*" {
            return Ok(String::new());
        }
        let (scheme, rest) = get_scheme(raw)?;
        let scheme = scheme.to_ascii_lowercase();
        let mut rest = if rest.ends_with('?') && rest.matches('?').count() == 1 {
            &rest[..rest.len() - 1]
        } else {
            rest.split_once('?').map_or(rest, |(before, _)| before)
        };
        if !rest.starts_with('/') {
            if !scheme.is_empty() {
                return Ok(scheme); // opaque
            }
            if via_request {
                return Err("invalid URI for request".into());
            }
            let segment = rest.split_once('/').map_or(rest, |(s, _)| s);
            if segment.contains(':') {
                return Err("first path segment in URL cannot contain colon".into());
            }
        }
        if (!scheme.is_empty() || !via_request && !rest.starts_with("///"))
            && rest.starts_with("//")
        {
            let mut authority = &rest[2..];
            rest = "";
            if let Some(i) = authority.find('/') {
                rest = &authority[i..];
                authority = &authority[..i];
            }
            parse_authority(authority)?;
        }
        unescape(rest, Mode::Path)?;
        Ok(scheme)
    }

    /// CEL `isURL(s)`: `url.ParseRequestURI(s)` succeeds.
    pub fn is_url(s: &str) -> bool {
        parse(s, true).is_ok()
    }

    /// CEL `url(s).getScheme()`: `ParseRequestURI`, then `Parse` (fragment split off).
    pub fn cel_url_scheme(s: &str) -> Result<String, String> {
        parse(s, true)
            .map_err(|e| format!("URL parse error during conversion from string: {e}"))?;
        let (before, fragment) = s.split_once('#').map_or((s, None), |(b, f)| (b, Some(f)));
        let scheme = parse(before, false)
            .map_err(|e| format!("URL parse error during conversion from string: {e}"))?;
        if let Some(fragment) = fragment {
            unescape(fragment, Mode::Fragment)
                .map_err(|e| format!("URL parse error during conversion from string: {e}"))?;
        }
        Ok(scheme)
    }
}

// ---------------------------------------------------------------------------------------------
// Tests: the validator covers the CRD and is right on Istio's examples
// ---------------------------------------------------------------------------------------------

fn validator() -> CrdValidator {
    let (validator, _) = CrdValidator::load(&shared_istio_dir().join("wasmplugin-crd.yaml"));
    validator
}

#[test]
fn the_validator_understands_everything_in_the_crd() {
    let (validator, coverage) = CrdValidator::load(&shared_istio_dir().join("wasmplugin-crd.yaml"));
    assert_eq!(validator.kind, "WasmPlugin");
    assert!(
        validator.versions.contains_key("v1alpha1"),
        "{:?}",
        validator.versions.keys()
    );
    assert!(
        coverage.unknown_keywords.is_empty(),
        "schema keywords the converter does not handle: {:#?}",
        coverage.unknown_keywords
    );
    assert!(
        coverage.unimplemented_rules.is_empty(),
        "CEL rules of the CRD without a Rust implementation (add them to cel_rules()): {:#?}",
        coverage.unimplemented_rules
    );
    assert!(
        coverage.unsupported_rule_fields.is_empty(),
        "CEL rule fields the validator does not support: {:#?}",
        coverage.unsupported_rule_fields
    );
    // And no implementation is dead: each one is a rule of this CRD.
    let stale: Vec<&&str> = validator
        .rules
        .keys()
        .filter(|r| !coverage.rules_seen.contains(**r))
        .collect();
    assert!(
        stale.is_empty(),
        "implemented rules no longer in the CRD: {stale:#?}"
    );
    assert_eq!(coverage.rules_seen.len(), 7, "{:#?}", coverage.rules_seen);
}

/// The coverage check itself works: a changed rule or a new keyword in the CRD is reported.
#[test]
fn a_crd_update_the_validator_does_not_know_is_reported() {
    let crd = &yaml_documents(&shared_istio_dir().join("wasmplugin-crd.yaml"))[0];
    let mut schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
    let spec = &mut schema["properties"]["spec"];
    spec["x-kubernetes-validations"][0]["rule"] = json!("has(self.url)");
    spec["x-kubernetes-validations"][0]["messageExpression"] = json!("'x'");
    spec["properties"]["url"]["x-kubernetes-embedded-resource"] = json!(true);

    let mut coverage = Coverage::default();
    collect_rules(&schema, "v", &cel_rules(), &mut coverage);
    to_json_schema(&schema, "v", &mut coverage.unknown_keywords);
    assert_eq!(
        coverage.unimplemented_rules,
        vec!["v.spec: has(self.url)".to_string()]
    );
    assert_eq!(coverage.unsupported_rule_fields.len(), 1, "{coverage:?}");
    assert_eq!(
        coverage.unknown_keywords,
        vec!["v.spec.url: keyword x-kubernetes-embedded-resource".to_string()]
    );
}

#[test]
fn istio_valid_examples_are_accepted() {
    let validator = validator();
    let docs = yaml_documents(&shared_istio_dir().join("wasmplugin-valid.yaml"));
    assert!(docs.len() >= 4, "{} documents", docs.len());
    for doc in &docs {
        let errors = validator.validate(doc);
        assert!(errors.is_empty(), "{} rejected: {errors:#?}", doc_name(doc));
    }
}

#[test]
fn istio_invalid_examples_are_rejected_with_the_expected_message() {
    let validator = validator();
    let docs = yaml_documents(&shared_istio_dir().join("wasmplugin-invalid.yaml"));
    assert!(docs.len() >= 15, "{} documents", docs.len());
    for (i, doc) in docs.iter().enumerate() {
        let mut doc = doc.clone();
        let expected = doc
            .as_object_mut()
            .and_then(|o| o.remove("_err"))
            .and_then(|e| e.as_str().map(str::to_string))
            .unwrap_or_else(|| panic!("document {i} has no _err"));
        let errors = validator.validate(&doc);
        let matched = errors.iter().find(|e| e.contains(&expected));
        assert!(
            matched.is_some(),
            "document {i} ({}): expected an error containing {expected:?}, got {errors:#?}",
            doc_name(&doc)
        );
        eprintln!("{} ({}): {errors:?}", doc_name(&doc), expected);
    }
}

/// The rules Istio's examples do not exercise, and the validator's own additions.
#[test]
fn the_validator_rejects_what_istio_examples_do_not_cover() {
    let validator = validator();
    let base = json!({
        "apiVersion": "extensions.istio.io/v1alpha1",
        "kind": "WasmPlugin",
        "metadata": { "name": "p", "namespace": "ns" },
        "spec": { "url": "oci://registry.example.com/p:1" }
    });
    let with = |pointer: &str, value: Value| {
        let mut doc = base.clone();
        let (parent, field) = pointer.rsplit_once('/').unwrap();
        doc.pointer_mut(parent)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .insert(field.into(), value);
        doc
    };
    assert_eq!(validator.validate(&base), Vec::<String>::new());

    let cases: Vec<(Value, &str)> = vec![
        (
            {
                let mut doc = with("/spec/targetRefs", json!([{ "kind": "Gateway", "name": "g" }]));
                doc["spec"]["selector"] = json!({ "matchLabels": { "app": "a" } });
                doc
            },
            "spec: Invalid value: \"object\": only one of targetRefs or selector can be set",
        ),
        (
            with("/spec/targetRef", json!({ "kind": "Gateway", "name": "g", "namespace": "other" })),
            "spec.targetRef.namespace: Invalid value: \"string\": cross namespace referencing is not currently supported",
        ),
        (
            with("/spec/targetRefs", json!([{ "kind": "Gateway", "name": "g", "namespace": "x" }])),
            "spec.targetRefs[0].namespace: Invalid value",
        ),
        (
            with("/spec/selector", json!({ "matchLabels": { "": "a" } })),
            "key must not be empty",
        ),
        (with("/spec/failStrategy", json!("FAIL_SOMETIMES")), "spec.failStrategy: Unsupported value"),
        (with("/spec/phase", json!("AUTHX")), "spec.phase: Unsupported value"),
        (with("/spec/priority", json!(1_i64 << 40)), "spec.priority in body should be less than or equal to"),
        (with("/spec/pluginConfg", json!({})), "spec.pluginConfg: unknown field"),
        // ParseRequestURI accepts it (a path), Parse does not (host "a b"): an evaluation error.
        (with("/spec/url", json!("//a b")), "URL parse error during conversion"),
        (with("/spec/match", json!([{ "ports": [{ "number": 70000 }] }])), "spec.match[0].ports[0].number in body should be less than or equal to 65535"),
        (with("/metadata/name", json!("Ballast")), "metadata.name: Invalid value"),
        (with("/metadata/namespace", json!("a.b")), "metadata.namespace: Invalid value"),
        (with("/kind", json!("EnvoyFilter")), "kind: Invalid value"),
        (with("/apiVersion", json!("extensions.istio.io/v1")), "apiVersion: Unsupported value"),
    ];
    for (doc, expected) in cases {
        let errors = validator.validate(&doc);
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "expected an error containing {expected:?} for {doc}, got {errors:#?}"
        );
    }

    // Accepted forms the rules must not refuse.
    for (pointer, value) in [
        ("/spec/failStrategy", json!("FAIL_RELOAD")),
        ("/spec/priority", json!(null)),
        ("/spec/priority", json!(-5)),
        ("/spec/url", json!("registry.example.com/ballast:1")),
        ("/spec/url", json!("/opt/ballast.wasm")),
        (
            "/spec/url",
            json!("https://user:pw@example.com:8443/p.wasm?x=1#frag"),
        ),
        (
            "/spec/pluginConfig",
            json!({ "any": { "thing": [1, "two"] } }),
        ),
        (
            "/spec/targetRef",
            json!({ "kind": "Gateway", "name": "g", "namespace": "" }),
        ),
    ] {
        let doc = with(pointer, value.clone());
        assert_eq!(
            validator.validate(&doc),
            Vec::<String>::new(),
            "{pointer} = {value}"
        );
    }
}

#[test]
fn go_url_port_agrees_with_kubernetes_documented_examples() {
    // From the doc comment of Kubernetes' CEL URL library (k8s.io/apiextensions-apiserver).
    assert!(go_url::is_url(
        "https://user:pass@example.com:80/path?query=val#fragment"
    ));
    assert!(go_url::is_url("/absolute-path"));
    assert!(!go_url::is_url("https://a:b:c/"));
    assert!(!go_url::is_url("../relative-path"));
    assert_eq!(go_url::cel_url_scheme("/path").unwrap(), "");
    assert_eq!(
        go_url::cel_url_scheme("https://example.com/").unwrap(),
        "https"
    );
    assert_eq!(go_url::cel_url_scheme("OCI://r/x").unwrap(), "oci");
}

// ---------------------------------------------------------------------------------------------
// Tests: the shipped manifests
// ---------------------------------------------------------------------------------------------

#[test]
fn shipped_manifests_are_valid_wasmplugins() {
    let validator = validator();
    let manifests = shipped_manifests();
    assert!(
        manifests.len() >= 2,
        "expected the sidecar and gateway manifests: {manifests:?}"
    );
    for (file, docs) in &manifests {
        assert!(!docs.is_empty(), "{file}: no YAML document");
        for doc in docs {
            assert_eq!(doc["kind"], "WasmPlugin", "{file}");
            let errors = validator.validate(doc);
            assert!(errors.is_empty(), "{file} ({}): {errors:#?}", doc_name(doc));
        }
    }
}

/// What Istio hands the plugin: `pluginConfig` is a protobuf `Struct`, which istiod serialises
/// with protojson into the `StringValue` of the filter's `configuration`. Struct numbers are
/// doubles, so every number must survive the trip through f64 unchanged.
fn plugin_config_json(file: &str, doc: &Value) -> String {
    let config = doc
        .pointer("/spec/pluginConfig")
        .unwrap_or_else(|| panic!("{file} ({}): no pluginConfig", doc_name(doc)));
    fn check_numbers(v: &Value, file: &str) {
        match v {
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    assert!(
                        (i as f64) as i64 == i && i.unsigned_abs() <= 1 << 53,
                        "{file}: {i} does not survive protobuf Struct's double"
                    );
                }
            }
            Value::Array(items) => items.iter().for_each(|i| check_numbers(i, file)),
            Value::Object(fields) => fields.values().for_each(|f| check_numbers(f, file)),
            _ => {}
        }
    }
    check_numbers(config, file);
    serde_json::to_string(config).unwrap()
}

fn plugin() -> PluginModule {
    let path = ballast_e2e::paths::plugin_wasm().unwrap_or_else(|e| panic!("{e}"));
    PluginModule::load(&path).unwrap()
}

/// Starts the real plugin the way Istio configures it; returns whether `on_configure` accepted
/// and the logs.
fn start_like_istio(module: &PluginModule, doc: &Value, config: &str) -> (bool, Vec<String>) {
    let plugin_name = format!(
        "{}.{}",
        doc.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default"),
        doc_name(doc)
    );
    let root_id = doc
        .pointer("/spec/pluginName")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut host = Host::builder(module)
        .workers(2)
        .plugin_config(config)
        .plugin_name(&plugin_name)
        .root_id(root_id)
        .vm_id("") // Istio's VmConfig has no vm_id
        .build()
        .unwrap();
    let outcome = host.start().unwrap();
    let logs = outcome.logs.iter().map(|l| l.message.clone()).collect();
    (outcome.all_ok(), logs)
}

#[test]
fn shipped_plugin_configs_are_accepted_by_ballast_and_the_real_plugin() {
    let module = plugin();
    let mut checked = 0;
    for (file, docs) in shipped_manifests() {
        for doc in &docs {
            let config = plugin_config_json(&file, doc);
            if let Err(e) = ballast_policy::config::Config::from_json(config.as_bytes()) {
                panic!(
                    "{file} ({}): ballast's parser refuses pluginConfig: {e}\n{config}",
                    doc_name(doc)
                );
            }
            let (ok, logs) = start_like_istio(&module, doc, &config);
            assert!(
                ok,
                "{file} ({}): the plugin refused its configuration: {logs:#?}",
                doc_name(doc)
            );
            checked += 1;
        }
    }
    assert!(checked >= 2, "{checked} configurations checked");
}

/// The check above has teeth: a typo in pluginConfig is refused by both.
#[test]
fn a_misspelt_plugin_config_is_refused_by_ballast_and_the_real_plugin() {
    let module = plugin();
    let (file, docs) = shipped_manifests().into_iter().next().unwrap();
    let mut doc = docs[0].clone();
    doc["spec"]["pluginConfig"]["default_polcy_set"] = json!("static");
    let config = plugin_config_json(&file, &doc);
    let error = ballast_policy::config::Config::from_json(config.as_bytes())
        .expect_err("a misspelt field must be refused");
    assert!(error.to_string().contains("default_polcy_set"), "{error}");
    let (ok, logs) = start_like_istio(&module, &doc, &config);
    assert!(
        !ok,
        "the plugin accepted a misspelt configuration: {logs:#?}"
    );
}

/// An internet-facing gateway believes nobody's priority, deadline or retry hints.
#[test]
fn gateway_manifests_trust_no_peer() {
    let mut gateways = 0;
    for (file, docs) in shipped_manifests() {
        for doc in &docs {
            let is_gateway = doc.pointer("/spec/selector/matchLabels/istio")
                == Some(&json!("ingressgateway"))
                || doc["spec"]["targetRefs"]
                    .as_array()
                    .is_some_and(|refs| refs.iter().any(|r| r["kind"] == "Gateway"));
            if !is_gateway {
                continue;
            }
            gateways += 1;
            assert_eq!(
                doc.pointer("/spec/pluginConfig/trusted_peers"),
                Some(&json!({ "source_cidrs": [] })),
                "{file} ({}): a gateway must trust nobody",
                doc_name(doc)
            );
        }
    }
    assert!(gateways >= 1, "no gateway manifest found");
}
