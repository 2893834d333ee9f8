//! From wire form to validated model, with a JSON path on every error.
//!
//! Why one walk: each check knows the path it is at, so errors read like
//! `routes[2].match.path.prefix: must start with "/"`. Shape errors (types, unknown fields)
//! come from reading the wire form (`decode.rs`); everything else is checked here.

use super::checks;
use super::decode::Decode;
use super::error::Path;
use super::json::{self, Node};
use super::raw::{
    RawConfig, RawHeaderMatch, RawPolicySet, RawRoute, RawStringMatch, RawTrustedPeers,
};
use super::{Config, ConfigError, PolicySet, PolicySetId, PriorityClasses};
use crate::routing::{
    compile_anchored, HeaderCondition, HeaderMatch, Route, RouteMatch, RouteTable, StringMatch,
    StringMatcher,
};
use crate::trust::{Cidr, TrustedPeers, DEFAULT_TRUSTED_CIDRS};

/// Default metric prefix.
pub(crate) const DEFAULT_METRIC_PREFIX: &str = "ballast";

const MAX_NAME_LEN: usize = 64;

pub(super) fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|err| ConfigError::new("", format!("configuration is not UTF-8: {err}")))?;
    if text.trim().is_empty() {
        return build(RawConfig::default());
    }
    if !text.trim_start().starts_with('{') {
        return Err(ConfigError::new(
            "",
            "the configuration must be a JSON object",
        ));
    }
    let raw = RawConfig::decode(json::parse(text)?, &Path::ROOT)?;
    build(raw)
}

fn build(raw: RawConfig) -> Result<Config, ConfigError> {
    let root = Path::ROOT;
    let metric_prefix = match raw.metric_prefix {
        None => DEFAULT_METRIC_PREFIX.to_string(),
        Some(prefix) => {
            check_metric_prefix(&prefix)
                .map_err(|reason| root.field("metric_prefix").error(reason))?;
            prefix
        }
    };
    let priority = super::priority::build(raw.priority, &root.field("priority"))?;
    let trusted_peers = build_trusted_peers(raw.trusted_peers, &root.field("trusted_peers"))?;

    let sets_path = root.field("policy_sets");
    let mut policy_sets = Vec::with_capacity(raw.policy_sets.0.len());
    for (name, set) in raw.policy_sets.0 {
        let set_path = sets_path.field(&name);
        check_name(&name).map_err(|reason| set_path.error(reason))?;
        policy_sets.push(build_policy_set(name.clone(), set, &priority, &set_path)?);
    }
    let resolve = |name: &str, path: &Path<'_>| -> Result<PolicySetId, ConfigError> {
        policy_sets
            .iter()
            .position(|set| set.name == name)
            .map(PolicySetId)
            .ok_or_else(|| {
                let known: Vec<&str> = policy_sets.iter().map(|s| s.name.as_str()).collect();
                let known = if known.is_empty() {
                    "none are defined".to_string()
                } else {
                    format!("defined: {}", known.join(", "))
                };
                path.error(format!("unknown policy set `{name}` ({known})"))
            })
    };

    let routes_path = root.field("routes");
    let mut routes = Vec::with_capacity(raw.routes.len());
    for (index, route) in raw.routes.into_iter().enumerate() {
        let route_path = routes_path.index(index);
        routes.push(build_route(route, &route_path, &priority, &resolve)?);
    }
    let default = match raw.default_policy_set {
        None => None,
        Some(name) => Some(resolve(&name, &root.field("default_policy_set"))?),
    };
    Ok(Config {
        metric_prefix,
        dry_run: raw.dry_run,
        priority,
        trusted_peers,
        policy_sets,
        routes: RouteTable { routes, default },
    })
}

