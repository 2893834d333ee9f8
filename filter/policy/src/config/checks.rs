//! Checks of single values that several configuration sections share: durations in a range,
//! header names, methods, HTTP statuses.
//!
//! Why one module: a header name or a method is valid or not whichever section names it, with
//! the same message everywhere. HTTP's own rules are short enough to state here: header names
//! and methods are RFC 9110 tokens; ballast adds lower-case names as Envoy stores them, no
//! pseudo-headers, and methods in upper case (so a method is upper-case letters, always a
//! token). The `http` crate's `HeaderName` alone grew the .wasm by 15,000 bytes for a check
//! made once per configuration; its `Method` and `StatusCode` answered what the two lines
//! below do.

use super::error::Failure;
use super::error::Path;
use super::shape::Fields;
use crate::duration::{parse_duration, Nanos, MILLISECOND};

/// A request or response header name ballast may read or write.
pub(super) fn header_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".to_string());
    }
    if name.starts_with(':') {
        return Err(format!(
            "`{name}` is a pseudo-header: use match.authority, match.path or match.method"
        ));
    }
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!("`{name}` must be lower-case"));
    }
    // RFC 9110 §5.6.2 tchar.
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if !name.bytes().all(token) {
        return Err(format!("`{name}` is not a valid header name"));
    }
    Ok(())
}

/// An HTTP method, written in upper case as clients send the standard ones.
pub(super) fn method(method: &str) -> Result<(), String> {
    // Upper-case letters are token characters: every such word is an HTTP method.
    let upper_case = !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase());
    if !upper_case {
        return Err(format!(
            "`{method}` is not an upper-case HTTP method such as GET"
        ));
    }
    Ok(())
}

/// A status ballast may answer a refused request with: a client or server error.
pub(super) fn error_status(status: u16) -> Result<(), String> {
    if (400..=599).contains(&status) {
        Ok(())
    } else {
        Err("must be an HTTP error status (400..=599)".to_string())
    }
}

/// Duration field `name` of `raw`: `default` when absent, else parsed and within `min..=max`.
pub(super) fn duration(
    raw: Fields<'_>,
    name: &str,
    default: Nanos,
    path: &Path<'_>,
    min: Nanos,
    max: Nanos,
) -> Result<Nanos, Failure> {
    let Some(text) = raw.str(name) else {
        return Ok(default);
    };
    let path = path.field(name);
    let value = parse_duration(text).map_err(|r| path.error(r))?;
    if value < min || value > max {
        return Err(path.error(format!(
            "must be between {}ms and {}ms",
            min / MILLISECOND,
            max / MILLISECOND
        )));
    }
    Ok(value)
}

/// Number field `name` of `raw`: `default` when absent, else finite and within `min..=max`.
pub(super) fn number(
    raw: Fields<'_>,
    name: &str,
    default: f64,
    path: &Path<'_>,
    min: f64,
    max: f64,
) -> Result<f64, Failure> {
    let value = raw.f64(name).unwrap_or(default);
    if !value.is_finite() || value < min || value > max {
        return Err(path.field(name).error(format!(
            "must be between {} and {}",
            bound_text(min),
            bound_text(max)
        )));
    }
    Ok(value)
}

/// A bound as messages write it (`0.001`, `32`, `1000000000`). Bounds are constants with at
/// most three decimals, so thousandths render them exactly, and the .wasm needs no float
/// printer (8,000 bytes) for them.
fn bound_text(bound: f64) -> String {
    let thousandths = crate::numeric::saturating_u64((bound * 1000.0).round());
    let (whole, fraction) = (thousandths / 1000, thousandths % 1000);
    if fraction == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{fraction:03}")
            .trim_end_matches('0')
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::test;

    #[test]
    fn bounds_read_as_written() {
        for (bound, text) in [
            (0.0, "0"),
            (0.001, "0.001"),
            (0.01, "0.01"),
            (0.5, "0.5"),
            (0.99, "0.99"),
            (1.0, "1"),
            (32.0, "32"),
            (1e9, "1000000000"),
        ] {
            assert_eq!(bound_text(bound), text);
        }
    }
}
