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
    /// A flash sale's units: held for this customer at the sale price
    /// (`unit_cents`, which never changes) until `pay_by` (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flash_sale_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pay_by: Option<String>,
}
