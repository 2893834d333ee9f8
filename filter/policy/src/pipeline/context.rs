//! What the stages know of a request: each fact is computed once, when a stage first asks.
//!
//! Why lazy and shared: every fact costs host calls (a header read, a property lookup), and
//! most requests need few of them: an admitted request never reads its deadline, a request
//! without a retry mark never looks up its peer. Stages ask the context instead of the request,
//! so two stages that need the same fact (the deadline, for its own stage and for the
//! concurrency queue; the retry mark, for shedding and the retry stage) pay for it once and
//! agree on it.

use crate::deadline::{self, wire, Arrived, DeadlineConfig, Hints, Reading};
use crate::duration::Nanos;
use crate::reply::is_grpc;
use crate::retry::marks::attempt_of;
use crate::retry::policy::{ATTEMPT_COUNT_HEADER, GRPC_PREVIOUS_ATTEMPTS_HEADER};
use crate::retry::AttemptMark;
use crate::routing::RequestView;
use crate::trust::peer_is_trusted;
use crate::trust::TrustedPeers;

/// The request and the facts derived from it so far.
pub(super) struct RequestContext<'r> {
    request: &'r mut dyn RequestView,
    trusted_peers: &'r TrustedPeers,
    trusted: Option<bool>,
    deadline: Option<Reading>,
    grpc: Option<bool>,
    attempt: Option<AttemptMark>,
}

impl<'r> RequestContext<'r> {
    pub(super) fn new(request: &'r mut dyn RequestView, trusted_peers: &'r TrustedPeers) -> Self {
        RequestContext {
            request,
            trusted_peers,
            trusted: None,
            deadline: None,
            grpc: None,
            attempt: None,
        }
    }

    /// The request itself, for what only one stage reads.
    pub(super) fn request(&mut self) -> &mut dyn RequestView {
        self.request
    }

    /// Whether the peer's hints (priority, deadline, retry marks) are believed.
    pub(super) fn peer_trusted(&mut self) -> bool {
        if let Some(trusted) = self.trusted {
            return trusted;
        }
        let trusted = peer_is_trusted(self.trusted_peers, self.request);
        self.trusted = Some(trusted);
        trusted
    }

    /// Whether the request is itself a retry, from its marks (`x-envoy-attempt-count`,
    /// `grpc-previous-rpc-attempts`), believed only from a trusted peer (asked only when a
    /// mark is present). Load shedding and the retry stage ask; the marks are read once.
    pub(super) fn attempt(&mut self) -> AttemptMark {
        if let Some(mark) = self.attempt {
            return mark;
        }
        let envoy = self.request.header(ATTEMPT_COUNT_HEADER).map(str::to_owned);
        let grpc = self
            .request
            .header(GRPC_PREVIOUS_ATTEMPTS_HEADER)
            .map(str::to_owned);
        let mark = if (envoy.is_some() || grpc.is_some()) && self.peer_trusted() {
            attempt_of(envoy.as_deref(), grpc.as_deref())
        } else {
            AttemptMark::First
        };
        self.attempt = Some(mark);
        mark
    }

    /// The request's deadline under `config`, read `now` (relative hints count from when the
    /// proxy received the request; the absolute header's name comes from `config`; a stage
    /// asking again gets the same reading).
    pub(super) fn deadline(&mut self, config: &DeadlineConfig, now: Nanos) -> Reading {
        if let Some(reading) = self.deadline {
            return reading;
        }
        let mut header = |name: &str| self.request.header(name).map(str::to_owned);
        let hints = Hints {
            grpc_timeout: header(wire::GRPC_TIMEOUT),
            envoy_expected: header(wire::ENVOY_EXPECTED_TIMEOUT_MS),
            envoy_upstream: header(wire::ENVOY_UPSTREAM_TIMEOUT_MS),
            absolute: header(&config.header),
        };
        // The arrival costs a property read: only when there is a deadline to compute.
        let needed = !hints.present().is_empty() || config.default.is_some();
        let arrival = if needed { self.request.arrival() } else { None };
        let arrived = move || Arrived {
            at: arrival.unwrap_or(now),
            now,
        };
        let reading = deadline::read(config, &hints, arrived, || self.peer_trusted());
        self.deadline = Some(reading);
        reading
    }

    /// Whether the request is gRPC (its `content-type`), for the shape of a local reply.
    pub(super) fn grpc(&mut self) -> bool {
        if let Some(grpc) = self.grpc {
            return grpc;
        }
        let grpc = is_grpc(self.request.header("content-type"));
        self.grpc = Some(grpc);
        grpc
    }
}
