//! Reads values out of Envoy's `/stats/prometheus` text, and the metric names out of the PromQL
//! that dashboards run against it.
//!
//! Why a parser of our own: the tests need only the text exposition format's sample lines and
//! `# TYPE` comments, and the selectors of a PromQL expression (to prove a dashboard asks for
//! metrics that exist); both are small, and a real parser crate would bring far more than that.

use std::collections::BTreeMap;

/// The value of the sample `name{labels}` where every `(key, value)` in `labels` is present;
/// `None` when no such sample exists.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| parse_sample(line).ok())
        .find(|sample| {
            sample.name == name
                && labels
                    .iter()
                    .all(|(key, value)| sample.label(key) == Some(*value))
        })
        .map(|sample| sample.value)
}

/// Label pairs in the order printed, values unescaped.
pub type Labels = Vec<(String, String)>;

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name (for a histogram, with its `_bucket`, `_sum` or `_count` suffix).
    pub name: String,
    /// Label pairs in the order printed, values unescaped.
    pub labels: Labels,
    /// The value.
    pub value: f64,
}

impl Sample {
    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Every sample line of `text` (comments and blank lines skipped); an error names the line
/// that does not parse.
pub fn samples(text: &str) -> Result<Vec<Sample>, String> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| parse_sample(line).map_err(|e| format!("{e} in `{line}`")))
        .collect()
}

/// The `# TYPE <name> <kind>` comments of `text`: name → kind (`counter`, `gauge`, ...).
pub fn types(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .map(|(name, kind)| (name.to_string(), kind.trim().to_string()))
        .collect()
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let (name, mut rest) = line.split_at(name_end);
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(inner)?;
        labels = parsed;
        rest = after;
    }
    let value_text = rest.split_whitespace().next().ok_or("no value")?;
    let value = match value_text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().map_err(|_| format!("bad value `{other}`"))?,
    };
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// Parses `k="v",k2="v2"}` (after the `{`); returns the pairs and the text after the `}`.
fn parse_labels(mut text: &str) -> Result<(Labels, &str), String> {
    let mut labels = Labels::new();
    loop {
        text = text.trim_start_matches(',');
        if let Some(after) = text.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (key, after_key) = text.split_once("=\"").ok_or("label without `=\"`")?;
        let mut value = String::new();
        let mut chars = after_key.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err("unterminated escape".into()),
                },
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".into()),
            }
        };
        labels.push((key.to_string(), value));
        text = after_key.get(end + 1..).unwrap_or_default();
    }
}

/// Words that PromQL reads as keywords, never as metric names: binary operators, modifiers,
/// and the aggregation operators (which may be followed by `by (…)` before their parentheses).
#[rustfmt::skip]
const PROMQL_KEYWORDS: &[&str] = &[
    "and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "by", "without", "on",
    "ignoring", "group_left", "group_right", "sum", "min", "max", "avg", "group", "stddev",
    "stdvar", "count", "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio",
];

/// The metric names a PromQL expression selects, first appearance first, each once. Understands
/// what dashboards write: selectors with `{matchers}`, ranges `[…]` (Grafana variables
/// inside), function and aggregation calls, `by (…)` / `on (…)`-style label lists, strings,
/// numbers and durations, `$variables`. An error for text it cannot read (an unclosed brace).
pub fn promql_metric_names(expr: &str) -> Result<Vec<String>, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names: Vec<String> = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&chars, i)?;
        } else if c == '{' {
            i = skip_until(&chars, i, '}')?;
        } else if c == '[' {
            i = skip_until(&chars, i, ']')?;
        } else if c == '#' {
            i = chars
                .iter()
                .skip(i)
                .position(|&c| c == '\n')
                .map_or(chars.len(), |p| i + p);
        } else if c == '$' {
            i += 1;
            i = if chars.get(i) == Some(&'{') {
                skip_until(&chars, i, '}')?
            } else {
                skip_word(&chars, i)
            };
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            i = skip_word(&chars, i);
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let end = skip_word(&chars, i);
            let word: String = chars.get(i..end).unwrap_or_default().iter().collect();
            let next =
                (end..chars.len()).find(|&j| chars.get(j).is_some_and(|c| !c.is_whitespace()));
            let called = next.is_some_and(|j| chars.get(j) == Some(&'('));
            i = end;
            let lowered = word.to_ascii_lowercase();
            if matches!(
                lowered.as_str(),
                "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
            ) {
                if let (true, Some(open)) = (called, next) {
                    i = skip_until(&chars, open, ')')?;
                }
            } else if !called
                && !PROMQL_KEYWORDS.contains(&lowered.as_str())
                && !names.contains(&word)
            {
                names.push(word);
            }
        } else {
            i += 1;
        }
    }
    Ok(names)
}

