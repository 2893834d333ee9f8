//! Compares a `/stats/prometheus` scrape with the catalogue: every ballast metric labelled,
//! no tag text left in a name, and the same families and series both ways.
//!
//! Why a list of problems rather than the first failed assert: when a tag rule is wrong, every
//! family is wrong at once, and the whole list says which rule it is.

use super::catalogue::Family;
use ballast_e2e::prometheus::{samples, types, Sample};
use std::collections::{BTreeMap, BTreeSet};

/// Histogram series suffixes, as Prometheus prints them.
const HISTOGRAM_SUFFIXES: [&str; 3] = ["_bucket", "_sum", "_count"];

/// The family a sample belongs to: its own name, or a histogram's name without the suffix.
fn family_of<'a>(
    sample: &Sample,
    expected: &'a BTreeMap<String, Family>,
) -> Option<(&'a str, &'a Family)> {
    if let Some((name, family)) = expected.get_key_value(&sample.name) {
        return Some((name.as_str(), family));
    }
    HISTOGRAM_SUFFIXES.iter().find_map(|suffix| {
        let base = sample.name.strip_suffix(suffix)?;
        let (name, family) = expected.get_key_value(base)?;
        (family.kind == "histogram").then_some((name.as_str(), family))
    })
}

/// What is wrong with `text` against `expected` (empty: nothing). `prefix` is the plugin's
/// `metric_prefix`: every sample or type whose name starts with `<prefix>_` is ballast's.
pub fn problems(text: &str, expected: &BTreeMap<String, Family>, prefix: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for marker in ["=.=", ";.;"] {
        for line in text.lines().filter(|line| line.contains(marker)) {
            problems.push(format!("tag text `{marker}` left in `{line}`"));
        }
    }
    let parsed = match samples(text) {
        Ok(parsed) => parsed,
        Err(e) => return vec![format!("the scrape does not parse: {e}")],
    };
    // Envoy's own stats may name the plugin (`envoy_wasm_ballast_vm_reload`); ballast's start
    // with the prefix, and a name still holding Envoy's `wasmcustom` namespace is a bug.
    let start = format!("{prefix}_");
    let ours = |name: &str| name.starts_with(&start);
    for sample in parsed.iter().filter(|s| s.name.contains("wasmcustom")) {
        problems.push(format!("`{}` kept the wasmcustom namespace", sample.name));
    }
    for (name, kind) in types(text).iter().filter(|(name, _)| ours(name)) {
        match expected.get(name) {
            None => problems.push(format!("unknown family `{name}` ({kind}) in the scrape")),
            Some(family) if family.kind != kind.as_str() => problems.push(format!(
                "`{name}` is a {kind}, the plugin defines a {}",
                family.kind
            )),
            Some(_) => {}
        }
    }
    let mut seen: BTreeMap<&str, BTreeSet<Vec<(String, String)>>> = BTreeMap::new();
    for sample in parsed.iter().filter(|s| ours(&s.name)) {
        let Some((name, family)) = family_of(sample, expected) else {
            problems.push(format!(
                "sample `{}` is no family the plugin defines",
                sample.name
            ));
            continue;
        };
        let mut keys = family.keys.clone();
        if sample.name.ends_with("_bucket") {
            keys.insert("le".to_string());
        }
        let got: BTreeSet<String> = sample.labels.iter().map(|(k, _)| k.clone()).collect();
        if got != keys {
            problems.push(format!(
                "`{}` has labels {got:?}, expected {keys:?}",
                sample.name
            ));
        }
        let mut labels: Vec<(String, String)> = sample
            .labels
            .iter()
            .filter(|(k, _)| k != "le")
            .cloned()
            .collect();
        labels.sort();
        seen.entry(name).or_default().insert(labels);
    }
    for (name, family) in expected {
        let got = seen.remove(name.as_str()).unwrap_or_default();
        for missing in family.series.difference(&got) {
            problems.push(format!("missing series {name}{missing:?}"));
        }
        for extra in got.difference(&family.series) {
            problems.push(format!("unexpected series {name}{extra:?}"));
        }
    }
    problems
}

/// The names of ballast's samples in a scrape (histograms by their `_bucket`, `_sum` and
/// `_count` series): what a query may select.
pub fn sample_names(text: &str, prefix: &str) -> BTreeSet<String> {
    samples(text)
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.name.starts_with(&format!("{prefix}_")))
        .map(|s| s.name)
        .collect()
}
