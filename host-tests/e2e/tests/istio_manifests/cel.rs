//! The CRD's CEL rules (`x-kubernetes-validations`), each implemented in Rust under its exact
//! rule text, so the validator can check them without a CEL interpreter.

use crate::crd::type_name;
use crate::go_url;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A CEL rule of the CRD, implemented in Rust: `Ok(false)` is a violation (reported with the
/// rule's message), `Err` an evaluation error (also a rejection, as in the API server).
pub(crate) type CelRule = fn(&Value) -> Result<bool, String>;

/// The URL rule of `spec.url`, exactly as the CRD spells it (a YAML folded string).
const URL_RULE: &str = concat!(
    r#"isURL(self) ? (url(self).getScheme() in ["", "http", "https", "oci", "file"]) : (isURL("http://" + self) &&"#,
    "\n",
    r#"url("http://" + self).getScheme() in ["", "http", "https", "oci", "file"])"#
);

/// Every CEL rule the validator implements, keyed by its exact text in the CRD.
pub(crate) fn cel_rules() -> BTreeMap<&'static str, CelRule> {
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
