//! The CEL side of the validator on a small CRD written here, so it runs in every clone (Istio's
//! CRD is only in CI's): rule fields applied as the API server applies them, rules it cannot
//! evaluate reported with their text, and Kubernetes' URL functions answering like Kubernetes.

use crate::cel::CelRules;
use crate::crd::CrdValidator;
use cel::Value as CelValue;
use serde_json::{json, Value};

/// A `Widget` CRD whose `spec` carries `rules` (besides rules of its own on nested nodes).
fn widget_crd(rules: Value) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "spec": {
            "group": "example.com",
            "names": { "kind": "Widget" },
            "versions": [{ "name": "v1", "served": true, "schema": { "openAPIV3Schema": {
                "type": "object",
                "properties": { "spec": {
                    "type": "object",
                    "properties": {
                        "a": { "type": "string" },
                        "b": {
                            "type": "string",
                            "x-kubernetes-validations": [{
                                "rule": "self.startsWith('b') || self.nosuch == 1",
                                "message": "b rule"
                            }]
                        },
                        "labels": {
                            "type": "object",
                            "additionalProperties": {
                                "type": "string",
                                "x-kubernetes-validations": [
                                    { "rule": "self.size() <= 3", "message": "long label" }
                                ]
                            },
                            "x-kubernetes-validations": [{
                                "rule": "oldSelf.hasValue()",
                                "optionalOldSelf": true,
                                "message": "oldSelf is optional.none() on create"
                            }]
                        },
                        "ports": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": { "number": { "type": "integer" } },
                                "x-kubernetes-validations": [
                                    { "rule": "self.number != 0", "message": "port 0" }
                                ]
                            }
                        },
                        "ratio": {
                            "type": "number",
                            "x-kubernetes-validations": [{
                                "rule": "type(self) == double && self < 1.5",
                                "message": "ratio is a double below 1.5"
                            }]
                        }
                    },
                    "x-kubernetes-validations": rules
                }}
            }}}]
        }
    })
}

fn widget(spec: Value) -> Value {
    json!({
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": { "name": "w" },
        "spec": spec
    })
}

fn sorted(mut errors: Vec<String>) -> Vec<String> {
    errors.sort();
    errors
}

#[test]
fn rule_fields_are_applied_as_the_api_server_applies_them() {
    let (validator, coverage) = CrdValidator::from_crd(&widget_crd(json!([
        {
            "rule": "!(has(self.a) && has(self.b))",
            "messageExpression": "'a is ' + self.a + ' and b is ' + self.b",
            "reason": "FieldValueForbidden",
            "fieldPath": ".b"
        },
        {
            "rule": "!has(self.labels) || !('team' in self.labels)",
            "reason": "FieldValueDuplicate",
            "fieldPath": ".labels['team']"
        },
        {
            "rule": "!has(self.a) || self.a != 'fallback'",
            "messageExpression": "self.a + self.nosuch",
            "message": "  a must not be fallback  "
        },
        { "rule": "!has(self.a) || self.a.size() < 10" },
        { "rule": "!has(self.a) || self.a == oldSelf.a", "message": "transition rule" },
        { "rule": "!has(self.ports) || size(self.ports) < 3", "reason": "FieldValueRequired", "message": "few ports" }
    ])));
    assert!(coverage.rules_not_compiled.is_empty(), "{coverage:?}");
    assert!(coverage.unsupported_rule_fields.is_empty(), "{coverage:?}");
    assert_eq!(coverage.rules_seen.len(), 11, "{coverage:?}");

    let cases: Vec<(Value, Vec<&str>)> = vec![
        // Valid; the transition rule (oldSelf, no optionalOldSelf) does not run on create.
        (json!({ "a": "x", "ratio": 1.0 }), vec![]),
        (json!({ "b": "bee" }), vec![]),
        (
            json!({ "a": "x", "b": "bee" }),
            vec!["spec.b: Forbidden: a is x and b is bee"],
        ),
        // A messageExpression that fails to evaluate falls back to message, trimmed.
        (
            json!({ "a": "fallback" }),
            vec!["spec: Invalid value: \"object\": a must not be fallback"],
        ),
        // No message: the rule's text.
        (
            json!({ "a": "0123456789" }),
            vec![
                "spec: Invalid value: \"object\": failed rule: !has(self.a) || self.a.size() < 10",
            ],
        ),
        // A map key in fieldPath; optionalOldSelf runs the rule with oldSelf = optional.none();
        // a rule on additionalProperties sees each value.
        (
            json!({ "labels": { "team": "t" } }),
            vec![
                "spec.labels: Invalid value: \"object\": oldSelf is optional.none() on create",
                "spec.labels[team]: Duplicate value: \"object\"",
            ],
        ),
        (
            json!({ "labels": { "x": "long" } }),
            vec![
                "spec.labels: Invalid value: \"object\": oldSelf is optional.none() on create",
                "spec.labels[x]: Invalid value: \"string\": long label",
            ],
        ),
        // Rules under items see each item; FieldValueRequired.
        (
            json!({ "ports": [{ "number": 1 }, { "number": 0 }, { "number": 2 }] }),
            vec![
                "spec.ports[1]: Invalid value: \"object\": port 0",
                "spec: Required value: few ports",
            ],
        ),
        // `type: number` is a CEL double even when written as an integer.
        (json!({ "ratio": 1 }), vec![]),
        (
            json!({ "ratio": 2 }),
            vec!["spec.ratio: Invalid value: \"number\": ratio is a double below 1.5"],
        ),
    ];
    for (spec, expected) in cases {
        let errors = validator.validate(&widget(spec.clone()));
        let mut expected: Vec<String> = expected.into_iter().map(String::from).collect();
        expected.sort();
        assert_eq!(sorted(errors), expected, "spec {spec}");
    }

    // An evaluation error rejects, naming the rule by its message.
    let errors = validator.validate(&widget(json!({ "b": "c" })));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with("spec.b: Invalid value: \"string\": ")
            && errors[0].ends_with(" evaluating rule: b rule"),
        "{errors:#?}"
    );
}

