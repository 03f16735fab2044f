//! Fulfilment: a simulated warehouse, sellers shipping by hand, refunds.
//!
//! The warehouse consumer (group `warehouse`) only creates the shipment
//! rows of a CONFIRMED order, one per seller, deduplicated by event id in the
//! same transaction. Every later step is taken by [`Fulfilment::advance`],
//! run by a worker in every server process: it takes one due shipment at a
//! time `FOR UPDATE SKIP LOCKED` and does its step (pick, capture + ship,
//! deliver) in that row's transaction, so the delays live in PostgreSQL
//! (they survive restarts) and no step is done by two workers. A worker that
//! dies mid-step rolls its transaction back; the next one repeats the step,
//! and the provider replays the capture by its key (`<payment id>:capture`).
//!
//! Multi-seller orders (ARCHITECTURE.md, Fulfilment): one shipment per
//! seller. The whole authorization is captured once, by the first shipment
//! that ships (the order becomes SHIPPED then); the order becomes DELIVERED
//! when every shipment that was not cancelled is delivered. A pick that
//! finds nothing before anything is captured cancels the whole order through
//! checkout's cancel (void, units back); after the capture (another seller
//! shipped) that seller's part is refunded alone (`<payment id>:refund:<seller>`)
//! and its units go back.
//!
//! Lock order, everywhere: shipment rows, then the order row, then
//! inventory rows. The capture call is made holding the order row, so a
//! cancel racing a shipment waits (at most the provider timeout) and then
//! finds the order SHIPPED, never a captured order it would void.

use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use model::order::{SellerOrder, SellerOrderPage, ShipmentView};
use model::order::{OrderItem, OrderStatus};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::events::{self, dedup, Event};
use crate::inventory::{Line, SellerScope};
use crate::orders::Orders;
use crate::{Error, Result, Shop};

/// The consumer group and the dedup name of the warehouse's handler.
pub const CONSUMER: &str = "warehouse";
/// The simulated warehouse's carrier.
pub const WAREHOUSE_CARRIER: &str = "Mercato Post";

#[derive(Debug, Clone)]
pub struct Settings {
    /// From CONFIRMED (the shipment row) to the pick.
    pub pick_delay: Duration,
    /// From the pick to capture + SHIPPED.
    pub ship_delay: Duration,
    /// From SHIPPED to DELIVERED.
    pub deliver_delay: Duration,
    /// How often the worker looks for due steps.
    pub poll_interval: Duration,
    /// An authorization not captured this long after the order is captured
    /// early: card authorizations lapse after 7 days (Stripe's
    /// `capture_before`), and a lapsed one is money we can no longer take.
    pub capture_after: Duration,
    /// A refund recorded this long ago and not finished belongs to a dead
    /// process (or a provider that was down): the worker finishes it.
    pub recover_after: Duration,
    /// The first retry of a failed step waits this long, doubling to 1 h.
    pub retry_backoff: Duration,
    /// Crash tests only: makes a step hang at a named point.
    pub fault: FaultHook,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            pick_delay: Duration::from_secs(60 * 60),
            ship_delay: Duration::from_secs(4 * 60 * 60),
            deliver_delay: Duration::from_secs(2 * 24 * 60 * 60),
            poll_interval: Duration::from_secs(1),
            capture_after: Duration::from_secs(6 * 24 * 60 * 60),
            recover_after: Duration::from_secs(60),
            retry_backoff: Duration::from_secs(5),
            fault: FaultHook::default(),
        }
    }
}

/// A named point where a step hangs for ever when armed, so a test can
/// abort the task there: its transaction is dropped (rolled back) as if the
/// process had been killed. Never armed outside tests.
#[derive(Clone, Default)]
pub struct FaultHook(Arc<Mutex<Option<String>>>);

impl std::fmt::Debug for FaultHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FaultHook")
    }
}

impl FaultHook {
    pub fn arm(&self, point: &str) {
        *self.0.lock().expect("fault hook") = Some(point.to_owned());
    }

    pub fn disarm(&self) {
        *self.0.lock().expect("fault hook") = None;
    }

    async fn point(&self, name: &str) {
        let armed = self.0.lock().expect("fault hook").as_deref() == Some(name);
        if armed {
            tracing::warn!(point = name, "fault injection: fulfilment step hangs here");
            std::future::pending::<()>().await;
        }
    }
}

