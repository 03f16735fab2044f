//! Text rules both backends share, so they agree on what matches.

use model::query::PRICE_BUCKET_EDGES;

/// Typos forgiven per word, as Meilisearch does by default: none below five
/// characters, one from five, two from nine.
pub fn typo_budget(word: &str) -> u8 {
    match word.chars().count() {
        0..=4 => 0,
        5..=8 => 1,
        _ => 2,
    }
}

/// The price facet bucket (index into the edges) a price falls in.
pub fn price_bucket(cents: i64) -> usize {
    PRICE_BUCKET_EDGES.iter().rposition(|edge| cents >= *edge).unwrap_or(0)
}

/// FNV-1a: a stable 64-bit code for a facet value (brand name, category slug).
pub fn code(value: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in value.as_bytes() {
        hash ^= *b as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // 0 means "none" in the index's columns.
    hash.max(1)
}

pub fn price_buckets(counts: &[u64; PRICE_BUCKET_EDGES.len()]) -> Vec<model::PriceBucket> {
    PRICE_BUCKET_EDGES
        .iter()
        .enumerate()
        .map(|(i, min)| model::PriceBucket {
            min_cents: *min,
            max_cents: PRICE_BUCKET_EDGES.get(i + 1).copied(),
            count: counts[i],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typo_budgets_follow_word_length() {
        assert_eq!(typo_budget("mat"), 0);
        assert_eq!(typo_budget("iphnoe"), 1);
        assert_eq!(typo_budget("headphnoes"), 2);
    }

    #[test]
    fn prices_fall_in_half_open_buckets() {
        assert_eq!(price_bucket(0), 0);
        assert_eq!(price_bucket(2_499), 0);
        assert_eq!(price_bucket(2_500), 1);
        assert_eq!(price_bucket(99_999), 5);
        assert_eq!(price_bucket(10_000_000), 6);
    }
}
