//! Orders: the tables of the design (orders, order_items,
//! order_status_history) and the status machine. Every change goes through
//! a caller's transaction and writes, in that same transaction, its history
//! row and its outbox event, so no committed change can lack either.

use model::order::{OrderItem, OrderPage, OrderStatus, OrderSummary, OrderView, StatusChange};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::events;
use crate::{Error, Result, Shop};

/// An order about to be written (checkout fills it in).
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub id: Uuid,
    pub user_id: Uuid,
    pub idempotency_key: String,
    pub total_cents: i64,
    pub currency: String,
    pub payment_id: Option<String>,
    pub reservation_token: Uuid,
    pub shipping_address: serde_json::Value,
    pub items: Vec<OrderItem>,
}

pub struct Orders<'a> {
    shop: &'a Shop,
}

impl<'a> Orders<'a> {
    pub(crate) fn new(shop: &'a Shop) -> Self {
        Self { shop }
    }

    /// Writes a new order that went through `steps` (e.g. PLACED,
    /// PAYMENT_PENDING, CONFIRMED once its payment is authorized): the order
    /// in the last status, one history row per step, and an `order.placed`
    /// event, all in `conn`'s transaction.
    pub async fn insert(conn: &mut PgConnection, order: &NewOrder, steps: &[OrderStatus]) -> Result<()> {
        let Some(status) = steps.last().copied() else {
            return Err(Error::internal("an order needs at least one status"));
        };
        if steps[0] != OrderStatus::Placed || steps.windows(2).any(|w| !w[0].can_transition_to(w[1])) {
            return Err(Error::internal(format!("not a path through the order statuses: {steps:?}")));
        }
        sqlx::query(
            "INSERT INTO orders (id, user_id, idempotency_key, status, total_cents, currency, payment_id, reservation_token, shipping_address) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(order.id)
        .bind(order.user_id)
        .bind(&order.idempotency_key)
        .bind(status.as_str())
        .bind(order.total_cents)
        .bind(&order.currency)
        .bind(&order.payment_id)
        .bind(order.reservation_token)
        .bind(&order.shipping_address)
        .execute(&mut *conn)
        .await?;
        for item in &order.items {
            sqlx::query("INSERT INTO order_items (order_id, sku_id, product_id, title, quantity, unit_cents) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(order.id)
                .bind(item.sku_id)
                .bind(item.product_id)
                .bind(&item.title)
                .bind(item.quantity as i32)
                .bind(item.unit_cents)
                .execute(&mut *conn)
                .await?;
        }
        let mut from: Option<OrderStatus> = None;
        for step in steps {
            history(conn, order.id, from, *step).await?;
            from = Some(*step);
        }
        events::record(
            conn,
            "order",
            order.id,
            "order.placed",
            json!({
                "order_id": order.id, "user_id": order.user_id, "status": status,
                "total_cents": order.total_cents, "currency": order.currency, "payment_id": order.payment_id,
                "items": order.items,
            }),
        )
        .await?;
        Ok(())
    }

    /// Moves an order to `to` inside `conn`'s transaction, with its history
    /// row and an event named for where it went (`order.confirmed`,
    /// `order.cancelled`, ...: see [`event_type`]). Refused (409
    /// `illegal_transition`) when the status machine does not allow it.
    /// Returns the status it left.
    pub async fn transition(conn: &mut PgConnection, order_id: Uuid, to: OrderStatus) -> Result<OrderStatus> {
        Self::transition_with(conn, order_id, to, serde_json::Map::new()).await
    }

    /// [`Orders::transition`] with more in the event's payload, e.g. the
    /// carrier and tracking number of `order.shipped`, so consumers
    /// (notifications) need not read our tables.
    pub async fn transition_with(
        conn: &mut PgConnection,
        order_id: Uuid,
        to: OrderStatus,
        extra: serde_json::Map<String, serde_json::Value>,
    ) -> Result<OrderStatus> {
        let current: Option<String> = sqlx::query_scalar("SELECT status FROM orders WHERE id = $1 FOR UPDATE")
            .bind(order_id)
            .fetch_optional(&mut *conn)
            .await?;
        let from = current
            .as_deref()
            .and_then(OrderStatus::parse)
            .ok_or(Error::NotFound { what: "order" })?;
        if !from.can_transition_to(to) {
            return Err(Error::Conflict {
                code: "illegal_transition",
                message: format!("an order that is {from} cannot become {to}"),
                details: Some(json!({ "status": from, "requested": to })),
            });
        }
        sqlx::query("UPDATE orders SET status = $2 WHERE id = $1").bind(order_id).bind(to.as_str()).execute(&mut *conn).await?;
        history(conn, order_id, Some(from), to).await?;
        let mut payload = extra;
        payload.insert("order_id".into(), json!(order_id));
        payload.insert("from".into(), json!(from));
        payload.insert("to".into(), json!(to));
        events::record(conn, "order", order_id, event_type(to), serde_json::Value::Object(payload)).await?;
        Ok(from)
    }

    /// Whether `user` has a DELIVERED order containing `product`: what makes
    /// a verified buyer (reviews). Read on the caller's connection so the
    /// check and the write it guards share one transaction.
    pub async fn delivered_to(conn: &mut PgConnection, user: Uuid, product: Uuid) -> Result<bool> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM orders o JOIN order_items i ON i.order_id = o.id \
             WHERE o.user_id = $1 AND i.product_id = $2 AND o.status = 'DELIVERED')",
        )
        .bind(user)
        .bind(product)
        .fetch_one(&mut *conn)
        .await?)
    }

    /// `user`'s orders, newest first, keyset-paged by id (UUIDv7 ids are
    /// time-ordered, so id order is placement order).
    pub async fn list(&self, user: Uuid, limit: i64, before: Option<Uuid>) -> Result<OrderPage> {
        let limit = limit.clamp(1, 100);
        let rows: Vec<(Uuid, String, i64, String, String, i64)> = sqlx::query_as(
            "SELECT o.id, o.status, o.total_cents, o.currency, \
                    to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
                    (SELECT coalesce(sum(quantity), 0) FROM order_items i WHERE i.order_id = o.id)::bigint \
             FROM orders o WHERE o.user_id = $1 AND ($2::uuid IS NULL OR o.id < $2) ORDER BY o.id DESC LIMIT $3",
        )
        .bind(user)
        .bind(before)
        .bind(limit + 1)
        .fetch_all(&self.shop.db)
        .await?;
        let more = rows.len() as i64 > limit;
        let orders: Vec<OrderSummary> = rows
            .into_iter()
            .take(limit as usize)
            .filter_map(|(order_id, status, total_cents, currency, created_at, item_count)| {
                Some(OrderSummary { order_id, status: OrderStatus::parse(&status)?, total_cents, currency, created_at, item_count })
            })
            .collect();
        let next_cursor = if more { orders.last().map(|o| o.order_id) } else { None };
        Ok(OrderPage { orders, next_cursor })
    }

    /// One of `user`'s orders; someone else's is "not found", never "forbidden".
    pub async fn get(&self, user: Uuid, order_id: Uuid) -> Result<OrderView> {
        let row: Option<(String, i64, String, Option<String>, String)> = sqlx::query_as(
            "SELECT status, total_cents, currency, payment_id, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') \
             FROM orders WHERE id = $1 AND user_id = $2",
        )
        .bind(order_id)
        .bind(user)
        .fetch_optional(&self.shop.db)
        .await?;
        let (status, total_cents, currency, payment_id, created_at) = row.ok_or(Error::NotFound { what: "order" })?;
        let items: Vec<(Uuid, Uuid, String, i32, i64)> = sqlx::query_as(
            "SELECT sku_id, product_id, title, quantity, unit_cents FROM order_items WHERE order_id = $1 ORDER BY title, sku_id",
        )
        .bind(order_id)
        .fetch_all(&self.shop.db)
        .await?;
        let history: Vec<(String, String)> = sqlx::query_as(
            "SELECT to_status, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM order_status_history WHERE order_id = $1 ORDER BY id",
        )
        .bind(order_id)
        .fetch_all(&self.shop.db)
        .await?;
        Ok(OrderView {
            order_id,
            status: OrderStatus::parse(&status).ok_or_else(|| Error::internal(format!("unknown order status {status}")))?,
            items: items
                .into_iter()
                .map(|(sku_id, product_id, title, quantity, unit_cents)| OrderItem { sku_id, product_id, title, quantity: quantity as u32, unit_cents })
                .collect(),
            total_cents,
            currency,
            payment_id,
            status_history: history
                .into_iter()
                .filter_map(|(status, at)| OrderStatus::parse(&status).map(|status| StatusChange { status, at }))
                .collect(),
            created_at,
            parcels: self.tracking(order_id).await?,
        })
    }
}

