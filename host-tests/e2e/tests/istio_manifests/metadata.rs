//! The API server's checks of an object's `metadata` (DNS-1123 names, label keys and values),
//! which the CRD's schema leaves to the server.

use serde_json::Value;

/// The API server's checks of `metadata` that matter for a manifest.
pub(crate) fn check_metadata(metadata: Option<&Value>, errors: &mut Vec<String>) {
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
