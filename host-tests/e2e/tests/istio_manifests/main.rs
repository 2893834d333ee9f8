#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code
//! The Istio manifests in `envoy-config/istio/` are valid `WasmPlugin`s, and their
//! `pluginConfig` is a configuration ballast accepts.
//!
//! There is no Kubernetes API server here, so the check is a validator built from Istio's own
//! CRD (`wasmplugin-crd.yaml` in the shared Istio folder):
//! - the `openAPIV3Schema` of each served version, converted to JSON Schema (draft 4, whose
//!   boolean `exclusiveMinimum` matches OpenAPI 3.0) and checked with the `jsonschema` crate;
//!   unknown fields are errors, as with `kubectl apply --validate=strict`;
//! - the CRD's CEL rules (`x-kubernetes-validations`), compiled from their text by the `cel`
//!   crate and evaluated where they are attached (`self` = that object, map value or list item),
//!   with `message`/`messageExpression`, `reason` and `fieldPath` as the API server applies them;
//!   Kubernetes' URL functions (`isURL`, `url`, `getScheme`) are added with Go's `net/url`
//!   semantics. A rule that does not compile or calls a function the environment lacks fails the
//!   coverage test with its text, so a CRD update cannot be silently half-checked;
//! - `x-kubernetes-list-type: map|set` uniqueness, and the API server's metadata checks
//!   (`apiVersion`/`kind`, name a DNS-1123 subdomain, namespace a DNS-1123 label).
//!
//! Errors are worded the way the API server words them (`spec.url in body should be at least 1
//! chars long`, `spec.vmConfig.env[1]: Duplicate value: ...`), so the validator is proven on
//! Istio's own examples: every document of `wasmplugin-valid.yaml` must pass, and every
//! document of `wasmplugin-invalid.yaml` must fail with the message fragment in its `_err` key.
//!
//! The CRD and examples are not part of the repository: they are read from
//! `$BALLAST_ISTIO_SHARED` when set (then they must be there), else from `<repo>/../shared/istio`
//! when present (CI's layout). Without them the checks that need them are skipped and counted
//! (`ballast_e2e::skipped`), and every clone still checks the shipped manifests against Istio's
//! schema as published on npm (`registry_schema.rs`).

mod cel;
mod cel_rule_tests;
mod cel_urls;
mod crd;
mod go_url;
mod k8s_message;
mod metadata;
mod registry_schema;
mod validation_rules;

use ballast_mock_host::{Host, PluginModule};
use crd::CrdValidator;
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

/// Istio's CRD and examples, or `None` (after recording the skip of `check`) when this clone has
/// no copy of them.
fn shared_istio_dir(check: &str) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("BALLAST_ISTIO_SHARED").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        assert!(
            dir.join("wasmplugin-crd.yaml").is_file(),
            "BALLAST_ISTIO_SHARED is set, but {}/wasmplugin-crd.yaml is missing \
             (expected Istio's WasmPlugin CRD, wasmplugin-valid.yaml and wasmplugin-invalid.yaml)",
            dir.display()
        );
        return Some(dir);
    }
    let dir = repo_root().join("../shared/istio");
    if dir.join("wasmplugin-crd.yaml").is_file() {
        return Some(dir);
    }
    ballast_e2e::skipped::skip(
        &format!("istio_manifests::{check}"),
        "needs Istio's WasmPlugin CRD and examples in ../shared/istio beside the clone \
         (or BALLAST_ISTIO_SHARED); the manifests are still checked against the published schema",
    );
    None
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
// Tests: the validator covers the CRD and is right on Istio's examples
// ---------------------------------------------------------------------------------------------

/// The CRD validator and the folder it came from, or `None` when `check` is skipped.
fn validator(check: &str) -> Option<(CrdValidator, PathBuf)> {
    let dir = shared_istio_dir(check)?;
    let (validator, _) = CrdValidator::load(&dir.join("wasmplugin-crd.yaml"));
    Some((validator, dir))
}

#[test]
fn the_validator_understands_everything_in_the_crd() {
    let Some(dir) = shared_istio_dir("the_validator_understands_everything_in_the_crd") else {
        return;
    };
    let (validator, coverage) = CrdValidator::load(&dir.join("wasmplugin-crd.yaml"));
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
        coverage.rules_not_compiled.is_empty(),
        "CEL rules of the CRD the interpreter cannot evaluate: {:#?}",
        coverage.rules_not_compiled
    );
    assert!(
        coverage.unsupported_rule_fields.is_empty(),
        "CEL rule fields the validator does not support: {:#?}",
        coverage.unsupported_rule_fields
    );
    // The CRD has rules, so the checks above looked at something (Istio's had 7 distinct ones).
    assert!(
        !coverage.rules_seen.is_empty(),
        "no x-kubernetes-validations found in the CRD"
    );
}

#[test]
fn istio_valid_examples_are_accepted() {
    let Some((validator, dir)) = validator("istio_valid_examples_are_accepted") else {
        return;
    };
    let docs = yaml_documents(&dir.join("wasmplugin-valid.yaml"));
    assert!(docs.len() >= 4, "{} documents", docs.len());
    for doc in &docs {
        let errors = validator.validate(doc);
        assert!(errors.is_empty(), "{} rejected: {errors:#?}", doc_name(doc));
    }
}

#[test]
fn istio_invalid_examples_are_rejected_with_the_expected_message() {
    let Some((validator, dir)) =
        validator("istio_invalid_examples_are_rejected_with_the_expected_message")
    else {
        return;
    };
    let docs = yaml_documents(&dir.join("wasmplugin-invalid.yaml"));
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
    let Some((validator, _)) = validator("the_validator_rejects_what_istio_examples_do_not_cover")
    else {
        return;
    };
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
        // A scheme Go reads from "host:port/path", not one of the allowed ones.
        (with("/spec/url", json!("localhost:5000/ballast.wasm")), "url must have schema one of"),
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

// ---------------------------------------------------------------------------------------------
// Tests: the shipped manifests
// ---------------------------------------------------------------------------------------------

#[test]
fn shipped_manifests_are_valid_wasmplugins() {
    let Some((validator, _)) = validator("shipped_manifests_are_valid_wasmplugins") else {
        return;
    };
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
