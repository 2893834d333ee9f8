//! Validation of the `shedding` section. Defaults (what `"shedding": {}` means) are
//! [`SheddingConfig::default`], documented in README.

use super::checks::{self, duration, number};
use super::error::Failure;
use super::error::Path;
use super::priority::class_named;
use super::shape::Fields;
use super::PriorityClasses;
use crate::duration::{MILLISECOND, SECOND};
use crate::shedding::{
    AdmissionParams, RateLimitParams, RateScope, SheddingConfig, ThrottleParams,
};

/// The longest refusal body: one line for a person or a log, not a page.
const MAX_BODY: usize = 1024;

pub(super) fn build(
    raw: Fields<'_>,
    priority: &PriorityClasses,
    path: &Path<'_>,
) -> Result<SheddingConfig, Failure> {
    let defaults = SheddingConfig::default();
    let overload_status = raw
        .u16("overload_status")
        .unwrap_or(defaults.overload_status);
    checks::error_status(overload_status)
        .map_err(|reason| path.field("overload_status").error(reason))?;
    let rate_limit_status = raw
        .u16("rate_limit_status")
        .unwrap_or(defaults.rate_limit_status);
    checks::error_status(rate_limit_status)
        .map_err(|reason| path.field("rate_limit_status").error(reason))?;
    let retry_after = duration(
        raw,
        "retry_after",
        u64::from(defaults.retry_after_seconds) * SECOND,
        path,
        0,
        3600 * SECOND,
    )?;
    if let Some(body) = raw.str("body") {
        let body_path = path.field("body");
        if body.len() > MAX_BODY {
            return Err(body_path.error(format!("at most {MAX_BODY} bytes")));
        }
        // It is also the grpc-message: one line of visible ASCII and spaces.
        if body.chars().any(|c| !(c == ' ' || c.is_ascii_graphic())) {
            return Err(body_path.error("must be one line of printable ASCII"));
        }
    }
    let mut rate_limits = Vec::with_capacity(raw.named("rate_limits").len());
    let limits_path = path.field("rate_limits");
    for (class, limit) in raw.named("rate_limits") {
        let limit_path = limits_path.field(class);
        let id = class_named(priority, class, &limit_path)?;
        rate_limits.push((id, build_rate_limit(Fields::of(limit), &limit_path)?));
    }
    Ok(SheddingConfig {
        admission: build_admission(
            raw.object("admission"),
            defaults.admission,
            &path.field("admission"),
        )?,
        throttle: build_throttle(
            raw.object("throttle"),
            defaults.throttle,
            &path.field("throttle"),
        )?,
        rate_limits,
        overload_status,
        rate_limit_status,
        retry_after_seconds: u32::try_from(retry_after.div_ceil(SECOND)).unwrap_or(u32::MAX),
        body: raw.string("body"),
        propagate: raw.bool("propagate").unwrap_or(defaults.propagate),
    })
}

fn build_admission(
    raw: Option<Fields<'_>>,
    defaults: Option<AdmissionParams>,
    path: &Path<'_>,
) -> Result<Option<AdmissionParams>, Failure> {
    let raw = raw.unwrap_or_default();
    let (Some(defaults), true) = (defaults, raw.bool("enabled").unwrap_or(true)) else {
        return Ok(None);
    };
    let interval = duration(
        raw,
        "interval",
        defaults.interval,
        path,
        10 * MILLISECOND,
        60 * SECOND,
    )?;
    Ok(Some(AdmissionParams {
        target_queue_wait: duration(
            raw,
            "target_queue_wait",
            defaults.target_queue_wait,
            path,
            MILLISECOND,
            60 * SECOND,
        )?,
        interval,
        step: number(raw, "step", defaults.step, path, 0.01, 32.0)?,
    }))
}

fn build_throttle(
    raw: Option<Fields<'_>>,
    defaults: Option<ThrottleParams>,
    path: &Path<'_>,
) -> Result<Option<ThrottleParams>, Failure> {
    let raw = raw.unwrap_or_default();
    let (Some(defaults), true) = (defaults, raw.bool("enabled").unwrap_or(true)) else {
        return Ok(None);
    };
    Ok(Some(ThrottleParams {
        k: number(raw, "k", defaults.k, path, 1.0, 100.0)?,
        window: duration(
            raw,
            "window",
            defaults.window,
            path,
            100 * MILLISECOND,
            600 * SECOND,
        )?,
        min_rps: number(raw, "min_rps", defaults.min_rps, path, 0.0, 1e9)?,
        max_reject_probability: number(
            raw,
            "max_reject_probability",
            defaults.max_reject_probability,
            path,
            0.0,
            1.0,
        )?,
    }))
}

fn build_rate_limit(raw: Fields<'_>, path: &Path<'_>) -> Result<RateLimitParams, Failure> {
    // governor counts in whole nanoseconds per request: at most 1e9 per second.
    let per_second = number(raw, "per_second", 0.0, path, 0.001, 1e9)?;
    if per_second <= 0.0 {
        return Err(path.field("per_second").error("must be above 0"));
    }
    // max/min, not f64::clamp: its panic message would bring the float printer into the .wasm.
    #[allow(clippy::manual_clamp)]
    let default_burst =
        crate::numeric::saturating_u32((per_second / 10.0).ceil().max(1.0).min(1e6));
    let burst = raw.u32("burst").unwrap_or(default_burst);
    if burst == 0 || burst > 1_000_000 {
        return Err(path.field("burst").error("must be between 1 and 1000000"));
    }
    let scope = match raw.str("scope") {
        None | Some("shared") => RateScope::Shared,
        Some("worker") => RateScope::Worker,
        Some(other) => {
            return Err(path
                .field("scope")
                .error(format!("`{other}` is not one of: shared, worker")))
        }
    };
    Ok(RateLimitParams {
        per_second,
        burst,
        scope,
    })
}
