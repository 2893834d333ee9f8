//! How the host offers a stream's phases to the plugin: headers, body and trailers per side,
//! the hold-and-release of paused phases, resumption, and local replies.
//!
//! Under the ngx_wasm_module profile (`crate::profile`), headers callbacks get
//! `end_of_stream` false, trailers are not offered (the end comes as a last body chunk) and a
//! pause in response headers without a local response is a host warning.
//!
//! Why apart from `mod.rs`: this is the part that reproduces Envoy's filter-manager semantics
//! (see the parent module's doc); the parent only creates streams and exposes the test API.

use super::StreamId;
use crate::error::Result;
use crate::host::Host;
use crate::profile::HostProfile;
use crate::state::Side;
use crate::types::LocalResponse;
use crate::worker::Pending;

impl Host {
    pub(super) fn stop_iteration(&self, worker: usize) -> bool {
        self.workers[worker].store.data().stop_iteration
    }

    pub(super) fn profile_of(&self, worker: usize) -> HostProfile {
        self.workers[worker].store.data().cfg.profile
    }

    /// Offers the headers of `side` to the plugin (no settle).
    pub(super) fn deliver_headers(&mut self, id: StreamId, side: Side, end: bool) -> Result<()> {
        let Some(s) = self.state_mut(id) else {
            return Ok(());
        };
        let d = s.dir_mut(side);
        d.headers_live = true;
        d.headers_seen = true;
        d.end_of_stream = end;
        let n = d.headers.len() as i32;
        let profile = self.profile_of(id.worker);
        let end_flag = end && profile.headers_carry_end_of_stream();
        let args = (id.context_id as i32, n, i32::from(end_flag));
        let r = match side {
            Side::Request => self.call_export(
                id.worker,
                |e| e.on_request_headers.as_ref(),
                id.context_id,
                args,
            )?,
            Side::Response => self.call_export(
                id.worker,
                |e| e.on_response_headers.as_ref(),
                id.context_id,
                args,
            )?,
        };
        let stop = self.stop_iteration(id.worker) || r.is_some_and(|r| r != 0);
        if stop && side == Side::Response && !profile.headers_carry_end_of_stream() {
            self.warn_pause_without_reply(id);
        }
        if let Some(d) = self.state_mut(id).map(|s| s.dir_mut(side)) {
            if stop {
                d.headers_paused = true;
            } else {
                d.headers_live = false;
            }
        }
        Ok(())
    }

    /// Offers the body buffer of `side` to the plugin (no settle).
    pub(super) fn deliver_body(&mut self, id: StreamId, side: Side, end: bool) -> Result<()> {
        let Some(s) = self.state_mut(id) else {
            return Ok(());
        };
        let d = s.dir_mut(side);
        d.body_live = true;
        d.end_of_stream = end;
        d.body_buffering = false;
        let args = (id.context_id as i32, d.body.len() as i32, i32::from(end));
        let r = match side {
            Side::Request => self.call_export(
                id.worker,
                |e| e.on_request_body.as_ref(),
                id.context_id,
                args,
            )?,
            Side::Response => self.call_export(
                id.worker,
                |e| e.on_response_body.as_ref(),
                id.context_id,
                args,
            )?,
        };
        let stop = self.stop_iteration(id.worker) || r.is_some_and(|r| r != 0);
        if let Some(d) = self.state_mut(id).map(|s| s.dir_mut(side)) {
            if stop {
                d.body_buffering = true;
            } else {
                d.forward_body();
            }
        }
        Ok(())
    }

    /// ngx_wasm_module takes a pause in response headers as "a local response follows"; it
    /// warns when none was produced.
    fn warn_pause_without_reply(&mut self, id: StreamId) {
        let st = self.workers[id.worker].store.data();
        let replying = st.pending.iter().any(
            |p| matches!(p, Pending::LocalReply { context_id, .. } if *context_id == id.context_id),
        );
        let replied = self.state(id).is_some_and(|s| s.local_response.is_some());
        if !replying && !replied {
            self.shared.host_warnings.push(format!(
                "stream {}: \"ResponseHeaders\" returned \"PAUSE\": local response expected but none produced",
                id.context_id
            ));
        }
    }

