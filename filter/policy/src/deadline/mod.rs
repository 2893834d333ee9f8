//! Deadline propagation: the caller's deadline read once at arrival, shrunk by the time spent
//! here, passed on to the next hop, and enforced by answering at once when it is spent.
//!
//! Why ballast does it and not Envoy alone: Envoy ignores `grpc-timeout` unless configured, never
//! subtracts the time a request spent in the proxy (queue wait included), strips `x-envoy-*`
//! headers from peers it does not count as internal, and loses the deadline entirely when an
//! application between two proxies copies headers without decrementing them. ballast reads every
//! form a deadline arrives in, keeps the earliest as an absolute time on this proxy's clock, and
//! writes it back in every form on the way out, including an absolute header that survives an
//! application copying headers verbatim (as applications already copy trace headers).
//!
//! - [`wire`]: parsing and writing each header;
//! - this module: which inputs are believed and which deadline results ([`read`]);
//! - [`stage`]: the pipeline stage (answer expired requests, the headers to forward, the
//!   metrics).
//!
//! Deadline hints are believed only from trusted peers (`trusted_peers`), unless the policy set
//! says `believe_untrusted_peers`: a deadline can only shorten the request that carries it, so
//! an edge may safely honour its clients' deadlines, but that is the operator's choice. A hint
//! that is not believed is removed before forwarding, so a trusting next hop does not believe it
//! on this hop's word. No hint can make a deadline later than `max`.

pub mod stage;
pub mod wire;

use crate::duration::{Nanos, MILLISECOND, SECOND};

/// What to do with a deadline header that does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Count it and treat the request as if it had not sent the header.
    Ignore,
    /// Answer 400 (gRPC INVALID_ARGUMENT) without forwarding.
    Reject,
}

/// The validated `deadline` section (README, "Deadline propagation", gives the defaults' reasons).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadlineConfig {
    /// Deadline of a request that states none (`None`: it has none).
    pub default: Option<Nanos>,
    /// The longest deadline any request gets, whatever it states.
    pub max: Option<Nanos>,
    /// Kept back from the budget forwarded at each hop, for the answer's way back.
    pub offset: Nanos,
    /// A request with less budget than this left is answered at once instead of forwarded.
    pub min_useful: Nanos,
    /// The absolute deadline header (Unix epoch milliseconds), lower-case.
    pub header: String,
    /// An absolute deadline further than this in the past is taken for a wrong clock and ignored.
    pub max_clock_skew: Nanos,
    /// What a malformed deadline header leads to.
    pub malformed: Malformed,
    /// Believe deadline hints from any peer, not only trusted ones.
    pub believe_untrusted_peers: bool,
}

/// Defaults of the `deadline` section.
pub const DEFAULT_OFFSET: Nanos = MILLISECOND;
/// See [`DeadlineConfig::min_useful`].
pub const DEFAULT_MIN_USEFUL: Nanos = 5 * MILLISECOND;
/// See [`DeadlineConfig::max_clock_skew`].
pub const DEFAULT_MAX_CLOCK_SKEW: Nanos = 10 * SECOND;

impl Default for DeadlineConfig {
    fn default() -> Self {
        DeadlineConfig {
            default: None,
            max: None,
            offset: DEFAULT_OFFSET,
            min_useful: DEFAULT_MIN_USEFUL,
            header: wire::DEFAULT_ABSOLUTE_HEADER.to_string(),
            max_clock_skew: DEFAULT_MAX_CLOCK_SKEW,
            malformed: Malformed::Ignore,
            believe_untrusted_peers: false,
        }
    }
}

/// Where a deadline came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `grpc-timeout`.
    GrpcTimeout,
    /// `x-envoy-expected-rq-timeout-ms`.
    EnvoyExpected,
    /// `x-envoy-upstream-rq-timeout-ms`.
    EnvoyUpstream,
    /// The absolute deadline header.
    Absolute,
    /// The policy's `default`.
    Default,
}

impl Source {
    /// The four header sources, in the order they are read.
    pub const HEADERS: [Source; 4] = [
        Source::GrpcTimeout,
        Source::EnvoyExpected,
        Source::EnvoyUpstream,
        Source::Absolute,
    ];

    fn bit(self) -> u8 {
        match self {
            Source::GrpcTimeout => 1,
            Source::EnvoyExpected => 2,
            Source::EnvoyUpstream => 4,
            Source::Absolute => 8,
            Source::Default => 16,
        }
    }
}

/// A set of [`Source`]s (no allocation on the request path).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sources(u8);

impl Sources {
    /// Adds `source`.
    pub fn insert(&mut self, source: Source) {
        self.0 |= source.bit();
    }

