//! Checks `envoy-config/istio/metrics/mesh-metrics.yaml`: its tags are the plugin's, its stats
//! matcher keeps every ballast stat (and nothing of Envoy's own), and real Envoy with the
//! bootstrap Istio generates from it prints every ballast family labelled.
//!
//! Why run Envoy again: Istio's tag rules are not the ones in `envoy.yaml` (`(tag=\.=(.*?);\.;)`,
//! without the leading dot ballast's names put before the first tag), and whether Envoy then
//! prints `ballast_requests_total` or `ballast_requests_total_` is Envoy's behaviour, not
//! something a regex test can show. The stats matcher there holds only the file's regexps (not
//! Istio's built-in `wasm` prefix), so the file's own settings are what keeps the stats.
//! There is no Istio here: the bootstrap's `stats_config` is rebuilt from Istio's template
//! (`tools/packaging/common/envoy_bootstrap.json`), see [`istio_stats_config`].

use super::catalogue::{self, Labels};
use super::check::problems;
use super::{drive, Scrape, PREFIX};
use ballast_e2e::prometheus::samples;
use ballast_e2e::Envoy;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

const PATH: &str = "envoy-config/istio/metrics/mesh-metrics.yaml";

/// The ProxyConfig fields the file sets; any other field is an error (a typo such as
/// `extraStatsTags` would otherwise be ignored by this test and by nobody else).
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ProxyStats {
    extra_stat_tags: Vec<String>,
    proxy_stats_matcher: StatsMatcher,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct StatsMatcher {
    inclusion_regexps: Vec<String>,
}

/// Both documents' settings: the IstioOperator's `meshConfig.defaultConfig` and the
/// Deployment patch's `proxy.istio.io/config` annotation (itself YAML).
fn settings() -> (ProxyStats, ProxyStats) {
    let path = ballast_e2e::paths::repo_file(PATH);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{PATH}: {e}"));
    let docs: Vec<serde_json::Value> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| serde_json::Value::deserialize(doc).unwrap_or_else(|e| panic!("{PATH}: {e}")))
        .collect();
    assert_eq!(
        docs.len(),
        2,
        "{PATH}: the mesh-wide and the per-workload document"
    );
    let (operator, deployment) = (&docs[0], &docs[1]);
    assert_eq!(operator["apiVersion"], "install.istio.io/v1alpha1");
    assert_eq!(operator["kind"], "IstioOperator");
    assert_eq!(deployment["apiVersion"], "apps/v1");
    assert_eq!(deployment["kind"], "Deployment");
    let mesh = &operator["spec"]["meshConfig"];
    let keys: Vec<&str> = mesh
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(
        keys,
        ["defaultConfig"],
        "{PATH}: meshConfig holds defaultConfig only"
    );
    let mesh_wide: ProxyStats = serde_json::from_value(mesh["defaultConfig"].clone())
        .unwrap_or_else(|e| panic!("{PATH}: meshConfig.defaultConfig: {e}"));
    let annotation = deployment["spec"]["template"]["metadata"]["annotations"]
        ["proxy.istio.io/config"]
        .as_str()
        .unwrap_or_else(|| panic!("{PATH}: no proxy.istio.io/config annotation"));
    let per_pod: ProxyStats = serde_yaml_ng::from_str(annotation)
        .unwrap_or_else(|e| panic!("{PATH}: proxy.istio.io/config: {e}"));
    (mesh_wide, per_pod)
}

/// Envoy's `StringMatcher.safe_regex` matches the whole name.
fn full_match(pattern: &str) -> regex::Regex {
    regex::Regex::new(&format!("^(?:{pattern})$"))
        .unwrap_or_else(|e| panic!("{PATH}: `{pattern}` is no RE2-style regex: {e}"))
}

/// The full stat names in `/stats` text (`name: value` lines).
fn stat_names(stats: &str) -> Vec<&str> {
    stats
        .lines()
        .filter_map(|line| line.split_once(": ").map(|(name, _)| name))
        .collect()
}

/// YAML single-quoted scalar.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The `stats_config` Istio's bootstrap template makes from `settings`: one tag rule per extra
/// stat tag, in its form, beside Istio's fixed rules that search anywhere in a name (they must
/// leave ballast's names alone), and a stats matcher with the settings' inclusion regexps
/// (without Istio's built-in prefixes, so they alone must keep ballast's stats).
fn istio_stats_config(settings: &ProxyStats) -> String {
    let mut rules: Vec<(String, String)> = settings
        .extra_stat_tags
        .iter()
        .map(|tag| (tag.clone(), format!(r"({tag}=\.=(.*?);\.;)")))
        .collect();
    for (tag, regex) in [
        ("cache", r"(cache\.(.+?)\.)"),
        ("component", r"(component\.(.+?)\.)"),
        ("tag", r"(tag\.(.+?);\.)"),
        ("wasm_filter", r"(wasm_filter\.(.+?)\.)"),
        ("authz_enforce_result", r"rbac(\.(allowed|denied))"),
        ("authz_dry_run_action", r"(\.istio_dry_run_(allow|deny)_)"),
        ("authz_dry_run_result", r"(\.shadow_(allowed|denied))"),
        ("response_code", r"_rq(_(\d{3}))$"),
        ("response_code_class", r"_rq(_(\dxx))$"),
    ] {
        rules.push((tag.to_string(), regex.to_string()));
    }
    let mut text = String::from("stats_config:\n  use_all_default_tags: false\n  stats_tags:\n");
    for (tag, regex) in rules {
        text.push_str(&format!(
            "  - tag_name: {tag}\n    regex: {}\n",
            quoted(&regex)
        ));
    }
    text.push_str("  stats_matcher:\n    inclusion_list:\n      patterns:\n");
    for pattern in &settings.proxy_stats_matcher.inclusion_regexps {
        text.push_str(&format!(
            "      - safe_regex: {{ regex: {} }}\n",
            quoted(pattern)
        ));
    }
    text.push('\n');
    text
}

