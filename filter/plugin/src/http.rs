//! Per-request adapter: route the request, count it, apply the policy set's decisions.
//!
//! Why so little here: the policies themselves arrive in later releases as pure decisions from
//! `ballast-policy`; this context's job is to route once per request with the fewest host calls
//! and to carry the chosen policy set through the request's phases.

use crate::request::HostRequest;
use crate::root::Compiled;
use ballast_policy::config::PolicySetId;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::rc::Rc;

/// One HTTP stream.
pub struct BallastHttp {
    compiled: Option<Rc<Compiled>>,
    policy_set: Option<PolicySetId>,
}

impl BallastHttp {
    /// A stream governed by `compiled` (`None` only if the root was never configured).
    pub fn new(compiled: Option<Rc<Compiled>>) -> Self {
        Self {
            compiled,
            policy_set: None,
        }
    }
}

impl Context for BallastHttp {}

impl HttpContext for BallastHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(compiled) = &self.compiled else {
            return Action::Continue;
        };
        let routed = compiled.config.routes.route(&mut HostRequest::default());
        self.policy_set = routed.policy_set();
        match self
            .policy_set
            .and_then(|id| compiled.metrics.policy_sets.get(id.0))
        {
            Some(metrics) => metrics.requests_total.increment(),
            None => compiled.metrics.unmatched_total.increment(),
        }
        Action::Continue
    }
}
