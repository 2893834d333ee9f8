//! HTTP streams: the phases Envoy's filter manager offers the plugin, and their inspection.
//!
//! Semantics reproduced (Envoy `context.cc`, proxy-wasm-cpp-host `context.cc`):
//! - `on_context_create` runs at the first phase; ids are per worker (root = 1, then 2, 3...);
//!   a stream belongs to the root context that was active when it began (`Host::reconfigure`);
//! - Pause from `on_request_headers` is StopAllIterationAndWatermark: later body/trailers
//!   phases are held (and buffered) until the plugin continues the stream, then delivered
//!   in order, the body as one buffer;
//! - Pause from a body callback buffers: the next chunk is delivered together with what was
//!   held; trailers end the buffering; `continue` releases the buffered body;
//! - a local response ends the stream: the plugin then sees its own reply in
//!   `on_response_headers`/`on_response_body` (the reply runs through the encoder chain) and
//!   later phases supplied by the test are not delivered (`Action::Closed`);
//! - `finish` runs `on_log`, `on_done`, `on_delete` (access logs run before the filter
//!   chain is destroyed).

mod delivery;
mod inspect;

use crate::error::{Error, Result};
use crate::host::Host;
use crate::state::{Side, StreamState};
use crate::types::Action;

/// Names a stream: its worker and context id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamId {
    pub worker: usize,
    pub context_id: u32,
}

/// A handle to drive and inspect one HTTP stream; borrows the host.
pub struct Stream<'h> {
    host: &'h mut Host,
    id: StreamId,
}

type Pairs<'a> = &'a [(&'a str, &'a str)];

impl Host {
    /// Creates an HTTP stream (a new context) on `worker`.
    pub fn http_stream(&mut self, worker: usize) -> Result<Stream<'_>> {
        self.check_worker(worker)?;
        if !self.started {
            return Err(Error::usage("call Host::start before creating streams"));
        }
        let now = self.shared.clock.realtime_ns();
        let st = self.workers[worker].store.data_mut();
        let id = st.next_context_id;
        st.next_context_id = st.next_context_id.wrapping_add(1);
        let mut state = st.pool.pop().unwrap_or_default();
        let root = st.root_id;
        state.reset_for(id, root, now);
        st.streams.insert(id, state);
        Ok(Stream {
            host: self,
            id: StreamId {
                worker,
                context_id: id,
            },
        })
    }

    /// Re-borrows an existing (or finished, not recycled) stream.
    pub fn stream(&mut self, id: StreamId) -> Result<Stream<'_>> {
        self.check_worker(id.worker)?;
        let st = self.workers[id.worker].store.data();
        if !st.streams.contains_key(&id.context_id)
            && !self.workers[id.worker]
                .finished
                .contains_key(&id.context_id)
        {
            return Err(Error::usage(format!("no stream {id:?}")));
        }
        Ok(Stream { host: self, id })
    }

    /// Frees a finished stream kept for inspection.
    pub fn recycle(&mut self, id: StreamId) -> Result<()> {
        self.check_worker(id.worker)?;
        let w = &mut self.workers[id.worker];
        match w.finished.remove(&id.context_id) {
            Some(s) => {
                w.store.data_mut().pool.push(s);
                Ok(())
            }
            None => Err(Error::usage(format!("no finished stream {id:?}"))),
        }
    }

    pub(crate) fn state(&self, id: StreamId) -> Option<&StreamState> {
        let w = self.workers.get(id.worker)?;
        w.store
            .data()
            .streams
            .get(&id.context_id)
            .or_else(|| w.finished.get(&id.context_id))
            .map(|s| &**s)
    }

    fn state_mut(&mut self, id: StreamId) -> Option<&mut StreamState> {
        self.workers
            .get_mut(id.worker)?
            .store
            .data_mut()
            .streams
            .get_mut(&id.context_id)
            .map(|s| &mut **s)
    }

    fn ensure_created(&mut self, id: StreamId) -> Result<()> {
        let (created, root) = self.state(id).map_or((false, 1), |s| (s.created, s.root));
        if !created {
            if let Some(s) = self.state_mut(id) {
                s.created = true;
            }
            self.call_export(
                id.worker,
                |e| e.on_context_create.as_ref(),
                id.context_id,
                (id.context_id as i32, root as i32),
            )?;
        }
        Ok(())
    }
}

