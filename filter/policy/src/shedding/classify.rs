//! A request's priority class: from a trusted peer's header, else from its route, else the
//! default.
//!
//! Why this order and this trust rule: the header is how a caller inside the mesh (or a gateway
//! that classified the request already) says what a request is worth; believed from anyone, it
//! lets any client mark itself critical and jump every queue. So a header is read only from
//! trusted peers; a route rule (`routes[].priority`) is the operator's own statement, and the
//! default covers the rest. Header values are class names, or values the `priority.values` map
//! names: exact strings, or integer ranges such as `0-7` for numeric priorities (e.g. 0–31).

use crate::config::{PriorityClasses, PriorityId};

/// A `priority.values` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueMatch {
    /// This exact value (after trimming spaces).
    Exact(String),
    /// An integer within these bounds (inclusive).
    Range(u64, u64),
}

impl ValueMatch {
    /// Reads a key: `a-b` or `n` are integer ranges, anything else is exact.
    pub fn parse(key: &str) -> Result<ValueMatch, String> {
        let number = |text: &str| text.trim().parse::<u64>().ok();
        if let Some(n) = number(key) {
            return Ok(ValueMatch::Range(n, n));
        }
        if let Some((low, high)) = key.split_once('-') {
            if let (Some(low), Some(high)) = (number(low), number(high)) {
                if low > high {
                    return Err(format!("`{key}`: the range is empty ({low} > {high})"));
                }
                return Ok(ValueMatch::Range(low, high));
            }
        }
        if key.trim().is_empty() {
            return Err("a value must not be empty".to_string());
        }
        Ok(ValueMatch::Exact(key.trim().to_string()))
    }

    fn matches(&self, value: &str, number: Option<u64>) -> bool {
        match self {
            ValueMatch::Exact(exact) => exact == value,
            ValueMatch::Range(low, high) => number.is_some_and(|n| (*low..=*high).contains(&n)),
        }
    }
}

/// Where a request's class came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassSource {
    /// A trusted peer's header.
    Header,
    /// The route rule that matched.
    Route,
    /// The default class.
    Default,
}

/// Why a priority header was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// The peer is not trusted.
    Untrusted,
    /// The value names no class.
    Unknown,
}

/// A request's class and how it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classified {
    /// The class.
    pub class: PriorityId,
    /// Where it came from.
    pub source: ClassSource,
    /// A header that was present but not used.
    pub ignored: Option<Ignored>,
}

impl PriorityClasses {
    /// The class a header value names: a class name, or a `values` entry.
    pub fn class_of_value(&self, value: &str) -> Option<PriorityId> {
        let value = value.trim();
        if let Some(index) = self.classes.iter().position(|c| c == value) {
            return Some(PriorityId(index));
        }
        let number = value.parse::<u64>().ok();
        self.values
            .iter()
            .find(|(key, _)| key.matches(value, number))
            .map(|(_, class)| *class)
    }

    /// A request's class from its header (`trusted` is asked only when there is one), its
    /// route's class, and the default.
    pub fn classify_request(
        &self,
        header: Option<&str>,
        trusted: impl FnOnce() -> bool,
        route: Option<PriorityId>,
    ) -> Classified {
        let fallback = |ignored| Classified {
            class: route.unwrap_or(self.default),
            source: if route.is_some() {
                ClassSource::Route
            } else {
                ClassSource::Default
            },
            ignored,
        };
        let Some(value) = header else {
            return fallback(None);
        };
        if !trusted() {
            return fallback(Some(Ignored::Untrusted));
        }
        match self.class_of_value(value) {
            Some(class) => Classified {
                class,
                source: ClassSource::Header,
                ignored: None,
            },
            None => fallback(Some(Ignored::Unknown)),
        }
    }

    /// The class of a request: the header's class when the peer is trusted and the value is
    /// known, otherwise the default. Returns whether the header was ignored as well.
    pub fn classify(&self, header_value: Option<&str>, peer_trusted: bool) -> (PriorityId, bool) {
        let found = self.classify_request(header_value, || peer_trusted, None);
        (found.class, found.ignored.is_some())
    }

    /// The name of a class (empty for a foreign id).
    pub fn name(&self, class: PriorityId) -> &str {
        self.classes.get(class.0).map_or("", String::as_str)
    }
}
