//! The "What was simulated" part of the HTML report: traffic per class, the upstream model and
//! the policy configuration, told from the scenario as loaded.
//!
//! Why apart from the results: these sections read the scenario (user input, escaped here), not
//! the report; a reviewer reads them to know what the numbers above are numbers of.

use super::escape;
use ballast_sim::scenario::{
    ArrivalKind, DeadlineHeader, Distribution, Loaded, RateSpec, Scenario, UpstreamSpec,
};

/// The whole section.
pub(super) fn section(loaded: &Loaded) -> String {
    [
        "<section id=\"scenario\">\n<h2>What was simulated</h2>\n".to_string(),
        traffic(&loaded.scenario),
        upstream_model(&loaded.scenario.upstream),
        policy(loaded),
        "</section>\n".to_string(),
    ]
    .concat()
}

fn traffic(s: &Scenario) -> String {
    let mut out = String::from(
        "<h3>Traffic</h3>\n\
         <div class=\"scroll\"><table>\n<thead><tr><th>class</th><th>rate</th><th>request</th>\
         <th>priority</th><th>deadline</th><th>client retries</th></tr></thead>\n<tbody>\n",
    );
    for c in &s.classes {
        let rate = match &c.rate {
            RateSpec::Constant(rps) => format!("{rps} req/s"),
            RateSpec::Schedule(points) => points
                .iter()
                .map(|p| {
                    let verb = if p.ramp { "ramp to" } else { "" };
                    format!("{verb} {} req/s at {}", p.rps, dur(p.at.0))
                })
                .collect::<Vec<_>>()
                .join(" → "),
        };
        let arrivals = match c.arrivals {
            ArrivalKind::Poisson => "poisson",
            ArrivalKind::Uniform => "uniform",
        };
        let told = match c.deadline_header {
            DeadlineHeader::None => "not told to the proxy",
            DeadlineHeader::GrpcTimeout => "in grpc-timeout",
            DeadlineHeader::XEnvoyExpectedRqTimeoutMs => "in x-envoy-expected-rq-timeout-ms",
        };
        let deadline = match &c.deadline {
            None => "none".to_string(),
            Some(d) => format!("{}, {told}", distribution(d)),
        };
        let r = &c.retries;
        let retries = if r.max == 0 {
            "none".to_string()
        } else {
            let statuses: Vec<String> = r.on_status.iter().map(u16::to_string).collect();
            let timeout = if r.on_timeout { ", timeout" } else { "" };
            format!(
                "up to {} after {}, on {}{timeout}",
                r.max,
                dur(r.backoff.0),
                statuses.join("/")
            )
        };
        let headers: Vec<String> = c.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        out.push_str(&format!(
            "<tr><th scope=\"row\">{}</th><td>{} <span class=\"dim\">{}</span></td>\
             <td><code>{} {}{}</code>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            escape(&c.name),
            escape(rate.trim()),
            arrivals,
            escape(&c.method),
            escape(&c.authority),
            escape(&c.path),
            if headers.is_empty() {
                String::new()
            } else {
                format!(
                    "<br><code class=\"dim\">{}</code>",
                    escape(&headers.join(", "))
                )
            },
            escape(c.priority.as_deref().unwrap_or("—")),
            escape(&deadline),
            escape(&retries),
        ));
    }
    out.push_str(&format!(
        "</tbody>\n</table></div>\n<p class=\"note\">Arrivals for {} s, then up to {} s to drain.</p>\n",
        s.duration.0 as f64 / 1e9,
        s.drain.map_or(30.0, |d| d.0 as f64 / 1e9),
    ));
    out
}

fn upstream_model(u: &UpstreamSpec) -> String {
    let mut items = vec![
        if u.capacity == 0 {
            "serves every request at once".to_string()
        } else {
            format!("serves {} at a time, the rest queue", u.capacity)
        },
        format!("service time {}", distribution(&u.service_time)),
    ];
    if let Some(limit) = u.queue_limit {
        items.push(format!("answers 503 at once beyond {limit} waiting"));
    }
    if u.failure_ratio > 0.0 {
        items.push(format!(
            "{}% of requests fail with {}",
            u.failure_ratio * 100.0,
            u.failure_status
        ));
    }
    for w in &u.outages {
        items.push(format!(
            "outage {}–{}: every request answered {}",
            dur(w.from.0),
            dur(w.to.0),
            w.status.unwrap_or(503)
        ));
    }
    for w in &u.latency_shifts {
        items.push(format!(
            "{}–{}: service time ×{}",
            dur(w.from.0),
            dur(w.to.0),
            w.factor.unwrap_or(1.0)
        ));
    }
    let list: String = items
        .iter()
        .map(|i| format!("<li>{}</li>", escape(i)))
        .collect();
    format!("<h3>Upstream model</h3>\n<ul>{list}</ul>\n")
}