/// The index after an identifier-like run (letters, digits, `_`, `:`, `.` for numbers).
fn skip_word(chars: &[char], start: usize) -> usize {
    let word = |c: &char| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '.');
    (start..chars.len())
        .find(|&j| !chars.get(j).is_some_and(word))
        .unwrap_or(chars.len())
}

/// The index after the string literal opening at `start` (backslash escapes in `"` and `'`).
fn skip_string(chars: &[char], start: usize) -> Result<usize, String> {
    let quote = chars.get(start).copied().ok_or("no string")?;
    let mut j = start + 1;
    while let Some(&c) = chars.get(j) {
        if c == '\\' && quote != '`' {
            j += 2;
        } else if c == quote {
            return Ok(j + 1);
        } else {
            j += 1;
        }
    }
    Err(format!("unclosed string from character {start}"))
}

/// The index after the `close` matching the bracket at `start` (strings inside skipped).
fn skip_until(chars: &[char], start: usize, close: char) -> Result<usize, String> {
    let open = chars.get(start).copied().ok_or("no bracket")?;
    let mut depth = 0usize;
    let mut j = start;
    while let Some(&c) = chars.get(j) {
        if c == '"' || c == '\'' || c == '`' {
            j = skip_string(chars, j)?;
            continue;
        }
        if c == open {
            depth += 1;
        } else if c == close {
            depth = depth.saturating_sub(1);
            if depth == 0 {
                return Ok(j + 1);
            }
        }
        j += 1;
    }
    Err(format!("unclosed `{open}` from character {start}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_labelled_samples() {
        let text = "# TYPE a counter\na{x=\"1\",y=\"2\"} 5\na{x=\"3\"} 7\nb{} 1\n";
        assert_eq!(sample(text, "a", &[("x", "3")]), Some(7.0));
        assert_eq!(sample(text, "a", &[("y", "2")]), Some(5.0));
        assert_eq!(sample(text, "a", &[("x", "9")]), None);
        assert_eq!(sample(text, "b", &[]), Some(1.0));
        assert_eq!(sample(text, "c", &[]), None);
    }

    #[test]
    fn parses_sample_lines_and_types() {
        let text = "# TYPE a counter\na{x=\"1\",y=\"q\\\"uote,d\"} 5\n\
                    # TYPE h histogram\nh_bucket{le=\"+Inf\"} 3\nb 1.5e3\n";
        let parsed = samples(text).unwrap();
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[0].name, "a");
        assert_eq!(parsed[0].label("y"), Some("q\"uote,d"));
        assert_eq!(parsed[0].value, 5.0);
        assert_eq!(parsed[1].label("le"), Some("+Inf"));
        assert_eq!(parsed[2].labels, Vec::new());
        assert_eq!(parsed[2].value, 1500.0);
        assert_eq!(types(text).get("h").map(String::as_str), Some("histogram"));
        assert!(samples("a{x=\"1} 2\n").is_err());
        assert!(samples("a{x=\"1\"} many\n").is_err());
    }

    #[test]
    fn finds_the_metrics_a_promql_expression_selects() {
        let cases: &[(&str, &[&str])] = &[
            ("rate(a_total[5m])", &["a_total"]),
            (
                "sum by (class, reason) (rate(ballast_class_shed{policy_set=~\"$policy_set\", class!=\"x}y\"}[$__rate_interval]))",
                &["ballast_class_shed"],
            ),
            (
                "histogram_quantile(0.99, sum by (le) (rate(h_bucket[${__range}])))",
                &["h_bucket"],
            ),
            ("sum(rate(x[1m])) without (pod) / on (policy_set) group_left sum(y)", &["x", "y"]),
            ("a offset 5m > bool 1e3 and b unless c or a", &["a", "b", "c"]),
            ("max_over_time(typo_metrc{}[1h]) # a comment naming not_this", &["typo_metrc"]),
            ("count(up == 1)", &["up"]),
            ("vector(1)", &[]),
        ];
        for (expr, expected) in cases {
            assert_eq!(promql_metric_names(expr).unwrap(), *expected, "{expr}");
        }
        assert!(promql_metric_names("rate(a{x=\"1\"[5m])").is_err());
        assert!(promql_metric_names("a{x=\"1}").is_err());
    }
}