impl Stream<'_> {
    /// The stream's id (to find it again with `Host::stream`).
    pub fn id(&self) -> StreamId {
        self.id
    }

    fn state(&self) -> Result<&StreamState> {
        self.host
            .state(self.id)
            .ok_or_else(|| Error::usage(format!("stream {:?} no longer exists", self.id)))
    }

    fn live(&mut self) -> Result<&mut StreamState> {
        let id = self.id;
        let s = self
            .host
            .state_mut(id)
            .ok_or_else(|| Error::usage(format!("stream {id:?} is finished")))?;
        Ok(s)
    }

    fn outcome(&self, side: Side) -> Result<Action> {
        let s = self.state()?;
        if s.ended() {
            return Ok(Action::Closed);
        }
        Ok(if s.dir(side).paused() {
            Action::Pause
        } else {
            Action::Continue
        })
    }

    fn headers(&mut self, side: Side, headers: Pairs<'_>, end: bool) -> Result<Action> {
        let s = self.live()?;
        if s.ended() {
            return Ok(Action::Closed);
        }
        let d = s.dir_mut(side);
        if d.headers_seen {
            return Err(Error::usage(format!("{side:?} headers were already sent")));
        }
        d.headers
            .set_all(headers.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())));
        if side == Side::Response {
            s.response_code = headers
                .iter()
                .find(|(k, _)| *k == ":status")
                .and_then(|(_, v)| v.parse().ok());
        }
        self.host.ensure_created(self.id)?;
        self.host.deliver_headers(self.id, side, end)?;
        self.host.settle()?;
        let profile = self.host.profile_of(self.id.worker);
        if end && side == Side::Response && !profile.headers_carry_end_of_stream() {
            // ngx_wasm_module: the end of a response without a body is a last, empty body
            // chunk (`on_response_body` with end_of_stream), as nginx's body filter sees it.
            let s = self.live()?;
            if !s.ended() && !s.dir(side).paused() {
                self.host.deliver_body(self.id, side, true)?;
                self.host.settle()?;
            }
        }
        self.outcome(side)
    }

    fn body(&mut self, side: Side, data: &[u8], end: bool) -> Result<Action> {
        let s = self.live()?;
        if s.ended() {
            return Ok(Action::Closed);
        }
        let d = s.dir_mut(side);
        if !d.headers_seen || d.has_trailers || d.queued_has_trailers {
            return Err(Error::usage(format!(
                "{side:?} body must come after headers and before trailers"
            )));
        }
        if d.headers_paused {
            d.queued_body.extend_from_slice(data);
            d.queued_has_body = true;
            d.queued_end |= end;
            return Ok(Action::Pause);
        }
        d.body.extend_from_slice(data);
        self.host.deliver_body(self.id, side, end)?;
        self.host.settle()?;
        self.outcome(side)
    }

    fn trailers(&mut self, side: Side, trailers: Pairs<'_>) -> Result<Action> {
        let s = self.live()?;
        if s.ended() {
            return Ok(Action::Closed);
        }
        let d = s.dir_mut(side);
        if !d.headers_seen || d.has_trailers || d.queued_has_trailers {
            return Err(Error::usage(format!(
                "{side:?} trailers must come once, after headers"
            )));
        }
        let pairs = trailers.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes()));
        if d.headers_paused {
            d.queued_trailers.set_all(pairs);
            d.queued_has_trailers = true;
            return Ok(Action::Pause);
        }
        d.trailers.set_all(pairs);
        self.host.deliver_trailers(self.id, side)?;
        self.host.settle()?;
        self.outcome(side)
    }

    /// Request headers from downstream (keys lower-cased, as Envoy's codecs do).
    pub fn request_headers(&mut self, headers: Pairs<'_>, end_of_stream: bool) -> Result<Action> {
        self.headers(Side::Request, headers, end_of_stream)
    }
    /// A request body chunk.
    pub fn request_body(&mut self, data: &[u8], end_of_stream: bool) -> Result<Action> {
        self.body(Side::Request, data, end_of_stream)
    }
    /// Request trailers (end the request).
    pub fn request_trailers(&mut self, trailers: Pairs<'_>) -> Result<Action> {
        self.trailers(Side::Request, trailers)
    }
    /// Response headers from upstream.
    pub fn response_headers(&mut self, headers: Pairs<'_>, end_of_stream: bool) -> Result<Action> {
        self.headers(Side::Response, headers, end_of_stream)
    }
    /// A response body chunk.
    pub fn response_body(&mut self, data: &[u8], end_of_stream: bool) -> Result<Action> {
        self.body(Side::Response, data, end_of_stream)
    }
    /// Response trailers.
    pub fn response_trailers(&mut self, trailers: Pairs<'_>) -> Result<Action> {
        self.trailers(Side::Response, trailers)
    }

    /// Ends the stream: `on_log`, `on_done`, `on_delete` (only if the context was created).
    /// The state stays inspectable unless the host recycles finished streams.
    pub fn finish(&mut self) -> Result<()> {
        let id = self.id;
        let s = self.live()?;
        if s.created {
            s.log_phase = true;
            self.host.call_export(
                id.worker,
                |e| e.on_log.as_ref(),
                id.context_id,
                id.context_id as i32,
            )?;
            if let Some(s) = self.host.state_mut(id) {
                s.log_phase = false;
            }
            self.host.call_export(
                id.worker,
                |e| e.on_done.as_ref(),
                id.context_id,
                id.context_id as i32,
            )?;
            self.host.call_export(
                id.worker,
                |e| e.on_delete.as_ref(),
                id.context_id,
                id.context_id as i32,
            )?;
        }
        let w = &mut self.host.workers[id.worker];
        if let Some(mut s) = w.store.data_mut().streams.remove(&id.context_id) {
            s.finished = true;
            if self.host.recycle {
                w.store.data_mut().pool.push(s);
            } else {
                w.finished.insert(id.context_id, s);
            }
        }
        self.host.settle()?;
        self.host.retire_idle_roots(id.worker)
    }
}
