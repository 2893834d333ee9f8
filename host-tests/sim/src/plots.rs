//! SVG plots over time: throughput, latency, upstream load and sampled plugin metrics.
//!
//! Why plots: a limit that oscillates, a queue that never drains or a class starved during a
//! ramp is obvious in a picture and invisible in a summary table.

use crate::report::Report;
use plotters::prelude::*;
use std::path::Path;

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

struct Line {
    label: String,
    points: Vec<(f64, f64)>,
}

/// Writes `throughput.svg`, `latency.svg` and `upstream.svg` into `dir`; returns their paths.
pub fn write(report: &Report, dir: &Path) -> Result<Vec<String>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut written = Vec::new();
    for (file, svg) in render(report)? {
        let path = dir.join(file);
        std::fs::write(&path, svg).map_err(|e| format!("{}: {e}", path.display()))?;
        written.push(path.display().to_string());
    }
    Ok(written)
}

/// The three plots as SVG documents, each with the file name [`write`] gives it.
pub fn render(report: &Report) -> Result<Vec<(&'static str, String)>, String> {
    let t = &report.series.t_s;
    let zip = |values: &[f64]| -> Vec<(f64, f64)> {
        t.iter().copied().zip(values.iter().copied()).collect()
    };
    let mut throughput = Vec::new();
    for (name, values) in &report.series.offered_rps {
        throughput.push(Line {
            label: format!("{name} offered"),
            points: zip(values),
        });
    }
    for (name, values) in &report.series.goodput_rps {
        throughput.push(Line {
            label: format!("{name} goodput"),
            points: zip(values),
        });
    }
    for (name, values) in &report.series.rejected_rps {
        if values.iter().any(|v| *v > 0.0) {
            throughput.push(Line {
                label: format!("{name} rejected"),
                points: zip(values),
            });
        }
    }
    let latency: Vec<Line> = report
        .series
        .p99_ms
        .iter()
        .map(|(name, values)| Line {
            label: format!("{name} p99"),
            points: zip(values),
        })
        .collect();
    let as_f64 = |v: &[u64]| v.iter().map(|x| *x as f64).collect::<Vec<f64>>();
    let mut load = vec![
        Line {
            label: "upstream in service".into(),
            points: zip(&as_f64(&report.series.upstream_in_service)),
        },
        Line {
            label: "upstream queued".into(),
            points: zip(&as_f64(&report.series.upstream_queued)),
        },
    ];
    for (name, values) in &report.series.metrics {
        let points = t
            .iter()
            .zip(values)
            .filter_map(|(t, v)| v.map(|v| (*t, v as f64)))
            .collect();
        load.push(Line {
            label: name.clone(),
            points,
        });
    }
    let title = |what: &str| format!("{} — {what}", report.scenario);
    let files = [
        (
            "throughput.svg",
            title("requests per second"),
            "req/s",
            throughput,
        ),
        (
            "latency.svg",
            title("p99 latency of admitted requests"),
            "ms",
            latency,
        ),
        (
            "upstream.svg",
            title("upstream load and plugin metrics"),
            "count",
            load,
        ),
    ];
    let mut rendered = Vec::new();
    for (file, caption, unit, lines) in files {
        rendered.push((
            file,
            draw(&caption, unit, &lines).map_err(|e| format!("{file}: {e}"))?,
        ));
    }
    Ok(rendered)
}

/// One plot as an SVG document.
fn draw(caption: &str, unit: &str, lines: &[Line]) -> Result<String, String> {
    let mut svg = String::new();
    plot(&mut svg, caption, unit, lines).map_err(|e| e.to_string())?;
    Ok(svg)
}

fn plot<'a>(
    svg: &'a mut String,
    caption: &str,
    unit: &str,
    lines: &[Line],
) -> Result<(), Box<dyn std::error::Error + 'a>> {
    let root = SVGBackend::with_string(svg, (960, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let x_max = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let y_max = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("simulated seconds")
        .y_desc(unit)
        .draw()?;
    for (i, line) in lines.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                line.points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(line.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}
