//! Per-HTTP-stream state, as Envoy's wasm `Context` keeps it for one filter instance.
//!
//! The data of a header map or body outlives the plugin's access to it: Envoy nulls its
//! pointer to the request headers once the plugin lets them through (`continue`), so later
//! reads return an empty map / BAD_ARGUMENT, while the headers themselves travel upstream.
//! Each map and body therefore has its contents plus a `live` flag saying whether the plugin
//! may currently see it. Phases that arrive while the plugin holds a pause are queued and
//! delivered when it resumes, as Envoy's filter manager does with
//! `StopAllIterationAndWatermark`.

use crate::pairs::HeaderMap;
use crate::properties::PropertyTable;
use crate::types::{LocalResponse, StreamType};

/// Request or response direction of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Request,
    Response,
}

/// One direction (request or response) of a stream.
#[derive(Debug, Default)]
pub(crate) struct Direction {
    pub(crate) headers: HeaderMap,
    pub(crate) headers_live: bool,
    pub(crate) headers_seen: bool,
    /// The buffer the plugin sees as the body (current chunk, or everything buffered).
    pub(crate) body: Vec<u8>,
    pub(crate) body_live: bool,
    /// Body bytes let through by the plugin so far.
    pub(crate) forwarded: Vec<u8>,
    pub(crate) trailers: HeaderMap,
    pub(crate) trailers_live: bool,
    pub(crate) has_trailers: bool,
    /// The plugin paused the headers (everything after waits for `continue`).
    pub(crate) headers_paused: bool,
    /// The plugin returned Pause from a body callback (StopIterationAndBuffer).
    pub(crate) body_buffering: bool,
    pub(crate) trailers_paused: bool,
    /// Phases that arrived during a headers pause.
    pub(crate) queued_body: Vec<u8>,
    pub(crate) queued_has_body: bool,
    pub(crate) queued_end: bool,
    pub(crate) queued_trailers: HeaderMap,
    pub(crate) queued_has_trailers: bool,
    /// The last phase delivered carried end_of_stream.
    pub(crate) end_of_stream: bool,
}

impl Direction {
    /// Passes the body buffer on (as Envoy forwards it once the plugin continues): appends it
    /// to what was forwarded, empties it keeping its allocation, and ends buffering.
    pub(crate) fn forward_body(&mut self) {
        self.body_buffering = false;
        self.forwarded.extend_from_slice(&self.body);
        self.body.clear();
        self.body_live = false;
    }

    fn reset(&mut self) {
        self.headers.clear();
        self.headers_live = false;
        self.headers_seen = false;
        self.body.clear();
        self.body_live = false;
        self.forwarded.clear();
        self.trailers.clear();
        self.trailers_live = false;
        self.has_trailers = false;
        self.headers_paused = false;
        self.body_buffering = false;
        self.trailers_paused = false;
        self.queued_body.clear();
        self.queued_has_body = false;
        self.queued_end = false;
        self.queued_trailers.clear();
        self.queued_has_trailers = false;
        self.end_of_stream = false;
    }

    /// Any pause is held by the plugin on this direction.
    pub(crate) fn paused(&self) -> bool {
        self.headers_paused || self.body_buffering || self.trailers_paused
    }
}

/// Everything the host knows about one HTTP context.
#[derive(Debug, Default)]
pub(crate) struct StreamState {
    pub(crate) id: u32,
    /// Its root context (the configuration active when the stream began).
    pub(crate) root: u32,
    /// `proxy_on_context_create` was called.
    pub(crate) created: bool,
    pub(crate) request: Direction,
    pub(crate) response: Direction,
    pub(crate) local_response: Option<LocalResponse>,
    /// The plugin closed (reset) the stream.
    pub(crate) reset: Option<StreamType>,
    /// In `proxy_on_log`: maps are read-only and missing ones read as NOT_FOUND.
    pub(crate) log_phase: bool,
    pub(crate) finished: bool,
    /// Properties the test set for this stream (override the host's).
    pub(crate) properties: PropertyTable,
    /// Values the plugin stored with `proxy_set_property`.
    pub(crate) filter_state: PropertyTable,
    pub(crate) start_unix_ns: u64,
    pub(crate) response_code: Option<u32>,
}

impl StreamState {
    /// Clears the state for reuse by another stream (keeps allocations).
    pub(crate) fn reset_for(&mut self, id: u32, root: u32, start_unix_ns: u64) {
        self.id = id;
        self.root = root;
        self.created = false;
        self.request.reset();
        self.response.reset();
        self.local_response = None;
        self.reset = None;
        self.log_phase = false;
        self.finished = false;
        self.properties.clear();
        self.filter_state.clear();
        self.start_unix_ns = start_unix_ns;
        self.response_code = None;
    }

    /// The stream ended early: a local response was sent or the plugin reset it.
    pub(crate) fn ended(&self) -> bool {
        self.local_response.is_some() || self.reset.is_some()
    }

    pub(crate) fn dir(&self, side: Side) -> &Direction {
        match side {
            Side::Request => &self.request,
            Side::Response => &self.response,
        }
    }

    pub(crate) fn dir_mut(&mut self, side: Side) -> &mut Direction {
        match side {
            Side::Request => &mut self.request,
            Side::Response => &mut self.response,
        }
    }
}