/// What one [`Fulfilment::advance`] pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub picked: u64,
    pub shipped: u64,
    pub delivered: u64,
    pub cancelled: u64,
    pub failed: u64,
    pub captured_early: u64,
    pub refunds_finished: u64,
}

/// The order row as a step sees it, locked FOR UPDATE.
struct LockedOrder {
    status: OrderStatus,
    payment_id: Option<String>,
    stopping: bool,
    captured: bool,
}

impl LockedOrder {
    /// Nothing of it may ship: cancelled, refunded, or either recorded.
    fn halted(&self) -> bool {
        self.stopping || !matches!(self.status, OrderStatus::Confirmed | OrderStatus::Shipped)
    }
}

enum Outcome {
    Picked,
    Shipped,
    Delivered,
    Cancelled,
    /// Nothing to pick while nothing is captured: cancel the whole order
    /// (outside this transaction, through checkout's cancel).
    CancelOrder,
}

pub struct Fulfilment<'a> {
    shop: &'a Shop,
}

impl<'a> Fulfilment<'a> {
    pub(crate) fn new(shop: &'a Shop) -> Self {
        Self { shop }
    }

    pub fn settings(&self) -> &Settings {
        &self.shop.fulfilment_settings
    }

    /// The warehouse's event handler: a CONFIRMED order gets its shipment
    /// rows (one per seller), once per event id. True when this delivery
    /// created them.
    pub async fn on_event(&self, event: &Event) -> Result<bool> {
        let confirmed = match event.event_type.as_str() {
            "order.placed" => event.payload["status"] == OrderStatus::Confirmed.as_str(),
            "order.confirmed" => true,
            _ => false,
        };
        if !confirmed {
            return Ok(false);
        }
        let mut tx = self.shop.db.begin().await?;
        if !dedup::first_time(&mut tx, CONSUMER, event.id).await? {
            return Ok(false);
        }
        let created = create_shipments(&mut tx, event.aggregate_id, self.settings().pick_delay).await?;
        tx.commit().await?;
        Ok(created > 0)
    }

    /// One worker pass: every due shipment step, early captures of
    /// authorizations about to lapse, refunds left half-way.
    pub async fn advance(&self) -> Result<Report> {
        let mut report = Report::default();
        // Bounded, so one pass cannot starve the other duties.
        for _ in 0..500 {
            if !self.step_one(&mut report).await? {
                break;
            }
        }
        self.capture_expiring(&mut report).await?;
        self.finish_refunds(&mut report).await?;
        Ok(report)
    }

