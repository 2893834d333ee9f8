//! Reads values out of Envoy's `/stats/prometheus` text.

/// The value of the sample `name{labels}` where every `(key, value)` in `labels` is present;
/// `None` when no such sample exists.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, label_text) = match series.split_once('{') {
                Some((metric, rest)) => (metric, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let all = labels.iter().all(|(k, v)| {
                label_text
                    .split(',')
                    .any(|pair| pair == format!("{k}=\"{v}\""))
            });
            if all {
                value.parse().ok()
            } else {
                None
            }
        })
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
}
