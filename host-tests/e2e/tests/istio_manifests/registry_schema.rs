//! The shipped manifests against Istio's WasmPlugin schema as published on npm
//! (`@kubernetes-models/istio`, pinned in `host-tests/istio-schema/package.json`, installed by
//! `make istio-schema`), through `host-tests/istio-schema/validate.mjs`.
//!
//! Why beside the CRD validator: that one needs Istio's CRD from `../shared/istio`, which only
//! CI's clone has; this one needs nothing outside the repository, so every clone checks its
//! manifests. It knows the schema (types, enums, lengths, ranges, required fields, and unknown
//! fields through the package's TypeScript declarations), not the CRD's CEL rules.

use super::{doc_name, shared_istio_dir, shipped_manifests, yaml_documents};
use ballast_e2e::paths::repo_file;
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};

/// What the validator said of each manifest: (name, errors), in input order, and its exit code.
fn validate(manifests: &[(String, Value)]) -> (Vec<(String, Vec<String>)>, i32) {
    let dir = repo_file("host-tests/istio-schema");
    assert!(
        dir.join("node_modules/@kubernetes-models/istio/package.json")
            .is_file()
            && dir.join("node_modules/typescript/package.json").is_file(),
        "the npm packages of {} are not installed: run `make istio-schema` (make test does)",
        dir.display()
    );
    let input: Vec<Value> = manifests
        .iter()
        .map(|(name, manifest)| json!({ "name": name, "manifest": manifest }))
        .collect();
    let mut child = Command::new("node")
        .arg(dir.join("validate.mjs"))
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node (make test installs it): {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&input).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code == 0 || code == 1,
        "validate.mjs failed (exit {code}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "validate.mjs printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert_eq!(results.len(), manifests.len(), "{results:#?}");
    let results = results
        .iter()
        .map(|r| {
            let errors = r["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e.as_str().unwrap().to_string())
                .collect();
            (r["name"].as_str().unwrap().to_string(), errors)
        })
        .collect();
    (results, code)
}

/// Every shipped document, named `file (metadata.name)`.
fn shipped() -> Vec<(String, Value)> {
    shipped_manifests()
        .into_iter()
        .flat_map(|(file, docs)| {
            docs.into_iter()
                .map(move |doc| (format!("{file} ({})", doc_name(&doc)), doc))
        })
        .collect()
}

#[test]
fn shipped_manifests_pass_istios_published_schema() {
    let manifests = shipped();
    assert!(manifests.len() >= 3, "{} manifests", manifests.len());
    let (results, code) = validate(&manifests);
    for (name, errors) in &results {
        assert!(errors.is_empty(), "{name}: {errors:#?}");
    }
    assert_eq!(code, 0);
}

/// The check has teeth: broken copies of a shipped manifest fail it, each with the error that
/// names what is wrong.
#[test]
fn broken_copies_of_a_shipped_manifest_fail_istios_published_schema() {
    let (_, original) = shipped().into_iter().next().unwrap();
    let broken = |name: &str, change: &dyn Fn(&mut Value)| {
        let mut doc = original.clone();
        change(&mut doc);
        (name.to_string(), doc)
    };
    let cases: Vec<((String, Value), &str)> = vec![
        (
            broken("misspelt spec field", &|d| {
                d["spec"]["pluginConfg"] = d["spec"]["pluginConfig"].take();
                d["spec"].as_object_mut().unwrap().remove("pluginConfig");
            }),
            "type: spec.pluginConfg: Object literal may only specify known properties",
        ),
        (
            broken("misspelt metadata field", &|d| {
                d["metadata"]["nmespace"] = json!("shop");
            }),
            "type: metadata.nmespace: Object literal may only specify known properties",
        ),
        (
            broken("unknown nested field", &|d| {
                d["spec"]["match"] = json!([{ "ports": [{ "number": 8080, "protocol": "TCP" }] }]);
            }),
            "type: spec.match[0].ports[0].protocol: Object literal may only specify known properties",
        ),
        (
            broken("phase not in the enum", &|d| {
                d["spec"]["phase"] = json!("AUTHX");
            }),
            "schema: spec.phase: must be equal to one of the allowed values",
        ),
        (
            broken("failStrategy not in the enum", &|d| {
                d["spec"]["failStrategy"] = json!("FAIL_SOMETIMES");
            }),
            "schema: spec.failStrategy: must be equal to one of the allowed values",
        ),
        (
            broken("url of the wrong type", &|d| {
                d["spec"]["url"] = json!(5);
            }),
            "schema: spec.url: must be string",
        ),
        (
            broken("empty url", &|d| {
                d["spec"]["url"] = json!("");
            }),
            "schema: spec.url: must NOT be shorter than 1 character",
        ),
        (
            broken("no url", &|d| {
                d["spec"].as_object_mut().unwrap().remove("url");
            }),
            "schema: spec: must have required property url",
        ),
        (
            broken("port out of range", &|d| {
                d["spec"]["match"] = json!([{ "ports": [{ "number": 70000 }] }]);
            }),
            "schema: spec.match[0].ports[0].number: must be <= 65535",
        ),
        (
            broken("wrong apiVersion", &|d| {
                d["apiVersion"] = json!("extensions.istio.io/v1");
            }),
            "schema: apiVersion: must be equal to one of the allowed values",
        ),
    ];
    let manifests: Vec<(String, Value)> = cases.iter().map(|(m, _)| m.clone()).collect();
    let (results, code) = validate(&manifests);
    assert_eq!(code, 1, "a broken manifest must make the validator fail");
    for ((name, errors), (_, expected)) in results.iter().zip(&cases) {
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "{name}: expected an error containing {expected:?}, got {errors:#?}"
        );
    }
}

/// The published schema agrees with Istio's own accepted examples (when this clone has them).
#[test]
fn istio_valid_examples_pass_the_published_schema_too() {
    let Some(dir) = shared_istio_dir("istio_valid_examples_pass_the_published_schema_too") else {
        return;
    };
    let docs: Vec<(String, Value)> = yaml_documents(&dir.join("wasmplugin-valid.yaml"))
        .into_iter()
        .map(|doc| (doc_name(&doc), doc))
        .collect();
    assert!(docs.len() >= 4, "{} documents", docs.len());
    let (results, code) = validate(&docs);
    for (name, errors) in &results {
        assert!(errors.is_empty(), "{name}: {errors:#?}");
    }
    assert_eq!(code, 0);
}