    /// Whether `source` is in the set.
    pub fn contains(self, source: Source) -> bool {
        self.0 & source.bit() != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// A request's deadline: an absolute time on this proxy's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    /// When the caller gives up (nanoseconds since the Unix epoch, this proxy's clock).
    pub at: Nanos,
    /// The input that set it (the earliest).
    pub source: Source,
}

/// The raw values of a request's deadline headers, as sent.
#[derive(Debug, Clone, Default)]
pub struct Hints {
    /// `grpc-timeout`.
    pub grpc_timeout: Option<String>,
    /// `x-envoy-expected-rq-timeout-ms`.
    pub envoy_expected: Option<String>,
    /// `x-envoy-upstream-rq-timeout-ms`.
    pub envoy_upstream: Option<String>,
    /// The absolute deadline header.
    pub absolute: Option<String>,
}

impl Hints {
    /// The value of one header source.
    pub fn get(&self, source: Source) -> Option<&str> {
        match source {
            Source::GrpcTimeout => self.grpc_timeout.as_deref(),
            Source::EnvoyExpected => self.envoy_expected.as_deref(),
            Source::EnvoyUpstream => self.envoy_upstream.as_deref(),
            Source::Absolute => self.absolute.as_deref(),
            Source::Default => None,
        }
    }

    /// The header sources present in the request.
    pub fn present(&self) -> Sources {
        let mut present = Sources::default();
        for source in Source::HEADERS {
            if self.get(source).is_some() {
                present.insert(source);
            }
        }
        present
    }
}

/// What [`read`] found: the deadline and everything worth counting on the way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reading {
    /// The effective deadline (`None`: the request has none).
    pub deadline: Option<Deadline>,
    /// Header sources present in the request.
    pub present: Sources,
    /// Header sources believed and well formed.
    pub seen: Sources,
    /// Header sources believed but malformed.
    pub malformed: Sources,
    /// Whether the absolute header was ignored as too far in the past (a wrong clock).
    pub skew_rejected: bool,
    /// Whether the hints were ignored because the peer is not trusted.
    pub untrusted: bool,
    /// Whether `max` shortened the deadline.
    pub capped: bool,
}

/// When the request reached this proxy, and when ballast reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrived {
    /// When the proxy received the request (Envoy's `request.time`): relative hints count from
    /// here, so time spent in filters before ballast comes off the budget too.
    pub at: Nanos,
    /// Now (for the clock-skew check of the absolute header).
    pub now: Nanos,
}

/// The request's deadline from its `hints` under `config`: the earliest believed input, else
/// `default`, never later than `max` after its arrival. `arrived` is asked only when there is
/// a deadline to compute, `peer_trusted` only when the request carries a hint and the config
/// does not believe every peer.
pub fn read(
    config: &DeadlineConfig,
    hints: &Hints,
    arrived: impl FnOnce() -> Arrived,
    peer_trusted: impl FnOnce() -> bool,
) -> Reading {
    let mut reading = Reading {
        present: hints.present(),
        ..Reading::default()
    };
    if reading.present.is_empty() && config.default.is_none() {
        return reading;
    }
    let Arrived { at: arrival, now } = arrived();
    let arrival = arrival.min(now);
    let believed = reading.present.is_empty() || config.believe_untrusted_peers || peer_trusted();
    reading.untrusted = !believed;
    let mut earliest: Option<Deadline> = None;
    if believed {
        for source in Source::HEADERS {
            let Some(value) = hints.get(source) else {
                continue;
            };
            if matches!(source, Source::EnvoyExpected | Source::EnvoyUpstream)
                && wire::is_no_timeout_ms(value)
            {
                continue; // Envoy's "no timeout": not a deadline, not malformed either
            }
            let at = match source {
                Source::GrpcTimeout => {
                    wire::parse_grpc_timeout(value).map(|d| arrival.saturating_add(d))
                }
                Source::EnvoyExpected | Source::EnvoyUpstream => {
                    wire::parse_timeout_ms(value).map(|d| arrival.saturating_add(d))
                }
                Source::Absolute => wire::parse_epoch_ms(value),
                Source::Default => None,
            };
            let Some(at) = at else {
                reading.malformed.insert(source);
                continue;
            };
            if source == Source::Absolute && at < now.saturating_sub(config.max_clock_skew) {
                reading.skew_rejected = true;
                continue;
            }
            reading.seen.insert(source);
            if earliest.is_none_or(|d| at < d.at) {
                earliest = Some(Deadline { at, source });
            }
        }
    }
    if earliest.is_none() {
        earliest = config.default.map(|default| Deadline {
            at: arrival.saturating_add(default),
            source: Source::Default,
        });
    }
    if let (Some(deadline), Some(max)) = (earliest.as_mut(), config.max) {
        let cap = arrival.saturating_add(max);
        if deadline.at > cap {
            deadline.at = cap;
            reading.capped = true;
        }
    }
    reading.deadline = earliest;
    reading
}

#[cfg(test)]
mod tests;
