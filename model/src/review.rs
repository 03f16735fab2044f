//! Product reviews: what a customer sends and what a product page reads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `POST /api/v1/products/{id}/reviews`. `rating` is a plain integer so an
/// out-of-range value is a validation error naming it, not a parse error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewRequest {
    pub rating: i64,
    pub title: String,
    pub body: String,
}

/// One review. `title` and `body` are plain text: render them escaped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    pub id: Uuid,
    pub rating: u8,
    pub title: String,
    pub body: String,
    /// The reviewer's first name only.
    pub author: String,
    pub created_at: String,
    pub updated_at: String,
    /// Always true today: only buyers with a delivered order may review.
    pub verified_buyer: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewPage {
    pub reviews: Vec<Review>,
    pub next_cursor: Option<Uuid>,
    /// "1" to "5" → how many reviews gave that rating (every key present).
    pub histogram: BTreeMap<String, u64>,
    pub rating_avg: f64,
    pub rating_count: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewSort {
    #[default]
    Newest,
    Helpful,
}

impl ReviewSort {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "newest" => Some(ReviewSort::Newest),
            "helpful" => Some(ReviewSort::Helpful),
            _ => None,
        }
    }
}
