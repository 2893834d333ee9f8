//! The process-wide metric registry.
//!
//! In Envoy a plugin's metric id is local to its VM (ids are handed out per worker:
//! counters 4, 8, 12..., gauges 5, 9..., histograms 6, 10...; the low two bits carry the
//! type), but the stat behind it is process-wide: every worker defining the same name
//! updates one counter. The registry keeps the stats; each worker keeps its id -> stat map.

use std::collections::HashMap;

/// `proxy_metric_type_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricType {
    Counter = 0,
    Gauge = 1,
    Histogram = 2,
}

impl MetricType {
    pub(crate) fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            0 => Self::Counter,
            1 => Self::Gauge,
            2 => Self::Histogram,
            _ => return None,
        })
    }
}

/// A snapshot of one histogram.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    pub count: u64,
    pub sum: u64,
    pub min: Option<u64>,
    pub max: Option<u64>,
    /// Recorded values, in order, up to the host's sample limit.
    pub samples: Vec<u64>,
}

#[derive(Debug)]
pub(crate) struct Stat {
    pub(crate) name: String,
    pub(crate) kind: MetricType,
    pub(crate) value: u64,
    pub(crate) histogram: Histogram,
}

#[derive(Debug)]
pub(crate) struct Metrics {
    pub(crate) stats: Vec<Stat>,
    by_name: HashMap<(MetricType, String), usize>,
    pub(crate) sample_limit: usize,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            stats: Vec::new(),
            by_name: HashMap::new(),
            sample_limit: 100_000,
        }
    }
}

impl Metrics {
    /// Finds or creates the stat of that type and name.
    pub(crate) fn define(&mut self, kind: MetricType, name: &str) -> usize {
        if let Some(index) = self.by_name.get(&(kind, name.to_string())) {
            return *index;
        }
        let index = self.stats.len();
        self.stats.push(Stat {
            name: name.to_string(),
            kind,
            value: 0,
            histogram: Histogram::default(),
        });
        self.by_name.insert((kind, name.to_string()), index);
        index
    }

    pub(crate) fn find(&self, kind: MetricType, name: &str) -> Option<&Stat> {
        self.by_name
            .get(&(kind, name.to_string()))
            .and_then(|i| self.stats.get(*i))
    }

    pub(crate) fn record_histogram(&mut self, index: usize, value: u64) {
        let limit = self.sample_limit;
        if let Some(stat) = self.stats.get_mut(index) {
            let h = &mut stat.histogram;
            h.count = h.count.saturating_add(1);
            h.sum = h.sum.saturating_add(value);
            h.min = Some(h.min.map_or(value, |m| m.min(value)));
            h.max = Some(h.max.map_or(value, |m| m.max(value)));
            if h.samples.len() < limit {
                h.samples.push(value);
            }
        }
    }

    /// All stats as (type, name, value) for a listing.
    pub(crate) fn list(&self) -> Vec<(MetricType, String, u64)> {
        self.stats
            .iter()
            .map(|s| {
                let v = if s.kind == MetricType::Histogram {
                    s.histogram.count
                } else {
                    s.value
                };
                (s.kind, s.name.clone(), v)
            })
            .collect()
    }
}
