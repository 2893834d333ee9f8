//! One HTTP stream: hands each callback to the policy pipeline and performs the effects it
//! returns (headers to set, a local reply, pausing, resuming another stream).
//!
//! Why nothing else: every decision is the policy crate's (`ballast_policy::pipeline`); this
//! file only knows which host call carries out which effect.

use crate::abi::exports::Action;
use crate::host::{self, HostResponse, HostStore};
use crate::metrics::{increment, SetTelemetry};
use crate::request::HostRequest;
use ballast_policy::pipeline::{Exchange, Pipeline, Resume, Verdict};
use std::rc::Rc;

/// What every HTTP context of this VM shares (built by the root context).
pub struct Plugin {
    /// The configured policy sets.
    pub pipeline: Pipeline<SetTelemetry>,
    /// Requests no rule matched and no default policy set covered.
    pub unmatched: Option<u32>,
    /// Host calls that returned a status they do not document.
    pub host_errors: Option<u32>,
}

impl Plugin {
    /// Publishes the host errors counted since the last time.
    pub fn publish_host_errors(&self) {
        increment(self.host_errors, crate::abi::take_unexpected());
    }
}

/// One HTTP stream.
pub struct BallastHttp {
    plugin: Option<Rc<Plugin>>,
    context_id: u32,
    /// The request's passage through its policy set (`None`: unrouted, or not configured).
    exchange: Option<Exchange>,
}

impl BallastHttp {
    /// A stream governed by `plugin` (`None` only if the root was never configured).
    pub fn new(plugin: Option<Rc<Plugin>>, context_id: u32) -> Self {
        Self {
            plugin,
            context_id,
            exchange: None,
        }
    }

    /// Resumes a waiter that took the slot this stream freed, then makes this stream current
    /// again (resuming switched the effective context).
    fn resume_other(&self, resume: Option<Resume>) {
        if let Some(resume) = resume {
            host::resume(&resume);
            host::switch_to(self.context_id);
        }
    }

    /// The response ended: a slot still held is released.
    fn response_ended(&mut self) {
        let (Some(plugin), Some(exchange)) = (&self.plugin, self.exchange.as_mut()) else {
            return;
        };
        let resumed = plugin
            .pipeline
            .on_response_end(&HostStore, exchange, host::now());
        self.resume_other(resumed);
    }
}

impl BallastHttp {
    /// The stream ended (completed, reset or answered): anything it still holds is settled.
    pub fn on_done(&mut self) -> bool {
        if let (Some(plugin), Some(exchange)) = (&self.plugin, self.exchange.as_mut()) {
            let resumed = plugin.pipeline.on_done(&HostStore, exchange, host::now());
            self.resume_other(resumed);
        }
        if let Some(plugin) = &self.plugin {
            plugin.publish_host_errors();
        }
        true
    }
}

impl BallastHttp {
    /// The request's headers: the pipeline decides, the effects are carried out.
    pub fn on_request_headers(&mut self) -> Action {
        let Some(plugin) = self.plugin.clone() else {
            return Action::Continue;
        };
        let mut request = HostRequest::default();
        let begun = plugin
            .pipeline
            .begin(&HostStore, &mut request, self.context_id, host::now());
        let Some((exchange, effects)) = begun else {
            increment(plugin.unmatched, 1);
            return Action::Continue;
        };
        self.exchange = Some(exchange);
        host::edit_headers(host::Map::Request, &effects.headers);
        match effects.verdict {
            Verdict::Continue => Action::Continue,
            Verdict::Pause => Action::Pause,
            Verdict::Reply(reply) => {
                host::send_reply(&reply);
                Action::Pause
            }
        }
    }

    /// The response's headers.
    pub fn on_response_headers(&mut self, end_of_stream: bool) -> Action {
        let (Some(plugin), Some(exchange)) = (&self.plugin, self.exchange.as_mut()) else {
            return Action::Continue;
        };
        let effects = plugin.pipeline.on_response_headers(
            &HostStore,
            exchange,
            &mut HostResponse,
            end_of_stream,
            host::now(),
        );
        host::edit_headers(host::Map::Response, &effects.headers);
        self.resume_other(effects.resume);
        Action::Continue
    }

    /// A piece of the response body; only its end matters.
    pub fn on_response_body(&mut self, end_of_stream: bool) -> Action {
        if end_of_stream {
            self.response_ended();
        }
        Action::Continue
    }

    /// The response's trailers end it.
    pub fn on_response_trailers(&mut self) -> Action {
        self.response_ended();
        Action::Continue
    }
}