fn build_policy_set(
    name: String,
    raw: RawPolicySet,
    priority: &PriorityClasses,
    path: &Path<'_>,
) -> Result<PolicySet, ConfigError> {
    let retry_budget = raw
        .retry_budget
        .map(|b| super::retry::build_budget(b, &path.field("retry_budget")))
        .transpose()?;
    let retry = match raw.retry {
        Some(r) => Some(super::retry::build_rules(r, &path.field("retry"))?),
        None => retry_budget.map(|_| crate::retry::RetryRules::default()),
    };
    let beside_shedding = raw.shedding.is_some();
    let concurrency = raw
        .concurrency
        .map(|c| super::concurrency::build(c, beside_shedding, &path.field("concurrency")))
        .transpose()?;
    let deadline = raw
        .deadline
        .map(|d| super::deadline::build(d, &path.field("deadline")))
        .transpose()?;
    let shedding = raw
        .shedding
        .map(|raw| super::shedding::build(raw, priority, &path.field("shedding")))
        .transpose()?;
    if deadline.is_some()
        && concurrency
            .as_ref()
            .is_some_and(|c| !c.queue.respect_deadlines)
    {
        return Err(path
            .field("concurrency")
            .field("queue")
            .field("respect_deadlines")
            .error(
                "must be true when the policy set has a deadline section: a request must not \
                 wait past its deadline and then be forwarded with none left",
            ));
    }
    Ok(PolicySet {
        name,
        retry_budget,
        retry,
        concurrency,
        deadline,
        shedding,
    })
}