#[test]
fn rules_the_interpreter_cannot_evaluate_are_reported_with_their_text() {
    let mut crd = widget_crd(json!([
        { "rule": "quantity(self.a) == quantity('1')", "message": "k8s quantity library" },
        { "rule": "self.a ==", "message": "does not parse" },
        { "rule": "true", "messageExpression": "self.a.nosuchFunction()" },
        { "rule": "true", "severity": "warning" },
        { "rule": "true", "reason": "FieldValueTooLong" },
        { "rule": "true", "fieldPath": ".nosuch" },
        { "rule": "true", "fieldPath": ".ports[0]" }
    ]));
    // And a schema keyword the converter does not know.
    let a = "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/a";
    crd.pointer_mut(a).unwrap()["x-kubernetes-embedded-resource"] = json!(true);
    let (validator, coverage) = CrdValidator::from_crd(&crd);

    assert_eq!(
        coverage.unknown_keywords,
        vec!["v1.spec.a: keyword x-kubernetes-embedded-resource".to_string()]
    );
    let not_compiled = coverage.rules_not_compiled.join("\n");
    assert_eq!(coverage.rules_not_compiled.len(), 3, "{not_compiled}");
    for expected in [
        "v1.spec: quantity(self.a) == quantity('1'): calls functions this CEL environment does not declare: quantity",
        "v1.spec: self.a ==: does not compile",
        "v1.spec: self.a.nosuchFunction(): calls functions this CEL environment does not declare: nosuchFunction",
    ] {
        assert!(not_compiled.contains(expected), "{expected:?} not in\n{not_compiled}");
    }
    let unsupported = coverage.unsupported_rule_fields.join("\n");
    assert_eq!(coverage.unsupported_rule_fields.len(), 4, "{unsupported}");
    for expected in [
        "v1.spec: field severity in rule true",
        "v1.spec: reason FieldValueTooLong in rule true",
        "v1.spec: fieldPath \".nosuch\": no field nosuch in rule true",
        "v1.spec: fieldPath \".ports[0]\": expected ['name'] (no list index) at \"[0]\" in rule true",
    ] {
        assert!(unsupported.contains(expected), "{expected:?} not in\n{unsupported}");
    }

    // A validator built anyway refuses every object instead of passing the rule it cannot run.
    let errors = validator.validate(&widget(json!({ "a": "1" })));
    assert!(
        errors.iter().any(|e| e
            .starts_with("spec: Invalid value: \"object\": rule compile error:")
            && e.ends_with("quantity(self.a) == quantity('1')")),
        "{errors:#?}"
    );
}

/// Kubernetes' documented examples of its CEL URL library, run through the interpreter.
#[test]
fn kubernetes_url_functions_answer_like_the_documented_examples() {
    let mut cel = CelRules::new();
    for (expression, expected) in [
        (
            "isURL('https://user:pass@example.com:80/path?query=val#fragment')",
            json!(true),
        ),
        ("isURL('/absolute-path')", json!(true)),
        ("isURL('https://a:b:c/')", json!(false)),
        ("isURL('../relative-path')", json!(false)),
        ("url('/path').getScheme()", json!("")),
        ("url('https://example.com/').getScheme()", json!("https")),
        ("url('OCI://r/x').getScheme()", json!("oci")),
        // Go's reading of host:port without a scheme: scheme "localhost", opaque "5000/x".
        ("url('localhost:5000/x').getScheme()", json!("localhost")),
        // Go refuses a bad escape in the path, which WHATWG parsers (the url crate) accept.
        ("isURL('http://h/%zz')", json!(false)),
    ] {
        cel.compile(expression)
            .unwrap_or_else(|e| panic!("{expression}: {e}"));
        let program = cel.program(expression).unwrap();
        let got = cel.run(program, &Value::Null, &Value::Null, false);
        let expected = match expected {
            Value::Bool(b) => CelValue::Bool(b),
            other => CelValue::String(other.as_str().unwrap().to_string().into()),
        };
        assert_eq!(got, Ok(expected), "{expression}");
    }
    // url() of what isURL refuses is an evaluation error with Go's reason.
    let expression = "url('../relative-path')";
    cel.compile(expression).unwrap();
    let got = cel.run(
        cel.program(expression).unwrap(),
        &Value::Null,
        &Value::Null,
        false,
    );
    let error = got.expect_err("url() of a relative path must fail");
    assert!(
        error.contains("URL parse error during conversion from string: invalid URI for request"),
        "{error}"
    );
}
