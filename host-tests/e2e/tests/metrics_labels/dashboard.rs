//! Checks `envoy-config/grafana/ballast-dashboard.json` against what real Envoy printed: every
//! query selects only metrics in the scrape, every ballast family is on some panel, every
//! datasource is the `DS_PROMETHEUS` variable, and panel ids are unique (nested rows included).
//!
//! Why against the scrape: a dashboard is JSON nobody runs in CI, so a typo in a metric name
//! shows up only as an empty panel in production. The checker is also run on broken copies, to
//! show that it notices a typo, a foreign datasource and a duplicate id.

use super::catalogue;
use super::check::sample_names;
use super::{drive, PREFIX};
use ballast_e2e::prometheus::{promql_metric_names, samples};
use serde_json::Value;
use std::collections::BTreeSet;

const PATH: &str = "envoy-config/grafana/ballast-dashboard.json";
const DATASOURCE_UID: &str = "${DS_PROMETHEUS}";

/// Every panel, rows' nested panels included, in document order.
fn all_panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in panels.as_array().into_iter().flatten() {
            out.push(panel);
            if let Some(nested) = panel.get("panels") {
                walk(nested, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// Every `datasource` value anywhere in the document, with where it is.
fn datasources<'a>(value: &'a Value, at: String, out: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                if key == "datasource" {
                    out.push((at.clone(), inner));
                }
                datasources(inner, format!("{at}.{key}"), out);
            }
        }
        Value::Array(items) => {
            for (i, inner) in items.iter().enumerate() {
                datasources(inner, format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// `label_values(metric, label)` of a variable query.
fn label_values(query: &str) -> Option<(String, String)> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")?
        .strip_suffix(')')?;
    let (metric, label) = inner.split_once(',')?;
    Some((metric.trim().to_string(), label.trim().to_string()))
}

/// What is wrong with `dashboard` given the sample names the scrape printed and the families
/// the plugin defines.
fn problems(dashboard: &Value, exported: &BTreeSet<String>, families: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    if dashboard.get("__inputs").is_some() {
        problems.push(
            "`__inputs` is only filled by the manual import UI: use the DS_PROMETHEUS variable"
                .into(),
        );
    }
    if !dashboard["schemaVersion"].is_u64() {
        problems.push("no numeric schemaVersion".into());
    }
    let variables = dashboard["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let variable = |name: &str| variables.iter().find(|v| v["name"] == name).cloned();
    match variable("DS_PROMETHEUS") {
        Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
        other => problems.push(format!(
            "no DS_PROMETHEUS datasource variable of type prometheus: {other:?}"
        )),
    }
    let mut queried: BTreeSet<String> = BTreeSet::new();
    match variable("policy_set").and_then(|v| label_values(v["definition"].as_str()?)) {
        Some((metric, label)) if label == "policy_set" => {
            if !exported.contains(&metric) {
                problems.push(format!(
                    "the policy_set variable reads `{metric}`, not exported"
                ));
            }
            queried.insert(metric);
        }
        other => problems.push(format!(
            "no policy_set variable from label_values(…, policy_set): {other:?}"
        )),
    }
    let expected_ref = serde_json::json!({"type": "prometheus", "uid": DATASOURCE_UID});
    let mut refs = Vec::new();
    datasources(dashboard, String::new(), &mut refs);
    for (at, reference) in refs {
        if *reference != expected_ref {
            problems.push(format!(
                "datasource at {at} is {reference}, not the DS_PROMETHEUS variable"
            ));
        }
    }
    let mut ids = BTreeSet::new();
    for panel in all_panels(dashboard) {
        let title = panel["title"].as_str().unwrap_or("(untitled)");
        match panel["id"].as_u64() {
            Some(id) if !ids.insert(id) => {
                problems.push(format!("panel id {id} used twice ({title})"))
            }
            None => problems.push(format!("panel `{title}` has no id")),
            Some(_) => {}
        }
        if panel["type"] == "row" {
            continue;
        }
        if panel["datasource"] != expected_ref {
            problems.push(format!("panel `{title}` has no DS_PROMETHEUS datasource"));
        }
        let targets = panel["targets"].as_array().cloned().unwrap_or_default();
        if targets.is_empty() {
            problems.push(format!("panel `{title}` has no targets"));
        }
        for target in targets {
            let expr = target["expr"].as_str().unwrap_or_default();
            match promql_metric_names(expr) {
                Ok(names) if names.is_empty() => {
                    problems.push(format!("panel `{title}`: `{expr}` selects no metric"))
                }
                Ok(names) => {
                    for name in names {
                        if !exported.contains(&name) {
                            problems.push(format!(
                                "panel `{title}` queries `{name}`, which ballast does not export"
                            ));
                        }
                        queried.insert(name);
                    }
                }
                Err(e) => problems.push(format!("panel `{title}`: `{expr}`: {e}")),
            }
        }
    }
    for family in families {
        let on_a_panel = queried.iter().any(|name| {
            name == family
                || name
                    .strip_prefix(family.as_str())
                    .is_some_and(|s| ["_bucket", "_sum", "_count"].contains(&s))
        });
        if !on_a_panel {
            problems.push(format!("`{family}` is on no panel"));
        }
    }
    problems
}

pub fn check(prometheus: &str) {
    let text = std::fs::read_to_string(ballast_e2e::paths::repo_file(PATH)).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{PATH}: {e}"));
    let exported = sample_names(prometheus, PREFIX);
    assert!(
        samples(prometheus).is_ok() && exported.len() > 40,
        "a real scrape: {exported:?}"
    );
    let families: Vec<String> = catalogue::expected(drive::PLUGIN_JSON)
        .into_keys()
        .collect();
    let found = problems(&dashboard, &exported, &families);
    assert!(found.is_empty(), "{PATH}:\n{}", found.join("\n"));
    println!(
        "{PATH}: {} panels, every query on exported metrics",
        all_panels(&dashboard).len()
    );

    // The checker notices each kind of mistake.
    let broken = |from: &str, to: &str| -> Vec<String> {
        assert!(text.contains(from), "`{from}` is in the dashboard");
        let copy: Value = serde_json::from_str(&text.replacen(from, to, 1)).unwrap();
        problems(&copy, &exported, &families)
    };
    let typo = broken(
        "ballast_retries_denied_budget",
        "ballast_retries_denied_budgt",
    );
    assert!(
        typo.iter()
            .any(|p| p.contains("`ballast_retries_denied_budgt`, which ballast does not export")),
        "{typo:?}"
    );
    assert!(
        typo.iter()
            .any(|p| p.contains("`ballast_retries_denied_budget` is on no panel")),
        "{typo:?}"
    );
    let foreign = broken(
        "\"uid\": \"${DS_PROMETHEUS}\"",
        "\"uid\": \"P1809F7CD0C75ACF3\"",
    );
    assert!(
        foreign
            .iter()
            .any(|p| p.contains("not the DS_PROMETHEUS variable")),
        "{foreign:?}"
    );
    let nested_duplicate = broken("\"id\": 22,", "\"id\": 2,");
    assert!(
        nested_duplicate
            .iter()
            .any(|p| p.contains("panel id 2 used twice")),
        "{nested_duplicate:?}"
    );
}