fn build_trusted_peers(
    raw: Option<RawTrustedPeers>,
    path: &Path<'_>,
) -> Result<TrustedPeers, ConfigError> {
    let Some(raw) = raw else {
        return Ok(TrustedPeers {
            source_cidrs: DEFAULT_TRUSTED_CIDRS
                .iter()
                .filter_map(|c| Cidr::parse(c).ok())
                .collect(),
            principals: Vec::new(),
        });
    };
    let cidrs_path = path.field("source_cidrs");
    let source_cidrs = raw
        .source_cidrs
        .iter()
        .enumerate()
        .map(|(index, text)| {
            Cidr::parse(text).map_err(|reason| cidrs_path.index(index).error(reason))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let principals_path = path.field("principals");
    let principals = raw
        .principals
        .into_iter()
        .enumerate()
        .map(|(index, matcher)| {
            build_string_match(matcher, &principals_path.index(index), Subject::Any)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(TrustedPeers {
        source_cidrs,
        principals,
    })
}

fn build_route(
    raw: RawRoute,
    path: &Path<'_>,
    priority: &PriorityClasses,
    resolve: &dyn Fn(&str, &Path<'_>) -> Result<PolicySetId, ConfigError>,
) -> Result<Route, ConfigError> {
    if let Some(name) = &raw.name {
        check_name(name).map_err(|reason| path.field("name").error(reason))?;
    }
    let match_path = path.field("match");
    let m = raw.matcher;
    let authority = m
        .authority
        .map(|raw| build_string_match(raw, &match_path.field("authority"), Subject::Authority))
        .transpose()?;
    let request_path = m
        .path
        .map(|raw| build_string_match(raw, &match_path.field("path"), Subject::Path))
        .transpose()?;
    let methods = match m.method {
        None => Vec::new(),
        Some(value) => build_methods(value, &match_path.field("method"))?,
    };
    let headers_path = match_path.field("headers");
    let headers = m
        .headers
        .into_iter()
        .enumerate()
        .map(|(index, raw)| build_header_match(raw, &headers_path.index(index)))
        .collect::<Result<Vec<_>, _>>()?;
    let route_name = m
        .route_name
        .map(|raw| build_string_match(raw, &match_path.field("route_name"), Subject::Any))
        .transpose()?;
    let policy_set = resolve(&raw.policy_set, &path.field("policy_set"))?;
    let class = raw
        .priority
        .map(|name| super::priority::class_named(priority, &name, &path.field("priority")))
        .transpose()?;
    Ok(Route {
        name: raw.name,
        priority: class,
        conditions: RouteMatch {
            authority,
            path: request_path,
            methods,
            headers,
            route_name,
        },
        policy_set,
    })
}

fn build_methods(value: Node, path: &Path<'_>) -> Result<Vec<String>, ConfigError> {
    let items: Vec<(Path<'_>, Node)> = match value {
        Node::Str(_) => vec![(*path, value)],
        Node::Array(items) => {
            if items.is_empty() {
                return Err(path.error("must list at least one method (omit it to match any)"));
            }
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| (path.index(i), v))
                .collect()
        }
        _ => return Err(path.error("must be a method name or a list of method names")),
    };
    let mut methods = Vec::with_capacity(items.len());
    for (item_path, item) in items {
        let Node::Str(method) = item else {
            return Err(item_path.error("must be a string"));
        };
        checks::method(&method).map_err(|r| item_path.error(r))?;
        methods.push(method);
    }
    Ok(methods)
}

/// What a string condition is applied to; decides extra rules and case handling.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Subject {
    Path,
    Authority,
    Any,
}

fn build_string_match(
    raw: RawStringMatch,
    path: &Path<'_>,
    subject: Subject,
) -> Result<StringMatch, ConfigError> {
    let operators = [
        ("exact", raw.exact),
        ("prefix", raw.prefix),
        ("suffix", raw.suffix),
        ("contains", raw.contains),
        ("regex", raw.regex),
    ];
    // Host names are case-insensitive: authority conditions always ignore case.
    let ignore_case = raw.ignore_case || subject == Subject::Authority;
    compile_operator(operators, ignore_case, path, subject)
}

fn compile_operator(
    operators: [(&'static str, Option<String>); 5],
    ignore_case: bool,
    path: &Path<'_>,
    subject: Subject,
) -> Result<StringMatch, ConfigError> {
    let given: Vec<&'static str> = operators
        .iter()
        .filter(|(_, value)| value.is_some())
        .map(|(name, _)| *name)
        .collect();
    if given.len() != 1 {
        let found = if given.is_empty() {
            "none".to_string()
        } else {
            given.join(", ")
        };
        return Err(path.error(format!(
            "needs exactly one of exact, prefix, suffix, contains, regex (found: {found})"
        )));
    }
    let Some((operator, Some(pattern))) = operators.into_iter().find(|(_, v)| v.is_some()) else {
        return Err(path.error("needs exactly one operator"));
    };
    let op_path = path.field(operator);
    if subject == Subject::Path
        && matches!(operator, "exact" | "prefix")
        && !pattern.starts_with('/')
    {
        return Err(op_path.error("must start with \"/\""));
    }
    if operator != "exact" && operator != "regex" && pattern.is_empty() {
        return Err(op_path.error("must not be empty"));
    }
    let matcher = match operator {
        "exact" => StringMatcher::Exact(pattern),
        "prefix" => StringMatcher::Prefix(pattern),
        "suffix" => StringMatcher::Suffix(pattern),
        "contains" => StringMatcher::Contains(pattern),
        _ => StringMatcher::Regex(
            compile_anchored(&pattern, ignore_case).map_err(|reason| op_path.error(reason))?,
        ),
    };
    Ok(StringMatch {
        matcher,
        ignore_case,
    })
}

fn build_header_match(raw: RawHeaderMatch, path: &Path<'_>) -> Result<HeaderMatch, ConfigError> {
    checks::header_name(&raw.name).map_err(|reason| path.field("name").error(reason))?;
    let operators = [
        ("exact", raw.exact),
        ("prefix", raw.prefix),
        ("suffix", raw.suffix),
        ("contains", raw.contains),
        ("regex", raw.regex),
    ];
    let has_operator = operators.iter().any(|(_, v)| v.is_some());
    let condition = match (raw.present, has_operator) {
        (Some(_), true) => {
            return Err(path.error("`present` cannot be combined with a value operator"));
        }
        (Some(_), false) if raw.invert => {
            return Err(path
                .field("invert")
                .error("has no effect with `present`; use `present: false`"));
        }
        (Some(present), false) => HeaderCondition::Present(present),
        (None, false) => {
            return Err(
                path.error("needs `present` or one of exact, prefix, suffix, contains, regex")
            );
        }
        (None, true) => HeaderCondition::Value {
            matcher: compile_operator(operators, raw.ignore_case, path, Subject::Any)?,
            invert: raw.invert,
        },
    };
    Ok(HeaderMatch {
        name: raw.name,
        condition,
    })
}

pub(super) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!("name must be 1 to {MAX_NAME_LEN} characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(format!(
            "name `{name}` may contain only letters, digits, `_` and `-` (it becomes a metric tag)"
        ));
    }
    Ok(())
}

fn check_metric_prefix(prefix: &str) -> Result<(), String> {
    let mut bytes = prefix.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if !first_ok
        || prefix.len() > MAX_NAME_LEN
        || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(format!(
            "`{prefix}` must match [A-Za-z_][A-Za-z0-9_]* (at most {MAX_NAME_LEN} characters), as Prometheus requires"
        ));
    }
    Ok(())
}