    /// Takes one due shipment and does its step. False when none is due.
    async fn step_one(&self, report: &mut Report) -> Result<bool> {
        let mut tx = self.shop.db.begin().await?;
        let due: Option<(Uuid, Uuid, String, i32)> = sqlx::query_as(
            "SELECT order_id, seller_id, state, attempts FROM shipments \
             WHERE state IN ('picking', 'picked', 'shipped') AND due_at <= now() \
             ORDER BY due_at LIMIT 1 FOR UPDATE SKIP LOCKED",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some((order_id, seller_id, state, attempts)) = due else {
            return Ok(false);
        };
        let mut returned: Vec<Line> = Vec::new();
        let result = self.step(&mut tx, order_id, seller_id, &state, &mut returned).await;
        let outcome = match result {
            Ok(outcome) => tx.commit().await.map(|()| outcome).map_err(Error::from),
            Err(err) => {
                // The failure is written on this shipment's row from another
                // connection: with our lock still held it would wait out the
                // lock timeout, record nothing, and the same step would come
                // first again at once, holding up every shipment behind it.
                if let Err(rollback) = tx.rollback().await {
                    tracing::warn!(%order_id, error = %rollback, "could not roll back a failed fulfilment step; its connection is dropped");
                }
                Err(err)
            }
        };
        match outcome {
            Ok(Outcome::Picked) => report.picked += 1,
            Ok(Outcome::Shipped) => report.shipped += 1,
            Ok(Outcome::Delivered) => report.delivered += 1,
            Ok(Outcome::Cancelled) => report.cancelled += 1,
            Ok(Outcome::CancelOrder) => {
                // The row lock is gone with the transaction: checkout's
                // cancel records the intent, voids, returns the units. A
                // crash after the record is finished by checkout recovery;
                // the next pass here then finds the order halted.
                match self.shop.checkout().cancel_by_shop(order_id).await {
                    Ok(()) => {
                        cancel_open_shipments(&self.shop.db, order_id).await?;
                        report.cancelled += 1;
                        tracing::warn!(%order_id, %seller_id, "nothing to pick: order cancelled and its authorization voided");
                    }
                    Err(err) => self.failed(order_id, seller_id, attempts, &err, report).await,
                }
            }
            Err(err) => self.failed(order_id, seller_id, attempts, &err, report).await,
        }
        if !returned.is_empty() {
            self.shop.inventory().after_unconfirm(&returned).await;
        }
        Ok(true)
    }

    /// A failed step backs off on its own row, so the others go on.
    async fn failed(&self, order_id: Uuid, seller_id: Uuid, attempts: i32, err: &Error, report: &mut Report) {
        report.failed += 1;
        let wait = self.settings().retry_backoff.as_secs_f64() * 2f64.powi(attempts.min(20));
        tracing::warn!(%order_id, %seller_id, error = %err, attempts = attempts + 1, "fulfilment step failed; backing off");
        let noted = sqlx::query(
            "UPDATE shipments SET attempts = attempts + 1, last_error = $3, due_at = now() + make_interval(secs => least($4, 3600)) \
             WHERE order_id = $1 AND seller_id = $2",
        )
        .bind(order_id)
        .bind(seller_id)
        .bind(err.to_string())
        .bind(wait)
        .execute(&self.shop.db)
        .await;
        if let Err(err) = noted {
            tracing::warn!(error = %err, "could not record a fulfilment failure");
        }
    }

    async fn step(&self, tx: &mut PgConnection, order_id: Uuid, seller_id: Uuid, state: &str, returned: &mut Vec<Line>) -> Result<Outcome> {
        let order = lock_order(tx, order_id).await?;
        match state {
            "picking" | "picked" if order.halted() => {
                set_state(tx, order_id, seller_id, "cancelled").await?;
                deliver_if_done(tx, order_id, order.status).await?;
                Ok(Outcome::Cancelled)
            }
            "picking" => self.pick(tx, order_id, seller_id, &order, returned).await,
            "picked" => {
                let tracking = warehouse_tracking(order_id, seller_id);
                self.ship_locked(tx, order_id, seller_id, &order, WAREHOUSE_CARRIER, &tracking).await?;
                Ok(Outcome::Shipped)
            }
            "shipped" => {
                // A parcel on its way arrives even if the order was refunded
                // meanwhile; only a SHIPPED order moves on to DELIVERED.
                sqlx::query(
                    "UPDATE shipments SET state = 'delivered', delivered_at = now(), attempts = 0, last_error = NULL \
                     WHERE order_id = $1 AND seller_id = $2",
                )
                .bind(order_id)
                .bind(seller_id)
                .execute(&mut *tx)
                .await?;
                deliver_if_done(tx, order_id, order.status).await?;
                Ok(Outcome::Delivered)
            }
            other => Err(Error::internal(format!("shipment in state {other} is not due for a step"))),
        }
    }

    /// Re-checks the seller's units in PostgreSQL. All there: picked, due to
    /// ship after the ship delay. Some missing: the whole order is cancelled
    /// while nothing is captured; after a capture (another seller shipped)
    /// this seller's part is refunded and its units go back.
    async fn pick(&self, tx: &mut PgConnection, order_id: Uuid, seller_id: Uuid, order: &LockedOrder, returned: &mut Vec<Line>) -> Result<Outcome> {
        let lines = seller_lines(tx, order_id, seller_id).await?;
        let missing = self.shop.inventory().missing_in(tx, &lines).await?;
        if missing.is_empty() {
            sqlx::query(
                "UPDATE shipments SET state = 'picked', due_at = now() + make_interval(secs => $3), attempts = 0, last_error = NULL \
                 WHERE order_id = $1 AND seller_id = $2",
            )
            .bind(order_id)
            .bind(seller_id)
            .bind(self.settings().ship_delay.as_secs_f64())
            .execute(&mut *tx)
            .await?;
            return Ok(Outcome::Picked);
        }
        tracing::warn!(%order_id, %seller_id, ?missing, "nothing to pick for these SKUs");
        if order.status == OrderStatus::Confirmed {
            // Nothing shipped: the whole order is cancelled (voided; or
            // refunded, when the authorization was captured early).
            return Ok(Outcome::CancelOrder);
        }
        // SHIPPED: another seller's part left and the payment is captured.
        let amount: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(i.quantity::bigint * i.unit_cents), 0)::bigint FROM order_items i JOIN products p ON p.id = i.product_id \
             WHERE i.order_id = $1 AND p.seller_id = $2",
        )
        .bind(order_id)
        .bind(seller_id)
        .fetch_one(&mut *tx)
        .await?;
        if let Some(payment_id) = &order.payment_id {
            self.shop.payments().refund_part(payment_id, &seller_id.to_string(), amount).await?;
        }
        self.shop.inventory().unconfirm_in(tx, &lines).await?;
        returned.extend(lines);
        set_state(tx, order_id, seller_id, "cancelled").await?;
        events::record(
            tx,
            "order",
            order_id,
            "order.shipment_cancelled",
            json!({ "order_id": order_id, "seller_id": seller_id, "refunded_cents": amount, "reason": "nothing_to_pick" }),
        )
        .await?;
        deliver_if_done(tx, order_id, order.status).await?;
        Ok(Outcome::Cancelled)
    }

    /// The one shipping path, for the warehouse and for a seller by hand:
    /// capture (once per order, by key), units out of `reserved` and
    /// `stock_count`, the shipment SHIPPED with its carrier, and the order
    /// SHIPPED with an `order.shipped` event carrying them (a later seller's
    /// shipment of an order already SHIPPED records `order.shipment_shipped`).
    /// The caller holds the shipment row and `order` (locked) in `tx`.
    async fn ship_locked(&self, tx: &mut PgConnection, order_id: Uuid, seller_id: Uuid, order: &LockedOrder, carrier: &str, tracking: &str) -> Result<()> {
        if order.halted() {
            return Err(not_shippable(order.status, order.stopping));
        }
        if !order.captured {
            if let Some(payment_id) = &order.payment_id {
                let captured = self.shop.payments().capture(payment_id).await?;
                if captured.status != "succeeded" {
                    return Err(Error::internal(format!("capture of {payment_id} ended {}", captured.status)));
                }
            }
            self.settings().fault.point("after_capture").await;
            sqlx::query("UPDATE orders SET captured_at = now() WHERE id = $1").bind(order_id).execute(&mut *tx).await?;
        }
        let lines = seller_lines(tx, order_id, seller_id).await?;
        self.shop.inventory().ship_in(tx, &lines).await?;
        sqlx::query(
            "UPDATE shipments SET state = 'shipped', carrier = $3, tracking_number = $4, shipped_at = now(), \
                 captured_at = CASE WHEN $5 THEN captured_at ELSE now() END, \
                 due_at = now() + make_interval(secs => $6), attempts = 0, last_error = NULL \
             WHERE order_id = $1 AND seller_id = $2",
        )
        .bind(order_id)
        .bind(seller_id)
        .bind(carrier)
        .bind(tracking)
        .bind(order.captured)
        .bind(self.settings().deliver_delay.as_secs_f64())
        .execute(&mut *tx)
        .await?;
        let mut extra = serde_json::Map::new();
        extra.insert("seller_id".into(), json!(seller_id));
        extra.insert("carrier".into(), json!(carrier));
        extra.insert("tracking_number".into(), json!(tracking));
        if order.status == OrderStatus::Confirmed {
            Orders::transition_with(tx, order_id, OrderStatus::Shipped, extra).await?;
        } else {
            extra.insert("order_id".into(), json!(order_id));
            events::record(tx, "order", order_id, "order.shipment_shipped", serde_json::Value::Object(extra)).await?;
        }
        Ok(())
    }

    /// Captures authorizations about to lapse (`capture_after` since the
    /// order): the money is taken while it still can be, the order stays
    /// CONFIRMED until it ships; a later cancel refunds instead of voiding.
    async fn capture_expiring(&self, report: &mut Report) -> Result<()> {
        for _ in 0..100 {
            let mut tx = self.shop.db.begin().await?;
            let due: Option<(Uuid, String)> = sqlx::query_as(
                "SELECT id, payment_id FROM orders \
                 WHERE status = 'CONFIRMED' AND captured_at IS NULL AND payment_id IS NOT NULL AND cancel_requested_at IS NULL \
                   AND created_at < now() - make_interval(secs => $1) \
                 ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED",
            )
            .bind(self.settings().capture_after.as_secs_f64())
            .fetch_optional(&mut *tx)
            .await?;
            let Some((order_id, payment_id)) = due else { return Ok(()) };
            // A failure ends the pass (the provider is likely down); the
            // next pass tries again, well inside the remaining day.
            self.shop.payments().capture(&payment_id).await?;
            sqlx::query("UPDATE orders SET captured_at = now() WHERE id = $1").bind(order_id).execute(&mut *tx).await?;
            sqlx::query("UPDATE shipments SET captured_at = now() WHERE order_id = $1 AND captured_at IS NULL").bind(order_id).execute(&mut *tx).await?;
            events::record(
                &mut tx,
                "payment",
                order_id,
                "payment.captured",
                json!({ "order_id": order_id, "payment_id": payment_id, "reason": "authorization_expiring" }),
            )
            .await?;
            tx.commit().await?;
            report.captured_early += 1;
            tracing::warn!(%order_id, payment_id, "authorization about to lapse: captured before shipping");
        }
        Ok(())
    }

    /// The orders a seller has lines in (all orders for an admin), newest
    /// first, keyset-paged by id; only the seller's own lines are shown.
    pub async fn seller_orders(&self, scope: SellerScope, status: Option<OrderStatus>, limit: i64, before: Option<Uuid>) -> Result<SellerOrderPage> {
        let limit = limit.clamp(1, 100);
        let mut orders = self.load(scope, status, before, None, limit + 1).await?;
        let more = orders.len() as i64 > limit;
        orders.truncate(limit as usize);
        let next_cursor = if more { orders.last().map(|o| o.order_id) } else { None };
        Ok(SellerOrderPage { orders, next_cursor })
    }

    /// One order as `scope` sees it; an order without its lines is "not found".
    pub async fn seller_order(&self, scope: SellerScope, order_id: Uuid) -> Result<SellerOrder> {
        self.load(scope, None, None, Some(order_id), 1).await?.pop().ok_or(Error::NotFound { what: "order" })
    }

    async fn load(&self, scope: SellerScope, status: Option<OrderStatus>, before: Option<Uuid>, only: Option<Uuid>, limit: i64) -> Result<Vec<SellerOrder>> {
        let seller = seller_of(scope);
        let rows: Vec<(Uuid, String, String, String)> = sqlx::query_as(
            "SELECT o.id, o.status, o.currency, to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM orders o \
             WHERE EXISTS (SELECT 1 FROM order_items i JOIN products p ON p.id = i.product_id \
                           WHERE i.order_id = o.id AND ($1::uuid IS NULL OR p.seller_id = $1)) \
               AND ($2::text IS NULL OR o.status = $2) AND ($3::uuid IS NULL OR o.id < $3) AND ($4::uuid IS NULL OR o.id = $4) \
             ORDER BY o.id DESC LIMIT $5",
        )
        .bind(seller)
        .bind(status.map(OrderStatus::as_str))
        .bind(before)
        .bind(only)
        .bind(limit)
        .fetch_all(&self.shop.db)
        .await?;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
        let items: Vec<(Uuid, Uuid, Uuid, String, i32, i64)> = sqlx::query_as(
            "SELECT i.order_id, i.sku_id, i.product_id, i.title, i.quantity, i.unit_cents FROM order_items i JOIN products p ON p.id = i.product_id \
             WHERE i.order_id = ANY($1) AND ($2::uuid IS NULL OR p.seller_id = $2) ORDER BY i.title, i.sku_id",
        )
        .bind(&ids)
        .bind(seller)
        .fetch_all(&self.shop.db)
        .await?;
        let shipments: Vec<(Uuid, Uuid, String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT order_id, seller_id, state, carrier, tracking_number FROM shipments \
             WHERE order_id = ANY($1) AND ($2::uuid IS NULL OR seller_id = $2) ORDER BY seller_id",
        )
        .bind(&ids)
        .bind(seller)
        .fetch_all(&self.shop.db)
        .await?;
        rows.into_iter()
            .map(|(order_id, status, currency, created_at)| {
                let items: Vec<OrderItem> = items
                    .iter()
                    .filter(|i| i.0 == order_id)
                    .map(|(_, sku_id, product_id, title, quantity, unit_cents)| OrderItem {
                        sku_id: *sku_id,
                        product_id: *product_id,
                        title: title.clone(),
                        quantity: *quantity as u32,
                        unit_cents: *unit_cents,
                    })
                    .collect();
                Ok(SellerOrder {
                    order_id,
                    status: OrderStatus::parse(&status).ok_or_else(|| Error::internal(format!("unknown order status {status}")))?,
                    currency,
                    created_at,
                    lines_total_cents: items.iter().map(|i| i64::from(i.quantity) * i.unit_cents).sum(),
                    items,
                    shipments: shipments
                        .iter()
                        .filter(|s| s.0 == order_id)
                        .map(|(_, seller_id, state, carrier, tracking_number)| ShipmentView {
                            seller_id: *seller_id,
                            state: state.clone(),
                            carrier: carrier.clone(),
                            tracking_number: tracking_number.clone(),
                        })
                        .collect(),
                })
            })
            .collect()
    }

    /// A seller ships its part by hand (an admin: every part not shipped):
    /// the same path as the warehouse (capture, then SHIPPED). Sending the
    /// same carrier and tracking number again answers as the first time.
    pub async fn ship_by_hand(&self, scope: SellerScope, order_id: Uuid, carrier: &str, tracking_number: &str) -> Result<SellerOrder> {
        let carrier = carrier.trim();
        let tracking = tracking_number.trim();
        if carrier.is_empty() || carrier.chars().count() > 50 {
            return Err(Error::Invalid("carrier must be 1 to 50 characters".into()));
        }
        if tracking.is_empty() || tracking.len() > 64 || !tracking.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(Error::Invalid("tracking_number must be 1 to 64 letters, digits or dashes".into()));
        }
        let sellers: Vec<Uuid> = sqlx::query_scalar(
            "SELECT DISTINCT p.seller_id FROM order_items i JOIN products p ON p.id = i.product_id \
             WHERE i.order_id = $1 AND ($2::uuid IS NULL OR p.seller_id = $2) ORDER BY 1",
        )
        .bind(order_id)
        .bind(seller_of(scope))
        .fetch_all(&self.shop.db)
        .await?;
        if sellers.is_empty() {
            return Err(Error::NotFound { what: "order" });
        }
        // The warehouse's event may not have been handled yet: the rows are
        // made here the same way (a second maker finds them and does nothing).
        let mut tx = self.shop.db.begin().await?;
        create_shipments(&mut tx, order_id, self.settings().pick_delay).await?;
        tx.commit().await?;
        for seller_id in sellers {
            let mut tx = self.shop.db.begin().await?;
            let row: Option<(String, Option<String>, Option<String>)> = sqlx::query_as(
                "SELECT state, carrier, tracking_number FROM shipments WHERE order_id = $1 AND seller_id = $2 FOR UPDATE",
            )
            .bind(order_id)
            .bind(seller_id)
            .fetch_optional(&mut *tx)
            .await?;
            let order = lock_order(&mut tx, order_id).await?;
            match row {
                Some((state, _, _)) if state == "picking" || state == "picked" => {
                    self.ship_locked(&mut tx, order_id, seller_id, &order, carrier, tracking).await?;
                    tx.commit().await?;
                }
                Some((state, c, t)) if state == "shipped" || state == "delivered" => {
                    if c.as_deref() != Some(carrier) || t.as_deref() != Some(tracking) {
                        if matches!(scope, SellerScope::Seller(_)) {
                            return Err(Error::Conflict {
                                code: "already_shipped",
                                message: "this order has already shipped with another tracking number".into(),
                                details: Some(json!({ "carrier": c, "tracking_number": t })),
                            });
                        }
                    }
                }
                _ => return Err(not_shippable(order.status, order.stopping)),
            }
        }
        self.seller_order(scope, order_id).await
    }

    /// Refunds a shipped or delivered order in full and makes it REFUNDED.
    /// The intent is recorded first (`refund_requested_at`), then the
    /// provider refunds (`<payment id>:refund`), then the status changes:
    /// a crash in between is finished by the worker. A provider that is
    /// down leaves the request recorded (503 now; finished later).
    pub async fn refund(&self, scope: SellerScope, order_id: Uuid) -> Result<SellerOrder> {
        let view = self.seller_order(scope, order_id).await?;
        if view.status == OrderStatus::Refunded {
            return Ok(view);
        }
        let recorded = sqlx::query(
            "UPDATE orders SET refund_requested_at = coalesce(refund_requested_at, now()) WHERE id = $1 AND status IN ('SHIPPED', 'DELIVERED')",
        )
        .bind(order_id)
        .execute(&self.shop.db)
        .await?
        .rows_affected();
        if recorded == 0 {
            let now = self.seller_order(scope, order_id).await?;
            return if now.status == OrderStatus::Refunded { Ok(now) } else { Err(not_refundable(now.status)) };
        }
        self.settings().fault.point("after_refund_recorded").await;
        self.finish_refund(order_id).await?;
        self.seller_order(scope, order_id).await
    }

    /// The second half of a recorded refund; idempotent (the provider
    /// replays by key; only the first status change counts).
    async fn finish_refund(&self, order_id: Uuid) -> Result<()> {
        let (status, payment_id): (String, Option<String>) =
            sqlx::query_as("SELECT status, payment_id FROM orders WHERE id = $1").bind(order_id).fetch_one(&self.shop.db).await?;
        if status == OrderStatus::Refunded.as_str() {
            return Ok(());
        }
        if let Some(payment_id) = &payment_id {
            self.shop.payments().refund(payment_id).await?;
        }
        let mut tx = self.shop.db.begin().await?;
        // Shipment rows first (the lock order): parts that never left go
        // back to stock and will not ship.
        let open: Vec<Uuid> = sqlx::query_scalar(
            "SELECT seller_id FROM shipments WHERE order_id = $1 AND state IN ('picking', 'picked') ORDER BY seller_id FOR UPDATE",
        )
        .bind(order_id)
        .fetch_all(&mut *tx)
        .await?;
        match Orders::transition(&mut tx, order_id, OrderStatus::Refunded).await {
            Ok(_) => {}
            Err(Error::Conflict { code: "illegal_transition", .. }) => return Ok(()),
            Err(err) => return Err(err),
        }
        let mut returned = Vec::new();
        for seller_id in open {
            let lines = seller_lines(&mut tx, order_id, seller_id).await?;
            self.shop.inventory().unconfirm_in(&mut tx, &lines).await?;
            set_state(&mut tx, order_id, seller_id, "cancelled").await?;
            returned.extend(lines);
        }
        tx.commit().await?;
        if !returned.is_empty() {
            self.shop.inventory().after_unconfirm(&returned).await;
        }
        Ok(())
    }

    async fn finish_refunds(&self, report: &mut Report) -> Result<()> {
        let pending: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM orders WHERE refund_requested_at IS NOT NULL AND status <> 'REFUNDED' \
             AND refund_requested_at < now() - make_interval(secs => $1) ORDER BY refund_requested_at LIMIT 100",
        )
        .bind(self.settings().recover_after.as_secs_f64())
        .fetch_all(&self.shop.db)
        .await?;
        for order_id in pending {
            match self.finish_refund(order_id).await {
                Ok(()) => {
                    report.refunds_finished += 1;
                    tracing::warn!(%order_id, "finished a refund left half-way");
                }
                Err(err) => tracing::warn!(%order_id, error = %err, "could not finish a recorded refund; retrying next pass"),
            }
        }
        Ok(())
    }
}

