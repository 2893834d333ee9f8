//! From wire form to validated model, with a JSON path on every error.
//!
//! Why one walk: each check knows the path it is at, so errors read like
//! `routes[2].match.path.prefix: must start with "/"`. Shape errors (types, unknown fields)
//! come first, from checking the document against its shape (`shape.rs`); everything else is
//! checked here, reading fields the check has vouched for.

use super::checks;
use super::error::Failure;
use super::error::Path;
use super::json::{self, Node};
use super::shape::{self, Fields};
use super::{Config, PolicySet, PolicySetId, PriorityClasses};
use crate::routing::{
    compile_anchored, HeaderCondition, HeaderMatch, Route, RouteMatch, RouteTable, StringMatch,
    StringMatcher,
};
use crate::trust::{Cidr, TrustedPeers, DEFAULT_TRUSTED_CIDRS};

/// Default metric prefix.
pub(crate) const DEFAULT_METRIC_PREFIX: &str = "ballast";

const MAX_NAME_LEN: usize = 64;

pub(super) fn parse(bytes: &[u8]) -> Result<Config, Failure> {
    let text = std::str::from_utf8(bytes)
        .map_err(|err| Path::ROOT.error(format!("configuration is not UTF-8: {err}")))?;
    if text.trim().is_empty() {
        return build(Fields::of(&Node::Null));
    }
    if !text.trim_start().starts_with('{') {
        return Err(Path::ROOT.error("the configuration must be a JSON object"));
    }
    let document = json::parse(text)?;
    shape::check(&document, &shape::CONFIG, &Path::ROOT)?;
    build(Fields::of(&document))
}

fn build(raw: Fields<'_>) -> Result<Config, Failure> {
    let root = Path::ROOT;
    let metric_prefix = match raw.str("metric_prefix") {
        None => DEFAULT_METRIC_PREFIX,
        Some(prefix) => {
            check_metric_prefix(prefix)
                .map_err(|reason| root.field("metric_prefix").error(reason))?;
            prefix
        }
    };
    let priority = super::priority::build(raw.object("priority"), &root.field("priority"))?;
    let trusted_peers =
        build_trusted_peers(raw.object("trusted_peers"), &root.field("trusted_peers"))?;

    let sets_path = root.field("policy_sets");
    let sets = raw.named("policy_sets");
    let mut policy_sets = Vec::with_capacity(sets.len());
    for (name, set) in sets {
        let set_path = sets_path.field(name);
        check_name(name).map_err(|reason| set_path.error(reason))?;
        policy_sets.push(build_policy_set(
            name,
            Fields::of(set),
            &priority,
            &set_path,
        )?);
    }
    let resolve = |name: &str, path: &Path<'_>| -> Result<PolicySetId, Failure> {
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
    let rules = raw.list("routes");
    let mut routes = Vec::with_capacity(rules.len());
    for (index, route) in rules.iter().enumerate() {
        let route_path = routes_path.index(index);
        routes.push(build_route(
            Fields::of(route),
            &route_path,
            &priority,
            &resolve,
        )?);
    }
    let default = match raw.str("default_policy_set") {
        None => None,
        Some(name) => Some(resolve(name, &root.field("default_policy_set"))?),
    };
    Ok(Config {
        metric_prefix: metric_prefix.to_string(),
        dry_run: raw.bool("dry_run").unwrap_or(false),
        priority,
        trusted_peers,
        policy_sets,
        routes: RouteTable { routes, default },
    })
}

fn build_policy_set(
    name: &str,
    raw: Fields<'_>,
    priority: &PriorityClasses,
    path: &Path<'_>,
) -> Result<PolicySet, Failure> {
    let retry_budget = raw
        .object("retry_budget")
        .map(|b| super::retry::build_budget(b, &path.field("retry_budget")))
        .transpose()?;
    let retry = match raw.object("retry") {
        Some(r) => Some(super::retry::build_rules(r, &path.field("retry"))?),
        None => retry_budget.map(|_| crate::retry::RetryRules::default()),
    };
    let shedding = raw.object("shedding");
    let concurrency = raw
        .object("concurrency")
        .map(|c| super::concurrency::build(c, shedding.is_some(), &path.field("concurrency")))
        .transpose()?;
    let deadline = raw
        .object("deadline")
        .map(|d| super::deadline::build(d, &path.field("deadline")))
        .transpose()?;
    let shedding = shedding
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
        name: name.to_string(),
        retry_budget,
        retry,
        concurrency,
        deadline,
        shedding,
    })
}

fn build_trusted_peers(raw: Option<Fields<'_>>, path: &Path<'_>) -> Result<TrustedPeers, Failure> {
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
    let mut source_cidrs = Vec::new();
    for (index, text) in raw.list("source_cidrs").iter().enumerate() {
        let text = shape::text(text);
        source_cidrs
            .push(Cidr::parse(text).map_err(|reason| cidrs_path.index(index).error(reason))?);
    }
    let principals_path = path.field("principals");
    let mut principals = Vec::new();
    for (index, matcher) in raw.list("principals").iter().enumerate() {
        let matcher_path = principals_path.index(index);
        principals.push(build_string_match(
            Fields::of(matcher),
            &matcher_path,
            Subject::Any,
        )?);
    }
    Ok(TrustedPeers {
        source_cidrs,
        principals,
    })
}

