//! Decimal numbers to `f64`, correctly rounded, without the standard library's float parser.
//!
//! Why: `str::parse::<f64>` brings a 10 KiB table of powers of five and 5 KiB of code into the
//! .wasm, for a handful of numbers read once per configuration. Here a decimal is compared
//! exactly (with small big integers) against candidate floats in a binary search over their
//! bit patterns: slow next to the standard parser, but it runs only while a configuration
//! loads, and it is small.
//!
//! Two users: `json.rs` needs the powers of ten (the correctly rounded constants serde_json
//! divides and multiplies by), and `concurrency.rs` reads percentiles (`p99.9`) with the
//! grammar and the result of `str::parse::<f64>` ([`parse_float`]).

use std::cmp::Ordering;

/// Significant digits kept; more can only decide a tie, which one extra non-zero digit
/// settles (a float's exact decimal value has at most 767 significant digits).
const MAX_DIGITS: usize = 800;

/// `digits × 10^exponent` (digits are ASCII `0`-`9`), rounded to the nearest `f64` (ties to
/// even): infinity when it is too large, 0 when too small.
pub(super) fn to_f64(digits: &[u8], exponent: i64) -> f64 {
    let digits = match digits.iter().position(|d| *d != b'0') {
        Some(first) => digits.get(first..).unwrap_or_default(),
        None => return 0.0,
    };
    let mut exponent = exponent;
    let mut kept: Vec<u8> = digits.iter().take(MAX_DIGITS).copied().collect();
    let dropped = digits.get(MAX_DIGITS..).unwrap_or_default();
    exponent = exponent.saturating_add(len_i64(dropped));
    if dropped.iter().any(|d| *d != b'0') {
        kept.push(b'1');
        exponent = exponent.saturating_sub(1);
    }
    // The value lies in [10^(magnitude-1), 10^magnitude).
    let magnitude = exponent.saturating_add(len_i64(&kept));
    if magnitude > 310 {
        return f64::INFINITY;
    }
    if magnitude < -325 {
        return 0.0;
    }
    let target = Target::new(&kept, exponent);
    // Points on a half-ulp grid: even `t` is the float with bits `t / 2`, odd `t` the midpoint
    // between two neighbours. Find the last point at or below the value.
    let (mut low, mut high) = (0u64, 2 * f64::INFINITY.to_bits());
    while low < high {
        let middle = low + (high - low).div_ceil(2);
        if target.compare(middle) == Ordering::Less {
            high = middle - 1;
        } else {
            low = middle;
        }
    }
    let below = low / 2;
    let bits = if low % 2 == 0 {
        below
    } else if target.compare(low) == Ordering::Greater || below % 2 == 1 {
        // Past the midpoint, or on it with an odd neighbour below: round up.
        below + 1
    } else {
        below
    };
    f64::from_bits(bits)
}

/// The correctly rounded `f64` of 10^`power`.
pub(super) fn power_of_ten(power: i64) -> f64 {
    to_f64(b"1", power)
}

/// Parses what `str::parse::<f64>` parses, with the same result: an optional sign, then
/// `inf`, `infinity` or `nan` in any case, or digits with an optional point (at least one
/// digit on either side) and an optional exponent (`e` or `E`, optional sign, digits).
pub(super) fn parse_float(text: &str) -> Option<f64> {
    let (negative, rest) = match text.as_bytes() {
        [b'-', ..] => (true, text.get(1..)?),
        [b'+', ..] => (false, text.get(1..)?),
        _ => (false, text),
    };
    let magnitude = match rest.to_ascii_lowercase().as_str() {
        "inf" | "infinity" => f64::INFINITY,
        "nan" => f64::NAN,
        _ => parse_decimal(rest.as_bytes())?,
    };
    Some(if negative { -magnitude } else { magnitude })
}

