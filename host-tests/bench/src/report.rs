//! Tables as the benchmarks print them and as BENCHMARKS.md keeps them, with each target beside
//! the number that meets it or not.
//!
//! Why a small type of its own: every section ends in the same three things — rows, the
//! targets it was measured against, and how it was measured — and the terminal, the markdown
//! file and the closing note of an issue all quote them; one shape keeps the three in step.

use std::fmt::Write as _;
use std::path::Path;

/// One target and whether this run met it.
pub struct Target {
    pub what: String,
    pub met: bool,
    pub measured: String,
}

/// One section's result.
pub struct Table {
    pub title: String,
    /// How it was measured (load, rounds, what the columns mean).
    pub method: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub targets: Vec<Target>,
}

impl Table {
    pub fn new(title: &str, method: &str, columns: &[&str]) -> Table {
        Table {
            title: title.to_string(),
            method: method.to_string(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
            targets: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn target(&mut self, what: &str, met: bool, measured: String) {
        self.targets.push(Target {
            what: what.to_string(),
            met,
            measured,
        });
    }

    /// The table as fixed-width text.
    pub fn text(&self) -> String {
        let mut widths: Vec<usize> = self.columns.iter().map(|c| c.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(cell.chars().count());
                }
            }
        }
        let line = |cells: &[String]| {
            let mut out = String::new();
            for (i, cell) in cells.iter().enumerate() {
                let width = widths.get(i).copied().unwrap_or(0);
                let pad = width.saturating_sub(cell.chars().count());
                if i == 0 {
                    out.push_str(cell);
                    out.push_str(&" ".repeat(pad));
                } else {
                    out.push_str(" | ");
                    out.push_str(&" ".repeat(pad));
                    out.push_str(cell);
                }
            }
            out.trim_end().to_string()
        };
        let mut out = format!("\n== {}\n{}\n\n", self.title, self.method);
        out.push_str(&line(&self.columns));
        out.push('\n');
        out.push_str(
            &"-".repeat(widths.iter().sum::<usize>() + 3 * widths.len().saturating_sub(1)),
        );
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(row));
            out.push('\n');
        }
        for t in &self.targets {
            let _ = writeln!(
                out,
                "target {}: {} ({})",
                t.what,
                if t.met { "met" } else { "NOT met" },
                t.measured
            );
        }
        out
    }

    /// The table as a markdown section.
    pub fn markdown(&self) -> String {
        let mut out = format!("## {}\n\n{}\n\n", self.title, self.method);
        let _ = writeln!(out, "| {} |", self.columns.join(" | "));
        let _ = writeln!(
            out,
            "|{}",
            self.columns
                .iter()
                .enumerate()
                .map(|(i, _)| if i == 0 { "---|" } else { "---:|" })
                .collect::<String>()
        );
        for row in &self.rows {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        if !self.targets.is_empty() {
            out.push('\n');
            for t in &self.targets {
                let _ = writeln!(
                    out,
                    "- target {}: **{}** ({})",
                    t.what,
                    if t.met { "met" } else { "not met" },
                    t.measured
                );
            }
        }
        out
    }
}

/// Every table of one run, printed as it is added.
pub struct Report {
    /// The command that made this run, as a reader would type it.
    command: String,
    /// The machine's load average when the run started (`/proc/loadavg`'s first three).
    load_at_start: String,
    sections: Vec<(Table, Vec<String>)>,
}

impl Report {
    pub fn new(command: String) -> Report {
        Report {
            command,
            load_at_start: load_average(),
            sections: Vec::new(),
        }
    }

    /// The file names of every plot, in order.
    pub fn plots(&self) -> impl Iterator<Item = &str> {
        self.sections
            .iter()
            .flat_map(|(_, plots)| plots.iter().map(String::as_str))
    }

    /// Adds a table (printed now) and the file names of its plots.
    pub fn add(&mut self, table: Table, plots: Vec<String>) {
        print!("{}", table.text());
        self.sections.push((table, plots));
    }

    /// Writes the run as BENCHMARKS.md: command, machine, date, then each table and plot (each
    /// plot's file name behind `plot_dir`, relative to the markdown file).
    pub fn write_markdown(&self, path: &Path, plot_dir: &str) -> Result<(), String> {
        let mut out = String::from("# ballast benchmarks\n\n");
        let _ = writeln!(
            out,
            "Command: `{}`. Machine: {}. Date: {}. Load average {} at the start, {} at the \
             end (other work on the machine: the CPU-time columns are the steadier figures). \
             Every figure is from this one run; ratios compare rows measured side by side, in \
             interleaved rounds where noted.\n",
            self.command,
            machine(),
            today(),
            self.load_at_start,
            load_average()
        );
        for (table, plots) in &self.sections {
            out.push_str(&table.markdown());
            for plot in plots {
                let _ = writeln!(out, "\n![{}]({plot_dir}{plot})", table.title);
            }
            out.push('\n');
        }
        std::fs::write(path, out).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

/// CPU count and model, memory: what a reader needs to compare a run with theirs. (Counted
/// from /proc/cpuinfo: the benchmark pins itself to one core, so its own affinity says 1.)
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU".to_string(), |m| m.trim().to_string());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!("{cpus} CPUs ({model}), {mem_gib:.0} GiB")
}

/// The first three fields of /proc/loadavg (1, 5 and 15 minutes).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" / "))
        .unwrap_or_else(|| "unknown".into())
}

/// Today's date (UTC), from `date`, which every machine has.
fn today() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// `a / b` to two places, or "n/a".
pub fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() {
        format!("{:.2}", a / b)
    } else {
        "n/a".into()
    }
}

/// The median of `values` (mean of the two middle ones when even); NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted.get(n / 2).copied().unwrap_or(f64::NAN),
        _ => {
            let a = sorted.get(n / 2 - 1).copied().unwrap_or(f64::NAN);
            let b = sorted.get(n / 2).copied().unwrap_or(f64::NAN);
            (a + b) / 2.0
        }
    }
}

/// The spread of rounds as `(max - min) / median`, in percent.
pub fn spread_percent(values: &[f64]) -> f64 {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    100.0 * (max - min) / median(values)
}

/// Writes `value` as pretty JSON to `dir/name`.
pub fn write_json(dir: &Path, name: &str, value: &serde_json::Value) -> Result<(), String> {
    let path = dir.join(name);
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    std::fs::write(&path, text + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_spread() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(spread_percent(&[90.0, 100.0, 110.0]), 20.0);
    }

    #[test]
    fn a_table_prints_its_targets() {
        let mut t = Table::new("T", "how", &["name", "value"]);
        t.row(vec!["a".into(), "1".into()]);
        t.target("value >= 1", true, "1".into());
        assert!(t.text().contains("target value >= 1: met (1)"));
        assert!(t.markdown().contains("| a | 1 |"));
    }
}
