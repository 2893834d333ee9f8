//! Conversions between floats and integers, each named for what it does.
//!
//! Why: the limit algorithms compute in `f64` and store integers. Rust's `as` between floats and
//! integers saturates (NaN becomes 0), which is what every caller here wants, but a bare `as`
//! reads like an accident and hides a truncating integer cast among the intended ones. Filter
//! code denies the numeric-cast lints; the few casts it needs live here, with their meaning.

/// `x` rounded toward zero, clamped to `0..=u32::MAX` (NaN → 0).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub fn saturating_u32(x: f64) -> u32 {
    x as u32
}

/// `x` rounded toward zero, clamped to `0..=u64::MAX` (NaN → 0).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub fn saturating_u64(x: f64) -> u64 {
    x as u64
}

/// `x` rounded toward zero, clamped to `0..=usize::MAX` (NaN → 0).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub fn saturating_usize(x: f64) -> usize {
    x as usize
}

/// `x` as a float, exact up to 2^53 (for nanoseconds: 104 days).
#[allow(clippy::cast_precision_loss)]
pub fn approx_f64(x: u64) -> f64 {
    x as f64
}

/// `x` as a float, exact up to ±2^53.
#[allow(clippy::cast_precision_loss)]
pub fn approx_f64_signed(x: i64) -> f64 {
    x as f64
}

/// The low 32 bits of `x`.
#[allow(clippy::cast_possible_truncation)]
pub fn low_bits(x: u64) -> u32 {
    x as u32
}
