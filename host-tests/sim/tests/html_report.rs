//! `ballast-sim run --html`: the page holds what the run measured and renders cleanly.
//!
//! The real binary runs a shipped scenario against the real plugin .wasm, altered so that one
//! expectation fails and its name and description carry markup. The page must show every
//! expectation with its outcome and measured value, a row per class with the JSON report's
//! numbers, the plots as inline SVG, the scenario's markup as text, and nothing loaded from
//! elsewhere. Then real headless Chromium opens it through the DevTools protocol: no exception,
//! no console or log error, no request leaving the file, and a screenshot that is a picture
//! (many colours, the met and failed colours among them), not a blank page. A second test feeds
//! the same checker a page that misbehaves on purpose, so a clean result means something.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

#[path = "html_report/chromium.rs"]
mod chromium;

use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{root, wasm};

/// A directory under Cargo's target/tmp that is kept after the run, so the page and its
/// screenshot can be looked at.
fn artifacts(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `12345` as `12,345`, as the page writes counts.
fn grouped(n: u64) -> String {
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

const HOSTILE_NAME: &str = "steady-overload <script>alert('owned')</script>";

/// `steady-overload` with markup in its name and description and one impossible expectation
/// added to the two it meets.
fn hostile_scenario(dir: &Path) -> PathBuf {
    let shipped = root().join("examples/scenarios/steady-overload.json");
    let mut scenario: Value =
        serde_json::from_str(&std::fs::read_to_string(&shipped).unwrap()).unwrap();
    scenario["name"] = json!(HOSTILE_NAME);
    scenario["description"] = json!("Overload & <b>markup</b> shown as text.");
    let config = root()
        .join("examples/configs/full.json")
        .canonicalize()
        .unwrap();
    scenario["plugin_config_file"] = json!(config.display().to_string());
    scenario["expect"]["total"] = json!({ "p99_max": "1ms" });
    let path = dir.join("scenario.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&scenario).unwrap()).unwrap();
    path
}

#[test]
fn html_report_holds_the_run_and_renders_cleanly_in_chromium() {
    let dir = artifacts("html-report");
    let scenario = hostile_scenario(&dir);
    let (page, json) = (dir.join("report.html"), dir.join("report.json"));
    let output = Command::new(env!("CARGO_BIN_EXE_ballast-sim"))
        .arg("run")
        .arg(&scenario)
        .arg("--html")
        .arg(&page)
        .arg("--json")
        .arg(&json)
        .arg("--quiet")
        .env("BALLAST_WASM", wasm())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "one expectation fails: {stderr}"
    );
    let html = std::fs::read_to_string(&page).unwrap();
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();

    // The scenario's markup is text, and the page has no script at all.
    assert!(
        html.contains("steady-overload &lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;"),
        "escaped name"
    );
    assert!(html.contains("Overload &amp; &lt;b&gt;markup&lt;/b&gt; shown as text."));
    assert!(
        !html.to_lowercase().contains("<script"),
        "no script element"
    );
    assert!(
        !html.contains("<b>markup"),
        "description markup not interpreted"
    );

    // Every expectation, with its outcome and measured value.
    let checks = report["expectations"].as_array().unwrap();
    assert_eq!(
        checks.len(),
        3,
        "two shipped expectations and the added one"
    );
    for check in checks {
        let (what, ok) = (
            check["what"].as_str().unwrap(),
            check["ok"].as_bool().unwrap(),
        );
        let outcome = if ok { "met" } else { "failed" };
        // The exact measured value in the title, a rounded one shown.
        let actual = check["actual"].as_f64().unwrap();
        let row = format!(
            "<tr class=\"check {outcome}\"><td><span class=\"pill {outcome}\">{outcome}</span>\
             </td><td><code>{}</code></td><td class=\"num\" title=\"{actual}\">",
            what.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        );
        let at = html
            .find(&row)
            .unwrap_or_else(|| panic!("expectation row missing: {row}"));
        let rest = &html[at + row.len()..];
        let shown: f64 = rest[..rest.find("</td></tr>").unwrap()].parse().unwrap();
        assert!(
            (shown - actual).abs() <= actual.abs() * 1e-5,
            "{what}: shows {shown} for {actual}"
        );
    }
    assert_eq!(html.matches("<tr class=\"check met\">").count(), 2);
    assert_eq!(html.matches("<tr class=\"check failed\">").count(), 1);
    assert!(html.contains("<code>total.p99_ms &lt;= 1</code>"));
    assert!(html.contains("1 of 3 expectations failed"));

    // A row per class (and the total) carrying the JSON report's counts.
    let classes = report["classes"].as_object().unwrap();
    assert_eq!(classes.len(), 3);
    for (name, class) in classes
        .iter()
        .chain([(&"total".to_string(), &report["total"])])
    {
        let count = |key: &str| grouped(class[key].as_u64().unwrap());
        let start = format!(
            "<th scope=\"row\">{name}</th><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td>",
            count("offered"),
            count("attempts"),
            count("admitted")
        );
        assert!(html.contains(&start), "class row missing: {start}");
        let p99 = format!(
            "<td class=\"num\">{:.1}</td>",
            class["latency"]["p99_ms"].as_f64().unwrap()
        );
        assert!(html.contains(&p99), "{name}: p99 cell {p99}");
    }
    assert_eq!(html.matches("<tr class=\"class\">").count(), 3);

    // The three plots inline, with their lines, and nothing fetched from anywhere.
    assert_eq!(
        html.matches("<svg viewBox=").count(),
        3,
        "three inline plots"
    );
    assert_eq!(html.matches("</svg>").count(), 3);
    assert!(
        html.matches("<polyline").count() >= 6,
        "plots carry their lines"
    );
    for external in [
        "http://", "https://", "src=", "@import", "url(", "<link", "<img",
    ] {
        assert!(
            !html.contains(external),
            "page refers to a resource: {external}"
        );
    }

    let run = chromium::open(&page, &dir).unwrap();
    std::fs::write(dir.join("screenshot.png"), &run.png).unwrap();
    assert!(run.errors.is_empty(), "console errors: {:#?}", run.errors);
    assert!(
        run.requests_out.is_empty(),
        "requests: {:#?}",
        run.requests_out
    );
    let shot = Screenshot::decode(&run.png);
    assert_eq!((shot.width, shot.height), (1200, 2000));
    let (top_colour, top_share) = shot.dominant();
    assert!(
        top_share < 0.97,
        "{top_colour:?} covers {top_share:.3} of the page"
    );
    assert!(
        shot.colours.len() > 64,
        "only {} colours",
        shot.colours.len()
    );
    // The met and failed pills (CSS --met, --failed) are drawn above the fold.
    for (what, rgb) in [("met", [0x1a, 0x7f, 0x37]), ("failed", [0xcf, 0x22, 0x2e])] {
        let pixels = shot.colours.get(&rgb).copied().unwrap_or(0);
        assert!(pixels > 200, "{what} colour: {pixels} pixels");
    }
}

#[test]
fn console_checker_reports_exceptions_console_errors_and_requests() {
    let dir = artifacts("html-report-misbehaving");
    let page = dir.join("misbehaving.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><body><p>misbehaving</p>\
         <img alt=\"\" src=\"http://127.0.0.1:9/pixel.png\">\
         <script>console.error('deliberate console error');\
         throw new Error('deliberate exception');</script></body></html>",
    )
    .unwrap();
    let run = chromium::open(&page, &dir).unwrap();
    let all = run.errors.join("\n");
    assert!(all.contains("deliberate console error"), "{all}");
    assert!(all.contains("deliberate exception"), "{all}");
    assert_eq!(run.requests_out, ["http://127.0.0.1:9/pixel.png"]);
    assert!(!run.png.is_empty());
}

/// A decoded screenshot: size and how many pixels have each colour.
struct Screenshot {
    width: u32,
    height: u32,
    colours: HashMap<[u8; 3], u64>,
}

impl Screenshot {
    fn decode(png_bytes: &[u8]) -> Screenshot {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        decoder.set_transformations(png::Transformations::normalize_to_color8());
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let frame = reader.next_frame(&mut buf).unwrap();
        let step = frame.color_type.samples();
        assert!(step >= 3, "colour screenshot, got {:?}", frame.color_type);
        let mut colours = HashMap::new();
        for pixel in buf[..frame.buffer_size()].chunks_exact(step) {
            *colours.entry([pixel[0], pixel[1], pixel[2]]).or_insert(0) += 1;
        }
        Screenshot {
            width: frame.width,
            height: frame.height,
            colours,
        }
    }

    /// The most common colour and its share of the pixels.
    fn dominant(&self) -> ([u8; 3], f64) {
        let total: u64 = self.colours.values().sum();
        let (colour, n) = self.colours.iter().max_by_key(|(_, n)| **n).unwrap();
        (*colour, *n as f64 / total as f64)
    }
}
