//! Ranking quality against a judged query set: nDCG@k with graded gains
//! (the first relevant id of a judgement is the best answer, gain 2; the
//! others gain 1) and recall@k.

/// The gain of `key` for a judgement listing `relevant` best first.
fn gain(relevant: &[String], key: &str) -> f64 {
    match relevant.iter().position(|r| r == key) {
        Some(0) => 2.0,
        Some(_) => 1.0,
        None => 0.0,
    }
}

fn dcg(gains: impl Iterator<Item = f64>) -> f64 {
    gains
        .enumerate()
        .map(|(i, g)| (2f64.powf(g) - 1.0) / ((i as f64) + 2.0).log2())
        .sum()
}

/// nDCG@k of `ranked` (best first): 1.0 when the best answer leads and
/// every other relevant item follows within k.
pub fn ndcg_at(k: usize, ranked: &[String], relevant: &[String]) -> f64 {
    let actual = dcg(ranked.iter().take(k).map(|key| gain(relevant, key)));
    let ideal = dcg(relevant.iter().take(k).map(|key| gain(relevant, key)));
    if ideal == 0.0 { 0.0 } else { actual / ideal }
}

/// The share of `relevant` found in the first `k` of `ranked`.
pub fn recall_at(k: usize, ranked: &[String], relevant: &[String]) -> f64 {
    if relevant.is_empty() {
        return 0.0;
    }
    let found = relevant
        .iter()
        .filter(|r| ranked.iter().take(k).any(|key| key == *r))
        .count();
    found as f64 / relevant.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn perfect_partial_and_empty_rankings() {
        let relevant = ids(&["a", "b"]);
        assert!((ndcg_at(10, &ids(&["a", "b", "x"]), &relevant) - 1.0).abs() < 1e-12);
        // b first, a second: below 1, above having only b.
        let swapped = ndcg_at(10, &ids(&["b", "a"]), &relevant);
        let only_b = ndcg_at(10, &ids(&["x", "b"]), &relevant);
        assert!(swapped < 1.0 && only_b < swapped, "{swapped} {only_b}");
        assert_eq!(ndcg_at(10, &ids(&["x", "y"]), &relevant), 0.0);
        assert_eq!(recall_at(10, &ids(&["x", "b"]), &relevant), 0.5);
        assert_eq!(recall_at(1, &ids(&["x", "b"]), &relevant), 0.0);
        // By hand: DCG = (2^2-1)/log2(2) + (2^1-1)/log2(3) for the ideal.
        let ideal = 3.0 + 1.0 / 3f64.log2();
        let got = (1.0 / 2f64.log2() + 3.0 / 3f64.log2()) / ideal;
        assert!((swapped - got).abs() < 1e-12);
    }
}
