//! The JSON Schema (`config.schema.json`) agrees with the parser: every example config is valid
//! under both, and every rejected config in `testdata/invalid_configs.json` gets the verdict its
//! row records — `rejects` where a schema can express the rule, `accepts` where only the parser
//! can (references between names, regex syntax, CIDR host bits, duplicate keys).
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use ballast_policy::config::Config;
use serde_json::Value;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(root().join("filter/policy/config.schema.json")).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::draft202012::new(&schema).unwrap()
}

fn example_configs() -> Vec<(String, String)> {
    let mut found = Vec::new();
    let dirs = ["examples/configs"];
    for dir in dirs {
        for entry in std::fs::read_dir(root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                found.push((
                    path.display().to_string(),
                    std::fs::read_to_string(&path).unwrap(),
                ));
            }
        }
    }
    found
}

#[test]
fn examples_are_valid_under_schema_and_parser() {
    let validator = validator();
    let examples = example_configs();
    assert!(
        examples.len() >= 9,
        "examples/configs holds the shipped examples"
    );
    for (name, text) in examples {
        let value: Value = serde_json::from_str(&text).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{name}: schema says {errors:?}");
        assert!(
            Config::from_json(text.as_bytes()).is_ok(),
            "{name}: parser rejects"
        );
    }
}

#[test]
fn rejected_configs_get_the_recorded_schema_verdict() {
    let validator = validator();
    let text = std::fs::read_to_string(root().join("filter/policy/testdata/invalid_configs.json"))
        .unwrap();
    let rows: Vec<Value> = serde_json::from_str(&text).unwrap();
    let mut rejected_by_schema = 0;
    for row in &rows {
        let why = row["why"].as_str().unwrap();
        let config = row["config"].as_str().unwrap();
        let verdict = row["schema"].as_str().unwrap();
        assert!(
            Config::from_json(config.as_bytes()).is_err(),
            "{why}: parser accepts"
        );
        match (serde_json::from_str::<Value>(config), verdict) {
            (Err(_), "unparsable") => {}
            (Ok(value), "rejects") => {
                assert!(
                    !validator.is_valid(&value),
                    "{why}: schema accepts {config}"
                );
                rejected_by_schema += 1;
            }
            (Ok(value), "accepts") => {
                assert!(
                    validator.is_valid(&value),
                    "{why}: schema now rejects it; record `rejects` in the table"
                );
            }
            (parsed, verdict) => panic!("{why}: verdict `{verdict}` but JSON parse {parsed:?}"),
        }
    }
    assert!(
        rejected_by_schema >= 15,
        "only {rejected_by_schema} rows rejected by the schema"
    );
}