/// The policy configuration: which policies each policy set enables and how routes map to
/// them, then the whole document.
fn policy(loaded: &Loaded) -> String {
    let source = match &loaded.scenario.plugin_config_file {
        Some(file) => format!("from <code>{}</code>", escape(file)),
        None if loaded.scenario.plugin_config.is_some() => "inline in the scenario".to_string(),
        None => "none given: <code>{}</code>".to_string(),
    };
    let mut out = format!("<h3>Policy configuration</h3>\n<p>{source}</p>\n");
    let text = String::from_utf8_lossy(&loaded.plugin_config);
    let Ok(config) = serde_json::from_str::<serde_json::Value>(&text) else {
        out.push_str(&format!("<pre>{}</pre>\n", escape(&text)));
        return out;
    };
    let mut items = Vec::new();
    if let Some(sets) = config.get("policy_sets").and_then(|v| v.as_object()) {
        for (name, set) in sets {
            let policies: Vec<&str> = set
                .as_object()
                .map(|o| o.keys().map(String::as_str).collect())
                .unwrap_or_default();
            let what = if policies.is_empty() {
                "no policies (pass through)".to_string()
            } else {
                policies.join(", ")
            };
            items.push(format!(
                "policy set <b>{}</b>: {}",
                escape(name),
                escape(&what)
            ));
        }
    }
    if let Some(routes) = config.get("routes").and_then(|v| v.as_array()) {
        for route in routes {
            let field = |key: &str| route.get(key).and_then(|v| v.as_str()).unwrap_or("?");
            items.push(format!(
                "route <b>{}</b> → {}",
                escape(field("name")),
                escape(field("policy_set"))
            ));
        }
    }
    if let Some(default) = config.get("default_policy_set").and_then(|v| v.as_str()) {
        items.push(format!("otherwise → {}", escape(default)));
    }
    if let Some(classes) = config
        .pointer("/priority/classes")
        .and_then(|v| v.as_array())
    {
        let names: Vec<&str> = classes.iter().filter_map(|v| v.as_str()).collect();
        items.push(format!(
            "priority classes, highest first: {}",
            escape(&names.join(", "))
        ));
    }
    if config.get("dry_run").and_then(|v| v.as_bool()) == Some(true) {
        items.push("<b>dry run</b>: decisions are counted, not enforced".to_string());
    }
    if !items.is_empty() {
        let list: String = items.iter().map(|i| format!("<li>{i}</li>")).collect();
        out.push_str(&format!("<ul>{list}</ul>\n"));
    }
    let pretty = serde_json::to_string_pretty(&config).unwrap_or_else(|_| text.to_string());
    out.push_str(&format!(
        "<details><summary>the whole configuration</summary><pre>{}</pre></details>\n",
        escape(&pretty)
    ));
    out
}

fn distribution(d: &Distribution) -> String {
    match d {
        Distribution::Fixed(x) => dur(x.0),
        Distribution::Uniform([a, b]) => format!("uniform {}–{}", dur(a.0), dur(b.0)),
        Distribution::Exponential(mean) => format!("exponential, mean {}", dur(mean.0)),
        Distribution::Lognormal { median, p99 } => {
            format!("lognormal, median {}, p99 {}", dur(median.0), dur(p99.0))
        }
    }
}

/// A duration in the unit a scenario would write it in.
fn dur(ns: u64) -> String {
    match ns {
        0 => "0s".to_string(),
        _ if ns.is_multiple_of(1_000_000_000) => format!("{}s", ns / 1_000_000_000),
        _ if ns.is_multiple_of(1_000_000) => format!("{}ms", ns / 1_000_000),
        _ if ns.is_multiple_of(1_000) => format!("{}µs", ns / 1_000),
        _ => format!("{ns}ns"),
    }
}
