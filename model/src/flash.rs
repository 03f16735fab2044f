//! Flash sales on the wire: the seller's API, the customer's page and buy
//! button, and the live figures the seller desktop app streams. Times are
//! RFC 3339 strings, money integer minor units.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `POST /api/v1/seller/flash-sales`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewFlashSale {
    pub sku_id: Uuid,
    pub quantity: i64,
    pub price_cents: i64,
    pub starts_at: String,
    pub ends_at: String,
    pub per_user_limit: i64,
}

/// Where a sale is in its life, as the seller sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlashSaleStatus {
    Scheduled,
    Live,
    /// Over; orders in their payment window may still complete.
    Closing,
    Ended,
    Cancelled,
}

impl FlashSaleStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FlashSaleStatus::Scheduled => "scheduled",
            FlashSaleStatus::Live => "live",
            FlashSaleStatus::Closing => "closing",
            FlashSaleStatus::Ended => "ended",
            FlashSaleStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Scheduled, Self::Live, Self::Closing, Self::Ended, Self::Cancelled].into_iter().find(|s| s.as_str() == raw)
    }
}

/// The final figures kept when a sale ends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlashReport {
    /// Units in orders from the sale (cancelled orders not counted).
    pub sold: i64,
    /// Holds handed to waiting customers when units came back.
    pub promoted: i64,
    /// Holds whose payment window ran out.
    pub abandoned: i64,
    /// Buys refused: over the limit, or nothing left and nothing to wait for.
    pub rejected: i64,
    /// Units returned to normal stock at the end.
    pub returned: i64,
    /// Units in orders beyond the sale's quantity, from PostgreSQL: 0.
    pub oversold: i64,
    /// SKU counters reconciliation corrected at the end.
    pub drift_corrected: i64,
}

/// A sale as its seller sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlashSale {
    pub id: Uuid,
    pub sku_id: Uuid,
    pub product_id: Uuid,
    pub title: String,
    pub quantity: i64,
    pub price_cents: i64,
    pub regular_price_cents: i64,
    pub currency: String,
    pub starts_at: String,
    pub ends_at: String,
    pub per_user_limit: i64,
    pub status: FlashSaleStatus,
    /// Units not yet held or sold (the live figure once pre-loaded).
    pub remaining: i64,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preloaded_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<FlashReport>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlashSalePage {
    pub items: Vec<FlashSale>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<Uuid>,
}

/// `GET /api/v1/flash-sales/{id}` status, as API.md names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PublicFlashStatus {
    Scheduled,
    Live,
    SoldOut,
    Ended,
    Cancelled,
}

/// The public page's data (no personal figure: cacheable for a second).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicFlashSale {
    pub id: Uuid,
    pub sku_id: Uuid,
    pub product_id: Uuid,
    pub title: String,
    pub price_cents: i64,
    pub regular_price_cents: i64,
    pub currency: String,
    pub starts_at: String,
    pub ends_at: String,
    pub per_user_limit: i64,
    pub remaining: i64,
    pub status: PublicFlashStatus,
    /// The server's clock when this was made, for a countdown that does
    /// not trust the visitor's.
    pub server_time: String,
}

/// `POST /api/v1/flash-sales/{id}/buy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuyRequest {
    pub quantity: i64,
}

/// What a customer has in a sale: `GET /api/v1/flash-sales/{id}/me`, and
/// the body of a buy's 200 (`reserved`) or 202 (`waiting`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum MyFlashState {
    /// Units held for you, in your cart at the sale price until `pay_by`.
    Reserved {
        quantity: i64,
        price_cents: i64,
        pay_by: String,
        /// True when the hold came from the waitlist.
        promoted: bool,
    },
    /// In line: `position` 1 is next. Poll this until it changes; after
    /// `wait_until` the answer is `sold_out`.
    Waiting { position: i64, wait_until: String },
    /// Your wait ended without a unit, or nothing is left to wait for.
    SoldOut,
    /// Units from this sale are in your orders (and nothing is held or waiting).
    Purchased { quantity: i64 },
    /// Nothing held, bought or waited for.
    None,
}

/// One event of `GET /api/v1/seller/flash-sales/{id}/live` (Server-Sent
/// Events; the event id resumes the stream with `Last-Event-ID`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlashLive {
    pub sale_id: Uuid,
    pub status: FlashSaleStatus,
    /// When the figures were taken (RFC 3339).
    pub at: String,
    pub remaining: i64,
    pub reservations_per_s: f64,
    pub orders_per_s: f64,
    pub rejections_per_s: f64,
    pub waitlist: i64,
    pub promotions: i64,
    pub reserve_p50_ms: f64,
    pub reserve_p99_ms: f64,
    /// Units sold so far (orders, PostgreSQL).
    pub sold: i64,
    /// Units in orders beyond the quantity, from PostgreSQL: 0.
    pub oversold: i64,
}