/// Who an order goes to, for services that act on its events (whose
/// payloads carry the order id, not the customer).
#[derive(Debug, Clone)]
pub struct Recipient {
    pub user_id: Uuid,
    pub shipping_address: serde_json::Value,
}

/// How a shipped order travels, when fulfilment has recorded it: the
/// customer's order page shows the same record.
pub type Tracking = model::Parcel;

impl Orders<'_> {
    /// The customer and shipping address of any order (no ownership check:
    /// for the shop's own workers, never for a request).
    pub async fn recipient(&self, order_id: Uuid) -> Result<Option<Recipient>> {
        let row: Option<(Uuid, serde_json::Value)> = sqlx::query_as("SELECT user_id, shipping_address FROM orders WHERE id = $1")
            .bind(order_id)
            .fetch_optional(&self.shop.db)
            .await?;
        Ok(row.map(|(user_id, shipping_address)| Recipient { user_id, shipping_address }))
    }

    /// The products an order contains (no ownership check: for the shop's
    /// own workers, e.g. the search indexer re-indexing what a cancel put
    /// back in stock; `order.cancelled` carries only the order id).
    pub async fn product_ids(&self, order_id: Uuid) -> Result<Vec<Uuid>> {
        Ok(sqlx::query_scalar("SELECT DISTINCT product_id FROM order_items WHERE order_id = $1 ORDER BY product_id")
            .bind(order_id)
            .fetch_all(&self.shop.db)
            .await?)
    }

    /// The carrier and tracking number of each parcel of a shipped order
    /// (one per seller), from fulfilment's `shipments` records. A database
    /// without that table or those columns (fulfilment is being built
    /// alongside) answers "none known yet" rather than failing the caller.
    pub async fn tracking(&self, order_id: Uuid) -> Result<Vec<Tracking>> {
        let rows: std::result::Result<Vec<(String, String)>, sqlx::Error> = sqlx::query_as(
            "SELECT carrier::text, tracking_number::text FROM shipments \
             WHERE order_id = $1 AND carrier IS NOT NULL AND tracking_number IS NOT NULL ORDER BY tracking_number",
        )
        .bind(order_id)
        .fetch_all(&self.shop.db)
        .await;
        match rows {
            Ok(rows) => Ok(rows.into_iter().map(|(carrier, tracking_number)| Tracking { carrier, tracking_number }).collect()),
            // 42P01 undefined_table, 42703 undefined_column.
            Err(sqlx::Error::Database(db)) if matches!(db.code().as_deref(), Some("42P01" | "42703")) => Ok(Vec::new()),
            Err(err) => Err(err.into()),
        }
    }
}

/// The event a move to `to` publishes. Consumers subscribe to what happened
/// (`order.confirmed`, `order.cancelled`), so the name says it; the payload
/// keeps `from` and `to` for those who want both. Rows written before these
/// names existed say `order.status_changed` and still go to order-events.
pub fn event_type(to: OrderStatus) -> &'static str {
    match to {
        OrderStatus::Placed => "order.placed",
        OrderStatus::PaymentPending => "order.payment_pending",
        OrderStatus::Confirmed => "order.confirmed",
        OrderStatus::Shipped => "order.shipped",
        OrderStatus::Delivered => "order.delivered",
        OrderStatus::Cancelled => "order.cancelled",
        OrderStatus::Refunded => "order.refunded",
    }
}

async fn history(conn: &mut PgConnection, order_id: Uuid, from: Option<OrderStatus>, to: OrderStatus) -> Result<()> {
    sqlx::query("INSERT INTO order_status_history (order_id, from_status, to_status) VALUES ($1, $2, $3)")
        .bind(order_id)
        .bind(from.map(OrderStatus::as_str))
        .bind(to.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(())
}
