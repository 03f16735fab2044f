//! A seller's stock, as the seller API and the desktop app show it.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One SKU as a seller manages it (the API's `{sku_id, product_id, title,
/// stock_count, reserved, available}` and a breakdown).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SkuStockRow {
    pub sku_id: Uuid,
    pub product_id: Uuid,
    pub title: String,
    /// The variant's attributes, e.g. "Black / 42".
    pub variant: String,
    pub stock_count: i64,
    /// Units not available to shoppers: in orders not yet shipped plus live holds.
    pub reserved: i64,
    pub available: i64,
    /// Of `reserved`: confirmed into orders.
    pub in_orders: i64,
    /// Of `reserved`: in live reservations (carts at checkout).
    pub held: i64,
    pub shards: i32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SkuStockPage {
    pub items: Vec<SkuStockRow>,
    /// Pass back as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next_cursor: Option<Uuid>,
}

/// One counter that did not match PostgreSQL minus live reservations.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Drift {
    pub sku_id: Uuid,
    /// What Redis said.
    pub counter: i64,
    /// What it should have said, and now says.
    pub expected: i64,
    /// counter - expected: positive means Redis would have oversold.
    pub drift: i64,
}

/// A SKU whose Redis `held` did not match its live reservation records
/// (a record lost or corrupted): rewritten, with its counter.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HeldDrift {
    pub sku_id: Uuid,
    /// What `inv:{sku}:held` said.
    pub held: i64,
    /// The units in live records, and what it says now.
    pub expected: i64,
    /// held - expected: positive means units were held by no one.
    pub drift: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// SKUs in PostgreSQL.
    pub checked: u64,
    /// SKUs whose counter is loaded (the others load lazily when needed).
    pub loaded: u64,
    pub corrected: Vec<Drift>,
    pub held_corrected: Vec<HeldDrift>,
    pub took_ms: u64,
}
