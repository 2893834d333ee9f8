//! `--html`: the whole report as one self-contained HTML page.
//!
//! Why: the text table answers "did it pass", but a person reviewing a policy change wants the
//! verdict, the per-class numbers, the plots and what was simulated side by side, in a file
//! they can attach to a pull request or open from a CI artifact. So the page has no external
//! resources and no script: CSS and the SVG plots are inline, and it renders the same offline,
//! in a mail client's preview or in a sandboxed artifact viewer.
//!
//! Every number comes from the [`Report`] (and the plots from [`crate::plots`]); this module
//! only lays them out. Everything taken from the scenario file (names, description, the plugin
//! configuration) is escaped: a scenario is user input and the page must show it as text.

mod simulated;

use ballast_sim::plots;
use ballast_sim::report::{Check, ClassReport, Report};
use ballast_sim::scenario::Loaded;
use std::path::Path;

const STYLE: &str = include_str!("html.css");

/// Renders the page for `report` of the scenario `loaded` and writes it to `path`.
pub fn write(loaded: &Loaded, report: &Report, path: &Path) -> Result<(), String> {
    let plots = render_plots(report)?;
    std::fs::write(path, page(loaded, report, &plots))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The plots as inline `<svg>` elements, as [`plots::write`] draws them.
fn render_plots(report: &Report) -> Result<Vec<String>, String> {
    plots::render(report)?
        .into_iter()
        .map(|(file, svg)| inline_svg(&svg).map_err(|e| format!("{file}: {e}")))
        .collect()
}

/// Rewrites the root `<svg>` tag so the plot scales with the page: keeps its `viewBox`, drops
/// the fixed size and the namespace (HTML's parser puts `<svg>` in it anyway).
fn inline_svg(svg: &str) -> Result<String, String> {
    let start = svg.find("<svg").ok_or("no <svg> element")?;
    let end = svg[start..]
        .find('>')
        .map(|i| start + i + 1)
        .ok_or("unterminated <svg> tag")?;
    let tag = &svg[start..end];
    let view_box = tag
        .split("viewBox=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .ok_or("the <svg> tag has no viewBox")?;
    Ok(format!(
        "<svg viewBox=\"{view_box}\" role=\"img\">{}",
        &svg[end..]
    ))
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

fn page(loaded: &Loaded, report: &Report, plots: &[String]) -> String {
    let name = escape(&report.scenario);
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>ballast-sim · {name}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n<main>\n"
    );
    out.push_str(&header(loaded, report));
    out.push_str(&expectations(&report.expectations));
    out.push_str(&classes(report));
    out.push_str(&failures(report));
    out.push_str(&upstream(report));
    out.push_str("<section id=\"plots\">\n<h2>Over time</h2>\n");
    for svg in plots {
        out.push_str(&format!("<figure>{svg}</figure>\n"));
    }
    out.push_str("</section>\n");
    out.push_str(&simulated::section(loaded));
    out.push_str(&metrics(report));
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

fn header(loaded: &Loaded, report: &Report) -> String {
    let failed = report.expectations.iter().filter(|c| !c.ok).count();
    let total = report.expectations.len();
    let (class, verdict) = match (total, failed) {
        (0, _) => ("none", "no expectations set".to_string()),
        (_, 0) => ("met", format!("all {total} expectations met")),
        _ => ("failed", format!("{failed} of {total} expectations failed")),
    };
    let description = &loaded.scenario.description;
    format!(
        "<header>\n<p class=\"tool\">ballast-sim report</p>\n<h1>{}</h1>\n\
         <p class=\"verdict {class}\">{verdict}</p>\n{}\
         <p class=\"meta\">seed {} · {} s simulated · {} worker VM(s) · {} proxy streams · \
         scenario file <code>{}</code></p>\n</header>\n",
        escape(&report.scenario),
        if description.is_empty() {
            String::new()
        } else {
            format!("<p class=\"description\">{}</p>\n", escape(description))
        },
        report.seed,
        report.duration_s,
        report.workers,
        group(report.streams),
        escape(&loaded.source.display().to_string()),
    )
}

fn expectations(checks: &[Check]) -> String {
    let mut out = String::from("<section id=\"expectations\">\n<h2>Expectations</h2>\n");
    if checks.is_empty() {
        out.push_str("<p>The scenario sets no expectations (<code>expect</code>).</p>\n");
    } else {
        out.push_str(
            "<table>\n<thead><tr><th>outcome</th><th>expectation</th>\
             <th class=\"num\">measured</th></tr></thead>\n<tbody>\n",
        );
        for c in checks {
            let (class, word) = if c.ok {
                ("met", "met")
            } else {
                ("failed", "failed")
            };
            // Six significant digits to read; the exact value (as in the text and JSON
            // reports) on hover.
            let actual = if c.actual.is_nan() {
                "<td class=\"num\">no data</td>".to_string()
            } else {
                format!(
                    "<td class=\"num\" title=\"{}\">{}</td>",
                    c.actual,
                    significant(c.actual)
                )
            };
            out.push_str(&format!(
                "<tr class=\"check {class}\"><td><span class=\"pill {class}\">{word}</span></td>\
                 <td><code>{}</code></td>{actual}</tr>\n",
                escape(&c.what)
            ));
        }
        out.push_str("</tbody>\n</table>\n");
    }
    out.push_str("</section>\n");
    out
}

/// Attempts the plugin rejected (`plugin:*` failure reasons).
fn shed(r: &ClassReport) -> u64 {
    r.failures
        .iter()
        .filter(|(reason, _)| reason.starts_with("plugin:"))
        .map(|(_, n)| n)
        .sum()
}

fn classes(report: &Report) -> String {
    let mut out = String::from(
        "<section id=\"classes\">\n<h2>Per class</h2>\n<div class=\"scroll\"><table>\n<thead><tr>\
         <th>class</th><th class=\"num\">offered</th><th class=\"num\">attempts</th>\
         <th class=\"num\">admitted</th><th class=\"num\">shed</th>\
         <th class=\"num\">succeeded</th><th class=\"num\">success</th>\
         <th class=\"num\">goodput/s</th><th class=\"num\">p50 ms</th><th class=\"num\">p90 ms</th>\
         <th class=\"num\">p99 ms</th><th class=\"num\">max ms</th>\
         <th class=\"num\">unfinished</th></tr></thead>\n<tbody>\n",
    );
    let row = |name: &str, r: &ClassReport, class: &str| {
        let percent = r.success_ratio * 100.0;
        format!(
            "<tr class=\"{class}\"><th scope=\"row\">{}</th><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td>\
             <td class=\"num ratio\" style=\"--p:{percent:.2}%\">{percent:.2}%</td>\
             <td class=\"num\">{:.1}</td><td class=\"num\">{:.1}</td><td class=\"num\">{:.1}</td>\
             <td class=\"num\">{:.1}</td><td class=\"num\">{:.1}</td><td class=\"num\">{}</td></tr>\n",
            escape(name),
            group(r.offered),
            group(r.attempts),
            group(r.admitted),
            group(shed(r)),
            group(r.succeeded),
            r.goodput_rps,
            r.latency.p50_ms,
            r.latency.p90_ms,
            r.latency.p99_ms,
            r.latency.max_ms,
            group(r.unfinished),
        )
    };
    for (name, r) in &report.classes {
        out.push_str(&row(name, r, "class"));
    }
    out.push_str(&row("total", &report.total, "total"));
    out.push_str(
        "</tbody>\n</table></div>\n<p class=\"note\">Offered and succeeded count first \
         attempts; attempts include retries; shed are attempts ballast rejected; latency is \
         that of admitted attempts that got a response.</p>\n</section>\n",
    );
    out
}

fn failures(report: &Report) -> String {
    let mut out = String::from("<section id=\"failures\">\n<h2>Failed attempts by reason</h2>\n");
    if report.total.failures.is_empty() {
        out.push_str("<p>None.</p>\n</section>\n");
        return out;
    }
    out.push_str("<div class=\"scroll\"><table>\n<thead><tr><th>reason</th>");
    for name in report.classes.keys() {
        out.push_str(&format!("<th class=\"num\">{}</th>", escape(name)));
    }
    out.push_str("<th class=\"num\">total</th></tr></thead>\n<tbody>\n");
    for (reason, total) in &report.total.failures {
        out.push_str(&format!(
            "<tr><th scope=\"row\"><code>{}</code></th>",
            escape(reason)
        ));
        for r in report.classes.values() {
            let n = r.failures.get(reason).copied().unwrap_or(0);
            out.push_str(&format!("<td class=\"num\">{}</td>", group(n)));
        }
        out.push_str(&format!("<td class=\"num\">{}</td></tr>\n", group(*total)));
    }
    out.push_str(
        "</tbody>\n</table></div>\n<p class=\"note\"><code>plugin:*</code> reasons are \
         ballast's own rejections.</p>\n</section>\n",
    );
    out
}

fn upstream(report: &Report) -> String {
    let u = &report.upstream;
    let stat = |value: String, label: &str| {
        format!("<div class=\"stat\"><b>{value}</b><span>{label}</span></div>\n")
    };
    [
        "<section id=\"upstream\">\n<h2>Upstream</h2>\n<div class=\"stats\">\n".to_string(),
        stat(group(u.requests), "requests received"),
        stat(
            format!("{:.3}×", u.amplification),
            "requests per first attempt",
        ),
        stat(
            format!("{:.3} s", u.work_after_deadline_s),
            "work after the caller gave up",
        ),
        stat(group(u.max_in_service), "most in service at once"),
        stat(group(u.max_queue), "longest queue"),
        "</div>\n</section>\n".to_string(),
    ]
    .concat()
}

fn metrics(report: &Report) -> String {
    if report.plugin_metrics.is_empty() {
        return String::new();
    }
    let rows: String = report
        .plugin_metrics
        .iter()
        .map(|(name, value)| {
            format!(
                "<tr><td><code>{}</code></td><td class=\"num\">{}</td></tr>\n",
                escape(name),
                group(*value)
            )
        })
        .collect();
    format!(
        "<section id=\"metrics\">\n<details><summary>Plugin metrics at the end ({})</summary>\n\
         <table>\n<tbody>\n{rows}</tbody>\n</table></details>\n</section>\n",
        report.plugin_metrics.len()
    )
}

/// `x` to six significant digits, trailing zeros dropped: `198.57894736842104` as `198.579`.
fn significant(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return x.to_string();
    }
    let whole_digits = x.abs().log10().floor() as i32 + 1;
    let decimals = (6 - whole_digits).clamp(0, 12) as usize;
    let text = format!("{x:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// `12345` as `12,345`.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