    /// Offers the trailers of `side` to the plugin (no settle). ngx_wasm_module has no
    /// trailers callbacks: the plugin sees the end of the stream as a last (possibly empty)
    /// body chunk instead.
    pub(super) fn deliver_trailers(&mut self, id: StreamId, side: Side) -> Result<()> {
        if !self.profile_of(id.worker).delivers_trailers() {
            if let Some(d) = self.state_mut(id).map(|s| s.dir_mut(side)) {
                d.has_trailers = true;
            }
            return self.deliver_body(id, side, true);
        }
        let Some(s) = self.state_mut(id) else {
            return Ok(());
        };
        let d = s.dir_mut(side);
        d.trailers_live = true;
        d.has_trailers = true;
        d.end_of_stream = true;
        let args = (id.context_id as i32, d.trailers.len() as i32);
        let r = match side {
            Side::Request => self.call_export(
                id.worker,
                |e| e.on_request_trailers.as_ref(),
                id.context_id,
                args,
            )?,
            Side::Response => self.call_export(
                id.worker,
                |e| e.on_response_trailers.as_ref(),
                id.context_id,
                args,
            )?,
        };
        let stop = self.stop_iteration(id.worker) || r.is_some_and(|r| r != 0);
        if let Some(d) = self.state_mut(id).map(|s| s.dir_mut(side)) {
            if stop {
                d.trailers_paused = true;
            } else {
                d.trailers_live = false;
                if d.body_buffering {
                    d.forward_body();
                }
            }
        }
        Ok(())
    }

    /// The plugin continued `side` of a stream (after its VM call returned).
    pub(crate) fn resume(&mut self, worker: usize, context_id: u32, side: Side) -> Result<()> {
        let id = StreamId { worker, context_id };
        let Some(s) = self.state_mut(id) else {
            return Ok(());
        };
        if s.ended() {
            return Ok(());
        }
        let d = s.dir_mut(side);
        if d.headers_paused {
            d.headers_paused = false;
            d.headers_live = false;
            if d.queued_has_body {
                d.queued_has_body = false;
                let queued = std::mem::take(&mut d.queued_body);
                d.body.extend_from_slice(&queued);
                d.queued_body = queued;
                d.queued_body.clear();
                let end = d.queued_end && !d.queued_has_trailers;
                self.deliver_body(id, side, end)?;
            }
            self.deliver_queued_trailers(id, side)?;
        } else if d.body_buffering {
            d.forward_body();
        } else if d.trailers_paused {
            d.trailers_paused = false;
            d.trailers_live = false;
        }
        Ok(())
    }

    pub(super) fn deliver_queued_trailers(&mut self, id: StreamId, side: Side) -> Result<()> {
        let Some(s) = self.state_mut(id) else {
            return Ok(());
        };
        if s.ended() {
            return Ok(());
        }
        let d = s.dir_mut(side);
        if !d.queued_has_trailers || d.headers_paused {
            return Ok(());
        }
        d.queued_has_trailers = false;
        std::mem::swap(&mut d.trailers, &mut d.queued_trailers);
        d.queued_trailers.clear();
        self.deliver_trailers(id, side)
    }

    /// A local response sent by the plugin (after its VM call returned).
    pub(crate) fn local_reply(
        &mut self,
        worker: usize,
        context_id: u32,
        reply: LocalResponse,
    ) -> Result<()> {
        let id = StreamId { worker, context_id };
        let deliver = self.workers[worker].store.data().cfg.deliver_local_reply;
        let Some(s) = self.state_mut(id) else {
            return Ok(());
        };
        if s.ended() {
            return Ok(());
        }
        s.response_code = Some(reply.status_code);
        let req = &mut s.request;
        req.headers_paused = false;
        req.body_buffering = false;
        req.trailers_paused = false;
        req.headers_live = false;
        req.body_live = false;
        req.trailers_live = false;
        req.queued_has_body = false;
        req.queued_has_trailers = false;
        let deliver = deliver && !s.response.headers_seen;
        let resp = &mut s.response;
        resp.headers.clear();
        resp.headers
            .add(b":status", reply.status_code.to_string().as_bytes());
        if !reply.body.is_empty() {
            resp.headers
                .add(b"content-length", reply.body.len().to_string().as_bytes());
            resp.headers.add(b"content-type", b"text/plain");
        }
        for (k, v) in &reply.headers {
            resp.headers.add(k.as_bytes(), v.as_bytes());
        }
        let body = reply.body.clone();
        s.local_response = Some(reply);
        if !deliver {
            s.response.forwarded = body;
            return Ok(());
        }
        s.response.body.clear();
        s.response.body.extend_from_slice(&body);
        let has_body = !body.is_empty();
        self.deliver_headers(id, Side::Response, !has_body)?;
        if has_body {
            self.deliver_body(id, Side::Response, true)?;
        }
        Ok(())
    }
}