fn parse_decimal(text: &[u8]) -> Option<f64> {
    let (mantissa, exponent) = match text.iter().position(|b| matches!(b, b'e' | b'E')) {
        Some(at) => (text.get(..at)?, Some(text.get(at + 1..)?)),
        None => (text, None),
    };
    let (whole, fraction) = match mantissa.iter().position(|b| *b == b'.') {
        Some(at) => (mantissa.get(..at)?, mantissa.get(at + 1..)?),
        None => (mantissa, &b""[..]),
    };
    let all_digits = |part: &[u8]| part.iter().all(u8::is_ascii_digit);
    if whole.is_empty() && fraction.is_empty() || !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    let exponent = match exponent {
        None => 0,
        Some(text) => {
            let (negative, digits) = match text {
                [b'-', rest @ ..] => (true, rest),
                [b'+', rest @ ..] => (false, rest),
                _ => (false, text),
            };
            if digits.is_empty() || !all_digits(digits) {
                return None;
            }
            // Beyond a billion the value is 0 or infinite whatever the digits.
            let value = digits.iter().fold(0i64, |value, digit| {
                (value * 10 + i64::from(digit - b'0')).min(1_000_000_000)
            });
            if negative {
                -value
            } else {
                value
            }
        }
    };
    let digits: Vec<u8> = whole.iter().chain(fraction).copied().collect();
    Some(to_f64(&digits, exponent.saturating_sub(len_i64(fraction))))
}

fn len_i64(bytes: &[u8]) -> i64 {
    i64::try_from(bytes.len()).unwrap_or(i64::MAX)
}

/// The decimal being converted, scaled for exact comparisons with dyadic points.
struct Target {
    /// digits × 10^max(exponent, 0)
    scaled: Big,
    /// 10^max(-exponent, 0), by which the points are multiplied instead
    divisor: Big,
}

impl Target {
    fn new(digits: &[u8], exponent: i64) -> Self {
        let mut scaled = Big::default();
        for digit in digits {
            scaled.mul_add(10, u32::from(digit - b'0'));
        }
        let mut divisor = Big::from_u64(1);
        let power = exponent.unsigned_abs();
        let big_ten = if exponent >= 0 {
            &mut scaled
        } else {
            &mut divisor
        };
        for _ in 0..power / 9 {
            big_ten.mul_add(1_000_000_000, 0);
        }
        for _ in 0..power % 9 {
            big_ten.mul_add(10, 0);
        }
        Target { scaled, divisor }
    }

    /// How the decimal compares with grid point `t` (see [`to_f64`]).
    fn compare(&self, t: u64) -> Ordering {
        let bits = t / 2;
        let fraction = bits & ((1 << 52) - 1);
        let biased = bits >> 52;
        // value = mantissa × 2^power
        let (mut mantissa, mut power) = if biased == 0 {
            (fraction, -1074)
        } else {
            let biased = i64::try_from(biased).unwrap_or(0);
            (fraction | (1 << 52), biased - 1075)
        };
        if t % 2 == 1 {
            mantissa = 2 * mantissa + 1;
            power -= 1;
        }
        let mut left = self.scaled.clone();
        let mut right = self.divisor.mul_u64(mantissa);
        let shift = power.unsigned_abs();
        if power >= 0 {
            right.shift_left(shift);
        } else {
            left.shift_left(shift);
        }
        left.compare(&right)
    }
}

/// A non-negative integer in base 2^32, least significant limb first, no leading zero limbs.
#[derive(Clone, Default)]
struct Big {
    limbs: Vec<u32>,
}

impl Big {
    fn from_u64(value: u64) -> Self {
        let mut big = Big::default();
        big.limbs.push(low_32(value));
        big.limbs.push(low_32(value >> 32));
        big.trim();
        big
    }

    fn trim(&mut self) {
        while self.limbs.last() == Some(&0) {
            self.limbs.pop();
        }
    }

    /// self = self × factor + addend
    fn mul_add(&mut self, factor: u32, addend: u32) {
        let mut carry = u64::from(addend);
        for limb in &mut self.limbs {
            let product = u64::from(*limb) * u64::from(factor) + carry;
            *limb = low_32(product);
            carry = product >> 32;
        }
        if carry > 0 {
            self.limbs.push(low_32(carry));
        }
        self.trim();
    }

    fn mul_u64(&self, factor: u64) -> Big {
        let mut low = self.clone();
        low.mul_add(low_32(factor), 0);
        let mut high = self.clone();
        high.mul_add(low_32(factor >> 32), 0);
        high.shift_left(32);
        low.add(&high);
        low
    }