fn seller_of(scope: SellerScope) -> Option<Uuid> {
    match scope {
        SellerScope::Seller(id) => Some(id),
        SellerScope::Admin => None,
    }
}

/// One row per seller of a CONFIRMED order; existing rows stay as they are.
async fn create_shipments(tx: &mut PgConnection, order_id: Uuid, pick_delay: Duration) -> Result<u64> {
    Ok(sqlx::query(
        "INSERT INTO shipments (order_id, seller_id, state, due_at) \
         SELECT DISTINCT i.order_id, p.seller_id, 'picking', now() + make_interval(secs => $2) \
         FROM order_items i JOIN products p ON p.id = i.product_id JOIN orders o ON o.id = i.order_id \
         WHERE i.order_id = $1 AND o.status = 'CONFIRMED' AND o.cancel_requested_at IS NULL \
         ON CONFLICT (order_id, seller_id) DO NOTHING",
    )
    .bind(order_id)
    .bind(pick_delay.as_secs_f64())
    .execute(&mut *tx)
    .await?
    .rows_affected())
}

async fn cancel_open_shipments(db: &sqlx::PgPool, order_id: Uuid) -> Result<()> {
    sqlx::query("UPDATE shipments SET state = 'cancelled' WHERE order_id = $1 AND state IN ('picking', 'picked')")
        .bind(order_id)
        .execute(db)
        .await?;
    Ok(())
}

