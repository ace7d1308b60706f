//! Credits as integers: an amount is a count of micro-credits, a price is
//! micro-credits per 1,000 tokens, and the margin is in basis points. Costs
//! round up to the next micro-credit, once, at the end.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Micro-credits in one credit.
pub const MICRO_PER_CREDIT: i64 = 1_000_000;

/// An amount of credits, in micro-credits (may be negative: a charge).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Micro(pub i64);

impl Micro {
    /// Whole credits.
    pub const fn credits(credits: i64) -> Self {
        Self(credits.saturating_mul(MICRO_PER_CREDIT))
    }

    /// Parses `"12"`, `"0.5"` or `"-3.000001"` (at most six decimals).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty() && fraction.is_empty()
            || fraction.len() > 6
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !fraction.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let fraction: i64 = format!("{fraction:0<6}").parse().ok()?;
        let micro = whole.checked_mul(MICRO_PER_CREDIT)?.checked_add(fraction)?;
        Some(Self(if negative { -micro } else { micro }))
    }
}

impl std::ops::Sub for Micro {
    type Output = Self;

    fn sub(self, other: Self) -> Self {
        Self(self.0.saturating_sub(other.0))
    }
}

impl fmt::Display for Micro {
    /// Credits with the decimals that are not zero: `12`, `0.5`, `-3.000001`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let whole = abs / MICRO_PER_CREDIT.unsigned_abs();
        let fraction = abs % MICRO_PER_CREDIT.unsigned_abs();
        if fraction == 0 {
            write!(f, "{sign}{whole}")
        } else {
            let digits = format!("{fraction:06}");
            write!(f, "{sign}{whole}.{}", digits.trim_end_matches('0'))
        }
    }
}

/// In JSON an amount is its exact decimal string of credits, so no client
/// ever reads money through a float.
impl Serialize for Micro {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Accepts whole credits as an integer (`5`) or a decimal string (`"0.5"`);
/// a float is refused.
impl<'de> Deserialize<'de> for Micro {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Whole(i64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Whole(credits) => credits
                .checked_mul(MICRO_PER_CREDIT)
                .map(Self)
                .ok_or_else(|| serde::de::Error::custom("amount out of range")),
            Raw::Text(text) => Self::parse(&text).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{text:?} is not an amount of credits (e.g. \"12\" or \"0.5\", at most 6 decimals)"
                ))
            }),
        }
    }
}

/// A model's price: credits per 1,000 input and output tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    pub input_per_1k: Micro,
    pub output_per_1k: Micro,
}

/// What `input` and `output` tokens cost at `price` with `margin_bp` basis
/// points on top (1,500 = 15 %): `ceil((in × p_in + out × p_out) / 1000 ×
/// (1 + margin))` micro-credits, computed exactly in 128-bit integers.
pub fn cost(price: Price, input: u64, output: u64, margin_bp: u32) -> Micro {
    let raw = i128::from(input) * i128::from(price.input_per_1k.0)
        + i128::from(output) * i128::from(price.output_per_1k.0);
    let scaled = raw * (10_000 + i128::from(margin_bp));
    let divisor = 1_000 * 10_000_i128;
    let rounded_up = (scaled + divisor - 1).div_euclid(divisor);
    Micro(i64::try_from(rounded_up).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_parse_and_print_exactly() {
        assert_eq!(Micro::parse("12"), Some(Micro(12_000_000)));
        assert_eq!(Micro::parse("0.5"), Some(Micro(500_000)));
        assert_eq!(Micro::parse("-3.000001"), Some(Micro(-3_000_001)));
        assert_eq!(Micro::parse(".25"), Some(Micro(250_000)));
        for bad in ["", "-", "1.2345678", "1e3", "abc", "1.-2", "0x10"] {
            assert_eq!(Micro::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Micro(12_000_000).to_string(), "12");
        assert_eq!(Micro(500_000).to_string(), "0.5");
        assert_eq!(Micro(-3_000_001).to_string(), "-3.000001");
        assert_eq!(
            serde_json::to_string(&Micro(1)).expect("json"),
            "\"0.000001\""
        );
        let from_int: Micro = serde_json::from_str("5").expect("int");
        assert_eq!(from_int, Micro::credits(5));
        assert!(
            serde_json::from_str::<Micro>("0.5").is_err(),
            "floats are refused"
        );
    }

    #[test]
    fn cost_is_tokens_times_price_times_margin_rounded_up() {
        // GPT-4o: 25 credits per 1K tokens both ways, 15 % margin.
        let price = Price {
            input_per_1k: Micro::credits(25),
            output_per_1k: Micro::credits(25),
        };
        // (1000 + 500) × 25 / 1000 = 37.5 credits; × 1.15 = 43.125.
        assert_eq!(cost(price, 1_000, 500, 1_500), Micro(43_125_000));
        // 1 token of Gemini Flash: 1/1000 credit × 1.15 = 1150 µcr exactly.
        let flash = Price {
            input_per_1k: Micro::credits(1),
            output_per_1k: Micro::credits(1),
        };
        assert_eq!(cost(flash, 1, 0, 1_500), Micro(1_150));
        // A price that does not divide evenly rounds up once.
        let odd = Price {
            input_per_1k: Micro(7),
            output_per_1k: Micro(0),
        };
        assert_eq!(cost(odd, 1, 0, 0), Micro(1));
        assert_eq!(cost(odd, 0, 0, 1_500), Micro(0));
    }
}
