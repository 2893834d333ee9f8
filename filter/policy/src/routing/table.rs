//! The ordered rule list: first match wins, else the default policy set.

use super::{HeaderMatch, RequestView, StringMatch};
use crate::config::PolicySetId;

/// Conditions of one rule; every present condition must hold.
#[derive(Debug, Clone, Default)]
pub struct RouteMatch {
    /// Host part of the authority (compared case-insensitively).
    pub authority: Option<StringMatch>,
    /// Path without query string.
    pub path: Option<StringMatch>,
    /// Allowed methods (upper-case); empty means any.
    pub methods: Vec<String>,
    /// Header conditions.
    pub headers: Vec<HeaderMatch>,
    /// Envoy's `xds.route_name`.
    pub route_name: Option<StringMatch>,
}

/// One rule of the table.
#[derive(Debug, Clone)]
pub struct Route {
    /// Optional name, for logs.
    pub name: Option<String>,
    /// When the rule applies.
    pub conditions: RouteMatch,
    /// The policy set it selects.
    pub policy_set: PolicySetId,
    /// The class of the requests it matches (`None`: the priority header or the default).
    pub priority: Option<crate::config::PriorityId>,
}

/// Result of routing a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routed {
    /// Rule `rule` matched and selected `policy_set`.
    Rule {
        /// Index of the matching rule in `routes`.
        rule: usize,
        /// The selected policy set.
        policy_set: PolicySetId,
    },
    /// No rule matched; the default policy set applies.
    Default(PolicySetId),
    /// No rule matched and there is no default: the request passes untouched.
    Unmatched,
}

impl Routed {
    /// The policy set that applies, if any.
    pub fn policy_set(self) -> Option<PolicySetId> {
        match self {
            Routed::Rule { policy_set, .. } | Routed::Default(policy_set) => Some(policy_set),
            Routed::Unmatched => None,
        }
    }
}

/// Ordered routing rules plus the default.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    /// Rules in the order they are tried.
    pub routes: Vec<Route>,
    /// Policy set for requests no rule matches.
    pub default: Option<PolicySetId>,
}

impl RouteTable {
    /// The class a routed request gets from its rule (`routes[].priority`), if any.
    pub fn priority_of(&self, routed: Routed) -> Option<crate::config::PriorityId> {
        match routed {
            Routed::Rule { rule, .. } => self.routes.get(rule).and_then(|route| route.priority),
            Routed::Default(_) | Routed::Unmatched => None,
        }
    }

    /// Routes a request, reading only the attributes the tried rules need.
    pub fn route(&self, request: &mut dyn RequestView) -> Routed {
        for (rule, route) in self.routes.iter().enumerate() {
            if route.conditions.matches(request) {
                return Routed::Rule {
                    rule,
                    policy_set: route.policy_set,
                };
            }
        }
        match self.default {
            Some(policy_set) => Routed::Default(policy_set),
            None => Routed::Unmatched,
        }
    }
}

impl RouteMatch {
    /// Evaluates the conditions cheapest-first; stops at the first that fails.
    pub fn matches(&self, request: &mut dyn RequestView) -> bool {
        if !self.methods.is_empty() {
            let method_ok = request
                .method()
                .is_some_and(|method| self.methods.iter().any(|m| m == method));
            if !method_ok {
                return false;
            }
        }
        if let Some(path) = &self.path {
            if !request.path().is_some_and(|value| path.matches(value)) {
                return false;
            }
        }
        if let Some(authority) = &self.authority {
            if !request
                .authority()
                .is_some_and(|value| authority.matches(value))
            {
                return false;
            }
        }
        if let Some(route_name) = &self.route_name {
            if !request
                .route_name()
                .is_some_and(|value| route_name.matches(value))
            {
                return false;
            }
        }
        self.headers
            .iter()
            .all(|header| header.matches(request.header(&header.name)))
    }
}