    fn add(&mut self, other: &Big) {
        let mut carry = 0u64;
        for index in 0..self.limbs.len().max(other.limbs.len()) {
            let sum = u64::from(self.limbs.get(index).copied().unwrap_or(0))
                + u64::from(other.limbs.get(index).copied().unwrap_or(0))
                + carry;
            match self.limbs.get_mut(index) {
                Some(limb) => *limb = low_32(sum),
                None => self.limbs.push(low_32(sum)),
            }
            carry = sum >> 32;
        }
        if carry > 0 {
            self.limbs.push(low_32(carry));
        }
    }

    fn shift_left(&mut self, bits: u64) {
        if self.limbs.is_empty() {
            return;
        }
        let whole = usize::try_from(bits / 32).unwrap_or(usize::MAX);
        let part = bits % 32;
        if part > 0 {
            let mut carry = 0u64;
            for limb in &mut self.limbs {
                let shifted = (u64::from(*limb) << part) | carry;
                *limb = low_32(shifted);
                carry = shifted >> 32;
            }
            if carry > 0 {
                self.limbs.push(low_32(carry));
            }
        }
        self.limbs.splice(0..0, std::iter::repeat_n(0, whole));
    }

    fn compare(&self, other: &Big) -> Ordering {
        self.limbs
            .len()
            .cmp(&other.limbs.len())
            .then_with(|| self.limbs.iter().rev().cmp(other.limbs.iter().rev()))
    }
}

fn low_32(value: u64) -> u32 {
    crate::numeric::low_bits(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::test;

    /// A small deterministic generator (xorshift), so the cases are the same on every run.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    fn same(text: &str) {
        let expected = text.parse::<f64>().ok();
        let found = parse_float(text);
        match (expected, found) {
            (Some(a), Some(b)) if a.is_nan() && b.is_nan() => {}
            (Some(a), Some(b)) => assert_eq!(a.to_bits(), b.to_bits(), "{text}: {a} vs {b}"),
            (a, b) => assert_eq!(a.is_some(), b.is_some(), "{text}: {a:?} vs {b:?}"),
        }
    }

    #[test]
    fn agrees_with_the_standard_parser_on_hard_cases() {
        let rows = [
            "0", "-0", "+0", "1", "0.1", "0.2", "0.3", "1.5", "99.9", "100", "100.0000000000001",
            "1e-320", "2.4703282292062327e-324", "2.4703282292062328e-324", "4.9e-324",
            "5e-324", "1e-400", "2.2250738585072011e-308", "2.2250738585072014e-308",
            "1.7976931348623157e308", "1.7976931348623158e308", "1.7976931348623159e308",
            "1e309", "9007199254740993", "9007199254740992.5", "0.1e1", "1.", ".5", ".", "e5",
            "1e", "1e+", "1e-", "+.5e-3", "inf", "-Infinity", "NaN", "nan1", "1_0", " 1", "1 ",
            "0x10", "1e999999999999999999999", "1e-999999999999999999999", "00000000000001.5",
            "123456789012345678901234567890e-10",
            "8.988465674311579538646525953945123668089884894711532863671504057886633790275048156635423866120376801056005693993569667882939488440720831124642371531973706218888394671243274263815110980062304705972654147604250288441907534117123144073695655527041361858167525534229314911997362296923985815241e307",
        ];
        for text in rows {
            same(text);
        }
    }

    #[test]
    fn agrees_with_the_standard_parser_on_random_decimals() {
        let mut state = 0x2545_f491_4f6c_dd1d;
        for _ in 0..3000 {
            let digits = 1 + next(&mut state) % 30;
            let mut text: String = (0..digits)
                .map(|_| char::from(b'0' + u8::try_from(next(&mut state) % 10).unwrap()))
                .collect();
            let point = usize::try_from(next(&mut state) % (digits + 1)).unwrap();
            text.insert(point, '.');
            let exponent = i64::try_from(next(&mut state) % 700).unwrap() - 350;
            same(&format!("{text}e{exponent}"));
            same(&text);
        }
    }

    #[test]
    fn powers_of_ten_are_the_constants() {
        for power in 0..=308 {
            let expected: f64 = format!("1e{power}").parse().unwrap();
            assert_eq!(
                power_of_ten(power).to_bits(),
                expected.to_bits(),
                "1e{power}"
            );
        }
    }
}