fn build_route(
    raw: Fields<'_>,
    path: &Path<'_>,
    priority: &PriorityClasses,
    resolve: &dyn Fn(&str, &Path<'_>) -> Result<PolicySetId, Failure>,
) -> Result<Route, Failure> {
    let name = raw.str("name");
    if let Some(name) = name {
        check_name(name).map_err(|reason| path.field("name").error(reason))?;
    }
    let match_path = path.field("match");
    let m = raw.object("match").unwrap_or(Fields::of(&Node::Null));
    let string_match = |field: &'static str, subject: Subject| {
        m.object(field)
            .map(|raw| build_string_match(raw, &match_path.field(field), subject))
            .transpose()
    };
    let authority = string_match("authority", Subject::Authority)?;
    let request_path = string_match("path", Subject::Path)?;
    let methods = match m.node("method") {
        None => Vec::new(),
        Some(value) => build_methods(value, &match_path.field("method"))?,
    };
    let headers_path = match_path.field("headers");
    let mut headers = Vec::new();
    for (index, header) in m.list("headers").iter().enumerate() {
        headers.push(build_header_match(
            Fields::of(header),
            &headers_path.index(index),
        )?);
    }
    let route_name = string_match("route_name", Subject::Any)?;
    let policy_set = resolve(
        raw.str("policy_set").unwrap_or_default(),
        &path.field("policy_set"),
    )?;
    let class = raw
        .str("priority")
        .map(|name| super::priority::class_named(priority, name, &path.field("priority")))
        .transpose()?;
    Ok(Route {
        name: name.map(str::to_owned),
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

fn build_methods(value: &Node, path: &Path<'_>) -> Result<Vec<String>, Failure> {
    let items: Vec<(Path<'_>, &Node)> = match value {
        Node::Str(_) => vec![(*path, value)],
        Node::Array(items) => {
            if items.is_empty() {
                return Err(path.error("must list at least one method (omit it to match any)"));
            }
            items
                .iter()
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
        checks::method(method).map_err(|r| item_path.error(r))?;
        methods.push(method.clone());
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

/// The string operators, in the order messages list them.
const OPERATORS: [&str; 5] = ["exact", "prefix", "suffix", "contains", "regex"];

fn build_string_match(
    raw: Fields<'_>,
    path: &Path<'_>,
    subject: Subject,
) -> Result<StringMatch, Failure> {
    // Host names are case-insensitive: authority conditions always ignore case.
    let ignore_case = raw.bool("ignore_case").unwrap_or(false) || subject == Subject::Authority;
    compile_operator(raw, ignore_case, path, subject)
}

fn compile_operator(
    raw: Fields<'_>,
    ignore_case: bool,
    path: &Path<'_>,
    subject: Subject,
) -> Result<StringMatch, Failure> {
    let given: Vec<(&'static str, &str)> = OPERATORS
        .iter()
        .filter_map(|name| raw.str(name).map(|pattern| (*name, pattern)))
        .collect();
    let [(operator, pattern)] = given.as_slice() else {
        let found: Vec<&str> = given.iter().map(|(name, _)| *name).collect();
        let found = if found.is_empty() {
            "none".to_string()
        } else {
            found.join(", ")
        };
        return Err(path.error(format!(
            "needs exactly one of exact, prefix, suffix, contains, regex (found: {found})"
        )));
    };
    let (operator, pattern) = (*operator, *pattern);
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
    let pattern_owned = pattern.to_string();
    let matcher = match operator {
        "exact" => StringMatcher::Exact(pattern_owned),
        "prefix" => StringMatcher::Prefix(pattern_owned),
        "suffix" => StringMatcher::Suffix(pattern_owned),
        "contains" => StringMatcher::Contains(pattern_owned),
        _ => StringMatcher::Regex(
            compile_anchored(pattern, ignore_case).map_err(|reason| op_path.error(reason))?,
        ),
    };
    Ok(StringMatch {
        matcher,
        ignore_case,
    })
}

fn build_header_match(raw: Fields<'_>, path: &Path<'_>) -> Result<HeaderMatch, Failure> {
    let name = raw.str("name").unwrap_or_default();
    checks::header_name(name).map_err(|reason| path.field("name").error(reason))?;
    let has_operator = OPERATORS.iter().any(|operator| raw.str(operator).is_some());
    let invert = raw.bool("invert").unwrap_or(false);
    let condition = match (raw.bool("present"), has_operator) {
        (Some(_), true) => {
            return Err(path.error("`present` cannot be combined with a value operator"));
        }
        (Some(_), false) if invert => {
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
            matcher: compile_operator(
                raw,
                raw.bool("ignore_case").unwrap_or(false),
                path,
                Subject::Any,
            )?,
            invert,
        },
    };
    Ok(HeaderMatch {
        name: name.to_string(),
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
