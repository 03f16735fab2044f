//! Orders as the customer and the seller see them, and the status machine
//! both the shop and the database enforce.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An order's status. The happy path is PLACED → PAYMENT_PENDING →
/// CONFIRMED → SHIPPED → DELIVERED; an order may be CANCELLED before it
/// ships and REFUNDED after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Placed,
    PaymentPending,
    Confirmed,
    Shipped,
    Delivered,
    Cancelled,
    Refunded,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 7] = [
        OrderStatus::Placed,
        OrderStatus::PaymentPending,
        OrderStatus::Confirmed,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
        OrderStatus::Cancelled,
        OrderStatus::Refunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Placed => "PLACED",
            OrderStatus::PaymentPending => "PAYMENT_PENDING",
            OrderStatus::Confirmed => "CONFIRMED",
            OrderStatus::Shipped => "SHIPPED",
            OrderStatus::Delivered => "DELIVERED",
            OrderStatus::Cancelled => "CANCELLED",
            OrderStatus::Refunded => "REFUNDED",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// The transitions the design allows; the migration's
    /// `order_status_transitions` table lists the same pairs, and a test
    /// checks every pair against both.
    pub fn can_transition_to(self, next: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, next),
            (Placed, PaymentPending)
                | (Placed, Cancelled)
                | (PaymentPending, Confirmed)
                | (PaymentPending, Cancelled)
                | (Confirmed, Shipped)
                | (Confirmed, Cancelled)
                | (Shipped, Delivered)
                | (Shipped, Refunded)
                | (Delivered, Refunded)
        )
    }

    /// Whether the customer may still cancel (nothing has shipped).
    pub fn cancellable(self) -> bool {
        self.can_transition_to(OrderStatus::Cancelled)
    }

    /// No transition leads out of it.
    pub fn is_final(self) -> bool {
        Self::ALL.into_iter().all(|next| !self.can_transition_to(next))
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}


/// One line of an order, priced when the order was placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItem {
    pub sku_id: Uuid,
    pub product_id: Uuid,
    pub title: String,
    pub quantity: u32,
    pub unit_cents: i64,
}

/// One step of an order's status timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    pub status: OrderStatus,
    /// RFC 3339.
    pub at: String,
}

/// An order as its customer sees it (`GET /api/v1/orders/{order_id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    pub order_id: Uuid,
    pub status: OrderStatus,
    pub items: Vec<OrderItem>,
    pub total_cents: i64,
    pub currency: String,
    pub payment_id: Option<String>,
    pub status_history: Vec<StatusChange>,
    /// RFC 3339.
    pub created_at: String,
    /// One parcel per seller once it has shipped (added after the first
    /// clients, so absent means none).
    #[serde(default)]
    pub parcels: Vec<Parcel>,
}

/// How a shipped part of an order travels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parcel {
    pub carrier: String,
    pub tracking_number: String,
}

/// A line of "my orders".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSummary {
    pub order_id: Uuid,
    pub status: OrderStatus,
    pub total_cents: i64,
    pub currency: String,
    /// RFC 3339.
    pub created_at: String,
    pub item_count: i64,
}

/// `GET /api/v1/orders`: newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPage {
    pub orders: Vec<OrderSummary>,
    /// Pass back as `cursor` for older orders; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<Uuid>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_only_cancelled_and_refunded_are_final() {
        for status in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_value(status).unwrap(), serde_json::json!(status.as_str()));
        }
        let finals: Vec<_> = OrderStatus::ALL.into_iter().filter(|s| s.is_final()).collect();
        assert_eq!(finals, vec![OrderStatus::Cancelled, OrderStatus::Refunded]);
        assert!(!OrderStatus::Shipped.cancellable());
        assert!(OrderStatus::Confirmed.cancellable());
    }
}

/// One shipment as a seller sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShipmentView {
    pub seller_id: Uuid,
    pub state: String,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
}

/// An order as a seller sees it: only its own lines (all for an admin).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SellerOrder {
    pub order_id: Uuid,
    pub status: OrderStatus,
    pub currency: String,
    /// RFC 3339.
    pub created_at: String,
    pub items: Vec<OrderItem>,
    /// The shown lines' total.
    pub lines_total_cents: i64,
    pub shipments: Vec<ShipmentView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SellerOrderPage {
    pub orders: Vec<SellerOrder>,
    /// Pass back as `cursor` for older orders; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next_cursor: Option<Uuid>,
}
