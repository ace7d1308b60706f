//! An item's quality score, 0..1, from what is known of it:
//!
//! ```text
//! quality = 0.30·tests + 0.25·usage + 0.20·rating + 0.15·lint + 0.10·freshness
//!   tests     = 1 if its tests pass, 0 if they fail, 0.5 when it has none
//!   usage     = min(1, ln(1 + uses) / ln(1 + 100))      100 uses count as full
//!   rating    = (stars + 3·5) / (ratings + 5) / 5        a Bayesian mean: five
//!               imagined 3-star votes, so one 5-star vote is not a perfect score
//!   lint      = max(0, 1 − violations / 5)               static constraint violations
//!   freshness = 0.5 ^ (age_days / 365)                   halves every year
//! ```
//!
//! Tests weigh most because they are evidence the code works; usage and
//! ratings are evidence people want it; lint and age break ties.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Inputs {
    /// `Some(true)` when its tests pass, `None` when it has none.
    pub tests_pass: Option<bool>,
    pub uses: u64,
    /// The sum of the stars (1..=5) of every rating, and their number.
    pub stars: u64,
    pub ratings: u64,
    pub lint_violations: u32,
    pub age_days: f64,
}

pub fn score(i: &Inputs) -> f64 {
    let tests = match i.tests_pass {
        Some(true) => 1.0,
        Some(false) => 0.0,
        None => 0.5,
    };
    let usage = ((1.0 + i.uses as f64).ln() / 101f64.ln()).min(1.0);
    let rating = (i.stars as f64 + 15.0) / (i.ratings as f64 + 5.0) / 5.0;
    let lint = (1.0 - f64::from(i.lint_violations) / 5.0).max(0.0);
    let freshness = 0.5f64.powf(i.age_days.max(0.0) / 365.0);
    let q = 0.30 * tests + 0.25 * usage + 0.20 * rating.min(1.0) + 0.15 * lint + 0.10 * freshness;
    (q * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_untested_item_and_a_proven_one() {
        // New: 0.3·0.5 + 0 + 0.2·0.6 + 0.15·1 + 0.1·1 = 0.52
        assert_eq!(score(&Inputs::default()), 0.52);
        let proven = Inputs {
            tests_pass: Some(true),
            uses: 100,
            stars: 50,
            ratings: 10,
            lint_violations: 0,
            age_days: 0.0,
        };
        // 0.3 + 0.25 + 0.2·(65/15/5) + 0.15 + 0.1
        assert_eq!(score(&proven), 0.973);
        let failing_old = Inputs {
            tests_pass: Some(false),
            lint_violations: 9,
            age_days: 730.0,
            ..Inputs::default()
        };
        // 0 + 0 + 0.12 + 0 + 0.1·0.25
        assert_eq!(score(&failing_old), 0.145);
    }
}
