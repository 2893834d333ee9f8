//! Validation of the `retry_budget` and `retry` sections.

use super::checks;
use super::error::Failure;
use super::error::Path;
use super::json::Node;
use super::shape::Fields;
use crate::duration::{parse_duration, SECOND};
use crate::retry::{BudgetParams, RetryRules};

/// Defaults, documented in README.
pub(crate) const DEFAULT_RATIO: f64 = 0.2;
pub(crate) const DEFAULT_MIN_RETRIES_PER_SECOND: u32 = 10;
pub(crate) const DEFAULT_TTL_SECONDS: u32 = 10;
const MAX_RATIO: f64 = 10.0;
const MAX_MIN_RETRIES_PER_SECOND: u32 = 100_000;
const MAX_RETRIES_PER_REQUEST: u32 = 10;

pub(super) fn build_budget(raw: Fields<'_>, path: &Path<'_>) -> Result<BudgetParams, Failure> {
    let ratio = checks::number(raw, "ratio", DEFAULT_RATIO, path, 0.0, MAX_RATIO)?;
    let min = raw
        .u32("min_retries_per_second")
        .unwrap_or(DEFAULT_MIN_RETRIES_PER_SECOND);
    if min > MAX_MIN_RETRIES_PER_SECOND {
        return Err(path
            .field("min_retries_per_second")
            .error(format!("must be at most {MAX_MIN_RETRIES_PER_SECOND}")));
    }
    let ttl_seconds = match raw.str("ttl") {
        None => DEFAULT_TTL_SECONDS,
        Some(text) => {
            let ttl_path = path.field("ttl");
            let nanos = parse_duration(text).map_err(|reason| ttl_path.error(reason))?;
            if nanos % SECOND != 0 || !(1..=60).contains(&(nanos / SECOND)) {
                return Err(ttl_path.error("must be whole seconds from 1s to 60s"));
            }
            u32::try_from(nanos / SECOND).unwrap_or(DEFAULT_TTL_SECONDS)
        }
    };
    Ok(BudgetParams {
        ratio_ppm: crate::numeric::saturating_u32((ratio * 1_000_000.0).round()),
        min_retries_per_second: min,
        ttl_seconds,
    })
}

pub(super) fn build_rules(raw: Fields<'_>, path: &Path<'_>) -> Result<RetryRules, Failure> {
    let mut rules = RetryRules::default();
    if let Some(value) = raw.node("idempotent_methods") {
        let methods_path = path.field("idempotent_methods");
        let Node::Array(items) = value else {
            return Err(methods_path.error("must be a list of method names"));
        };
        let mut methods = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let item_path = methods_path.index(index);
            let Node::Str(method) = item else {
                return Err(item_path.error("must be a string"));
            };
            checks::method(method).map_err(|r| item_path.error(r))?;
            if methods.contains(method) {
                return Err(item_path.error(format!("duplicate method `{method}`")));
            }
            methods.push(method.clone());
        }
        rules.idempotent_methods = methods;
    }
    if let Some(header) = raw.str("idempotency_key_header") {
        checks::header_name(header).map_err(|r| path.field("idempotency_key_header").error(r))?;
        rules.idempotency_key_header = Some(header.to_string());
    }
    if let Some(max) = raw.u32("max_retries_per_request") {
        if max > MAX_RETRIES_PER_REQUEST {
            return Err(path
                .field("max_retries_per_request")
                .error(format!("must be at most {MAX_RETRIES_PER_REQUEST}")));
        }
        rules.max_retries_per_request = max;
    }
    if let Some(header) = raw.str("explain_header") {
        let header_path = path.field("explain_header");
        checks::header_name(header).map_err(|r| header_path.error(r))?;
        let reserved = [
            "content-length",
            "transfer-encoding",
            "connection",
            "te",
            "upgrade",
            "host",
        ];
        if reserved.contains(&header) || header.starts_with("x-envoy-") {
            return Err(
                header_path.error(format!("`{header}` is reserved: pick a header of your own"))
            );
        }
        rules.explain_header = Some(header.to_string());
    }
    if let Some(believe) = raw.bool("idempotency_key_from_untrusted") {
        rules.idempotency_key_from_untrusted = believe;
    }
    if let Some(mark) = raw.bool("mark_final_failures") {
        rules.chain.mark_final_failures = mark;
    }
    if let Some(strip) = raw.bool("strip_marks_to_untrusted") {
        rules.chain.strip_marks_to_untrusted = strip;
    }
    Ok(rules)
}
