use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A cart as shown: each line with its snapshot and current price.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CartView {
    pub lines: Vec<CartLine>,
    /// At current prices: what checkout would charge now.
    pub subtotal_cents: i64,
    pub currency: String,
}

impl CartView {
    pub fn item_count(&self) -> i64 {
        self.lines.iter().map(|l| l.quantity).sum()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    pub sku_id: Uuid,
    pub product_id: Uuid,
    pub title: String,
    pub quantity: i64,
    /// The price when the line was added.
    pub unit_cents: i64,
    pub current_unit_cents: i64,
    pub price_changed: bool,
}
