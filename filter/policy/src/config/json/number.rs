//! Numbers as serde_json reads them, so that a configuration keeps its meaning: an integer
//! without a minus sign is a `u64`, a negative one an `i64`, and anything with a fraction or an
//! exponent (or an integer beyond 64 bits) a float computed serde_json's way
//! ([`float_value`]: the first 19-20 significant digits, multiplied or divided once by a power
//! of ten), which is not always the float nearest the text, but is what ballast always read.

use super::{Node, Parsed, Parser};
use crate::config::decimal::power_of_ten;
use crate::numeric::approx_f64;

impl Parser<'_> {
    pub(super) fn number(&mut self) -> Parsed<Node> {
        let start = self.index;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.index += 1;
        }
        let number = self.digits(!negative)?;
        let text = self.text.get(start..self.index).unwrap_or_default();
        Ok(match number {
            Number::Integer(0) if negative => Node::Float(-0.0, "-0".to_string()),
            Number::Integer(value) if negative => match i64::try_from(value) {
                Ok(value) => Node::Signed(-value),
                Err(_) if value == 1 << 63 => Node::Signed(i64::MIN),
                Err(_) => Node::Float(-approx_f64(value), String::from_utf8_lossy(text).into()),
            },
            Number::Integer(value) => Node::Unsigned(value),
            Number::Float(value) => Node::Float(value, String::from_utf8_lossy(text).into()),
        })
    }

    /// A number after its sign: serde_json's integer, or its float from the significand's
    /// first 19-20 digits and a power of ten.
    fn digits(&mut self, positive: bool) -> Parsed<Number> {
        let Some(first) = self.next() else {
            return Err(self.error("EOF while parsing a value"));
        };
        let mut significand: u64 = match first {
            b'0' => {
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(self.peek_error("invalid number"));
                }
                0
            }
            b'1'..=b'9' => u64::from(first - b'0'),
            _ => return Err(self.error("invalid number")),
        };
        // Integer digits that no longer fit the significand only count for the exponent.
        let mut exponent: i32 = 0;
        let mut overflowed = false;
        while let Some(digit @ b'0'..=b'9') = self.peek() {
            self.index += 1;
            match append_digit(significand, digit) {
                Some(more) if !overflowed => significand = more,
                _ => {
                    overflowed = true;
                    exponent = exponent.saturating_add(1);
                }
            }
        }
        match self.peek() {
            Some(b'.') => {
                self.index += 1;
                let mut fraction_digits = 0;
                let mut fraction_overflowed = false;
                while let Some(digit @ b'0'..=b'9') = self.peek() {
                    self.index += 1;
                    fraction_digits += 1;
                    match append_digit(significand, digit) {
                        Some(more) if !fraction_overflowed => {
                            significand = more;
                            exponent = exponent.saturating_sub(1);
                        }
                        _ => fraction_overflowed = true,
                    }
                }
                if fraction_digits == 0 {
                    return Err(match self.peek() {
                        Some(_) => self.peek_error("invalid number"),
                        None => self.peek_error("EOF while parsing a value"),
                    });
                }
                self.exponent_or_end(positive, significand, exponent)
            }
            Some(b'e' | b'E') => self.exponent_or_end(positive, significand, exponent),
            _ if overflowed => float_value(significand, exponent)
                .map(|value| Number::Float(signed(positive, value)))
                .ok_or_else(|| self.error("number out of range")),
            _ => Ok(Number::Integer(significand)),
        }
    }

    fn exponent_or_end(
        &mut self,
        positive: bool,
        significand: u64,
        exponent: i32,
    ) -> Parsed<Number> {
        let exponent = match self.peek() {
            Some(b'e' | b'E') => {
                self.index += 1;
                let positive_exponent = match self.peek() {
                    Some(b'+') => {
                        self.index += 1;
                        true
                    }
                    Some(b'-') => {
                        self.index += 1;
                        false
                    }
                    _ => true,
                };
                let mut value: i32 = match self.next() {
                    None => return Err(self.error("EOF while parsing a value")),
                    Some(digit @ b'0'..=b'9') => i32::from(digit - b'0'),
                    Some(_) => return Err(self.error("invalid number")),
                };
                while let Some(digit @ b'0'..=b'9') = self.peek() {
                    self.index += 1;
                    let Some(more) = value
                        .checked_mul(10)
                        .and_then(|v| v.checked_add(i32::from(digit - b'0')))
                    else {
                        // An exponent beyond 32 bits: infinity is an error, the rest is 0.
                        if significand != 0 && positive_exponent {
                            return Err(self.error("number out of range"));
                        }
                        while let Some(b'0'..=b'9') = self.peek() {
                            self.index += 1;
                        }
                        return Ok(Number::Float(signed(positive, 0.0)));
                    };
                    value = more;
                }
                if positive_exponent {
                    exponent.saturating_add(value)
                } else {
                    exponent.saturating_sub(value)
                }
            }
            _ => exponent,
        };
        float_value(significand, exponent)
            .map(|value| Number::Float(signed(positive, value)))
            .ok_or_else(|| self.error("number out of range"))
    }
}

enum Number {
    Integer(u64),
    Float(f64),
}

/// `significand × 10 + digit`, unless that exceeds `u64::MAX`.
fn append_digit(significand: u64, digit: u8) -> Option<u64> {
    significand
        .checked_mul(10)
        .and_then(|value| value.checked_add(u64::from(digit - b'0')))
}

fn signed(positive: bool, value: f64) -> f64 {
    if positive {
        value
    } else {
        -value
    }
}

/// serde_json's float: the significand as a float, multiplied or divided once by the power of
/// ten (in steps of 10^308 below 10^-308); `None` when it overflows.
fn float_value(significand: u64, exponent: i32) -> Option<f64> {
    let mut value = approx_f64(significand);
    let mut exponent = exponent;
    loop {
        let power = exponent.unsigned_abs();
        if power <= 308 {
            let scale = power_of_ten(i64::from(power));
            if exponent >= 0 {
                value *= scale;
                return value.is_finite().then_some(value);
            }
            return Some(value / scale);
        }
        if value == 0.0 {
            return Some(value);
        }
        if exponent >= 0 {
            return None;
        }
        value /= power_of_ten(308);
        exponent += 308;
    }
}
