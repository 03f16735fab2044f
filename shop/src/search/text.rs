//! Text rules both backends share, so they agree on what matches and on
//! what ranks first. The behaviour, decided once for both:
//!
//! - Every query word must match (Meilisearch's `matchingStrategy: "all"`).
//!   A shopper who types "wool blanket" wants wool blankets, not everything
//!   woollen plus every blanket; Meilisearch's default strategy ("last")
//!   drops words from the end until something matches, which the embedded
//!   index never did.
//! - A word matches exactly, within its typo budget ([`typo_budget`]), and
//!   the last word also as a prefix (search as you type), in any searchable
//!   field (title, brand, category, variant values, description).
//! - Typos are counted as Meilisearch counts them ([`typos`]): a changed
//!   first letter costs two, so "speak" may find "sneakers" (one typo) but
//!   never "peak".
//! - Results rank by the typos they needed, fewest first: an exact word or
//!   an exact prefix ("speak" → "speakers") outranks a typo match ("speak" →
//!   "sneakers") whatever the fields or popularity say. Meilisearch gets this
//!   from its `typo` ranking rule; the Tantivy backend from score tiers.
//!   Within a tier each backend orders by its own relevance, then popularity.

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

/// The typos a match counts for: its edit distance (a transposition is one
/// edit), plus one more when the first letter differs, as Meilisearch counts
/// them (people rarely get the first letter wrong, and a different first
/// letter is usually a different word).
pub fn typos(edits: u8, first_letter_differs: bool) -> u8 {
    edits.saturating_add(first_letter_differs as u8)
}

/// Whether an indexed word `edits` away from the query `word` matches it.
pub fn forgiven(word: &str, indexed: &str, edits: u8) -> bool {
    let differs = word.chars().next() != indexed.chars().next();
    typos(edits, differs) <= typo_budget(word)
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
    fn a_changed_first_letter_counts_twice() {
        // "speak" → "sneak…": one substitution inside the word.
        assert!(forgiven("speak", "sneakers", 1));
        // "speak" → "peak…": one deletion, but of the first letter.
        assert!(!forgiven("speak", "peaks", 1));
        // Nine letters and up may lose the first letter (two typos)...
        assert!(forgiven("headphones", "eadphones", 1));
        // ...but not the first letter and one more.
        assert!(!forgiven("headphones", "eadphnes", 2));
        assert_eq!(typos(0, false), 0);
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