async fn lock_order(tx: &mut PgConnection, order_id: Uuid) -> Result<LockedOrder> {
    let row: Option<(String, Option<String>, bool, bool)> = sqlx::query_as(
        "SELECT status, payment_id, (cancel_requested_at IS NOT NULL OR refund_requested_at IS NOT NULL), captured_at IS NOT NULL \
         FROM orders WHERE id = $1 FOR UPDATE",
    )
    .bind(order_id)
    .fetch_optional(&mut *tx)
    .await?;
    let (status, payment_id, stopping, captured) = row.ok_or(Error::NotFound { what: "order" })?;
    let status = OrderStatus::parse(&status).ok_or_else(|| Error::internal(format!("unknown order status {status}")))?;
    Ok(LockedOrder { status, payment_id, stopping, captured })
}

async fn seller_lines(tx: &mut PgConnection, order_id: Uuid, seller_id: Uuid) -> Result<Vec<Line>> {
    let rows: Vec<(Uuid, i32)> = sqlx::query_as(
        "SELECT i.sku_id, i.quantity FROM order_items i JOIN products p ON p.id = i.product_id WHERE i.order_id = $1 AND p.seller_id = $2",
    )
    .bind(order_id)
    .bind(seller_id)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows.into_iter().map(|(sku_id, q)| Line { sku_id, quantity: q as u32 }).collect())
}

