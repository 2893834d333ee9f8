//! Validation of the `deadline` section. Defaults are documented in README.

use super::checks::{self, duration};
use super::error::Failure;
use super::error::Path;
use super::shape::Fields;
use crate::deadline::{wire, DeadlineConfig, Malformed};
use crate::duration::{Nanos, MILLISECOND, SECOND};

/// The longest deadline a configuration may name (`default`, `max`): a day.
const LONGEST: Nanos = 86_400 * SECOND;

pub(super) fn build(raw: Fields<'_>, path: &Path<'_>) -> Result<DeadlineConfig, Failure> {
    let defaults = DeadlineConfig::default();
    let optional = |field: &str| {
        raw.str(field)
            .map(|_| duration(raw, field, 0, path, MILLISECOND, LONGEST))
            .transpose()
    };
    let default = optional("default")?;
    let max = optional("max")?;
    if let (Some(default), Some(max)) = (default, max) {
        if default > max {
            return Err(path
                .field("default")
                .error(format!("must not exceed max ({}ms)", max / MILLISECOND)));
        }
    }
    let offset = duration(raw, "offset", defaults.offset, path, 0, 10 * SECOND)?;
    // Envoy reads a timeout of 0 ms as "none": the smallest budget forwarded is 1 ms.
    let min_useful = duration(
        raw,
        "min_useful",
        defaults.min_useful,
        path,
        MILLISECOND,
        60 * SECOND,
    )?;
    let max_clock_skew = duration(
        raw,
        "max_clock_skew",
        defaults.max_clock_skew,
        path,
        0,
        3_600 * SECOND,
    )?;
    let header = match raw.str("header") {
        None => defaults.header,
        Some(name) => {
            let header_path = path.field("header");
            checks::header_name(name).map_err(|reason| header_path.error(reason))?;
            if name == wire::GRPC_TIMEOUT || name.starts_with("x-envoy-") {
                return Err(header_path.error(format!(
                    "`{name}` is read with its own meaning; Envoy also removes x-envoy-* \
                     headers from peers it does not count as internal: choose another name"
                )));
            }
            name.to_string()
        }
    };
    let malformed = match raw.str("malformed") {
        None | Some("ignore") => Malformed::Ignore,
        Some("reject") => Malformed::Reject,
        Some(other) => {
            return Err(path
                .field("malformed")
                .error(format!("`{other}` is not one of: ignore, reject")))
        }
    };
    Ok(DeadlineConfig {
        default,
        max,
        offset,
        min_useful,
        header,
        max_clock_skew,
        malformed,
        believe_untrusted_peers: raw.bool("believe_untrusted_peers").unwrap_or(false),
    })
}