/// The shipped `stats_config` block of `envoy.yaml`, to be replaced.
fn shipped_stats_config() -> String {
    let shipped =
        std::fs::read_to_string(ballast_e2e::paths::repo_file("envoy-config/envoy.yaml")).unwrap();
    let start = shipped
        .find("stats_config:\n")
        .expect("envoy.yaml has a stats_config block");
    let end = shipped
        .find("static_resources:")
        .expect("and static_resources after it");
    shipped[start..end].to_string()
}

pub fn check(scrape: &Scrape) {
    let (mesh_wide, per_pod) = settings();
    assert_eq!(mesh_wide, per_pod, "{PATH}: both documents set the same");
    let tags: BTreeSet<String> = mesh_wide.extra_stat_tags.iter().cloned().collect();
    assert_eq!(tags.len(), mesh_wide.extra_stat_tags.len(), "no tag twice");
    assert_eq!(
        tags,
        catalogue::plugin_tags(),
        "extraStatTags = the plugin's tags"
    );
    let labels: BTreeSet<String> = samples(&scrape.prometheus)
        .unwrap()
        .iter()
        .filter(|s| s.name.starts_with(PREFIX))
        .flat_map(|s| s.labels.iter().map(|(k, _)| k.clone()))
        .filter(|k| k != "le")
        .collect();
    assert_eq!(
        tags, labels,
        "extraStatTags = the labels ballast's series carry"
    );

    // The regexps keep every ballast stat of the driven run, and none of Envoy's own.
    let matchers: Vec<regex::Regex> = mesh_wide
        .proxy_stats_matcher
        .inclusion_regexps
        .iter()
        .map(|p| full_match(p))
        .collect();
    let (ours, envoys): (Vec<&str>, Vec<&str>) = stat_names(&scrape.stats)
        .into_iter()
        .partition(|name| name.starts_with(&format!("wasmcustom.{PREFIX}_")));
    let expected: BTreeMap<String, catalogue::Family> = catalogue::expected(drive::PLUGIN_JSON);
    let series: usize = expected.values().map(|f| f.series.len()).sum();
    assert_eq!(
        ours.len(),
        series,
        "one raw stat per expected series: {ours:#?}"
    );
    let dropped: Vec<&&str> = ours
        .iter()
        .filter(|n| !matchers.iter().any(|m| m.is_match(n)))
        .collect();
    assert!(dropped.is_empty(), "{PATH} would drop {dropped:#?}");
    assert!(
        envoys.len() > 100,
        "Envoy's own stats are in /stats: {}",
        envoys.len()
    );
    let kept: Vec<&&str> = envoys
        .iter()
        .filter(|n| matchers.iter().any(|m| m.is_match(n)))
        .collect();
    assert!(kept.is_empty(), "{PATH} would also keep Envoy's {kept:#?}");

    // Real Envoy with Istio's bootstrap rules: every family kept and labelled.
    let upstream = ballast_e2e::upstreams::limited(0, 0, 0).unwrap();
    let (shipped, istio) = (shipped_stats_config(), istio_stats_config(&mesh_wide));
    let config = drive::config(&upstream, &[(shipped.as_str(), istio.as_str())]);
    let envoy = Envoy::start(&config).unwrap_or_else(|e| panic!("{e}"));
    let response = ballast_e2e::get(envoy.listener(), "/api/items").unwrap();
    assert_eq!(response.status, 200);
    let text = envoy.prometheus().unwrap();
    drop(envoy);
    upstream.stop().unwrap();
    let found = problems(&text, &expected, PREFIX);
    assert!(
        found.is_empty(),
        "with Istio's tag rules and {PATH}'s matcher:\n{}\n\n{}",
        found.join("\n"),
        super::ballast_lines(&text)
    );
    let label_sets: BTreeSet<Labels> = samples(&text)
        .unwrap()
        .into_iter()
        .filter(|s| s.name == format!("{PREFIX}_class_shed"))
        .map(|s| s.labels.into_iter().collect())
        .collect();
    println!(
        "with Istio's rules: {} ballast_class_shed series, e.g. {:?}",
        label_sets.len(),
        label_sets.iter().next()
    );
}