async fn set_state(tx: &mut PgConnection, order_id: Uuid, seller_id: Uuid, state: &str) -> Result<()> {
    sqlx::query("UPDATE shipments SET state = $3, attempts = 0, last_error = NULL WHERE order_id = $1 AND seller_id = $2")
        .bind(order_id)
        .bind(seller_id)
        .bind(state)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// A SHIPPED order whose every shipment is delivered or cancelled (and at
/// least one delivered) becomes DELIVERED.
async fn deliver_if_done(tx: &mut PgConnection, order_id: Uuid, status: OrderStatus) -> Result<()> {
    if status != OrderStatus::Shipped {
        return Ok(());
    }
    let (open, delivered): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE state IN ('picking', 'picked', 'shipped')), count(*) FILTER (WHERE state = 'delivered') \
         FROM shipments WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_one(&mut *tx)
    .await?;
    if open == 0 && delivered > 0 {
        Orders::transition(tx, order_id, OrderStatus::Delivered).await?;
    }
    Ok(())
}

/// Deterministic per shipment, so a repeated step ships under the same number.
fn warehouse_tracking(order_id: Uuid, seller_id: Uuid) -> String {
    let o = order_id.simple().to_string();
    let s = seller_id.simple().to_string();
    format!("MP{}{}", &o[20..], &s[28..]).to_ascii_uppercase()
}

fn not_shippable(status: OrderStatus, stopping: bool) -> Error {
    Error::Conflict {
        code: "not_shippable",
        message: if stopping {
            format!("this order is {status} with a cancel or refund under way and cannot ship")
        } else {
            format!("this order is {status} and cannot ship")
        },
        details: Some(json!({ "status": status })),
    }
}

fn not_refundable(status: OrderStatus) -> Error {
    Error::Conflict {
        code: "not_refundable",
        message: format!("this order is {status}: only a shipped or delivered order is refunded (cancel one that has not shipped)"),
        details: Some(json!({ "status": status })),
    }
}
