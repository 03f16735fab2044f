//! Checkout: the design's write path, made crash-safe and idempotent.
//!
//! idempotency → cart → reserve → authorize → one transaction (confirm the
//! inventory, insert the order with its items, history and outbox event,
//! store the answer for the key) → cart checked out → 201.
//!
//! Idempotency works like Stripe's: the first answer for a customer's key is
//! stored with the request's hash, in the same transaction as the order when
//! there is one, and every retry gets it back, including retries that
//! arrive while the first request is still running (they wait for it). The
//! same key with a different body is refused (422 `idempotency_key_reused`).
//! Answers the customer caused (sold out, declined card, empty cart, changed
//! prices) are stored; failures of ours or of a dependency are compensated
//! and the key is freed, so a retry runs again.
//!
//! Compensation: a declined card releases the reservation; an order
//! transaction that fails voids the authorization and releases the
//! reservation. A process that dies mid-way leaves the key `started` with
//! its reservation (which expires) and, if authorized, its PaymentIntent id.

use std::time::{Duration, Instant};

use model::order::{OrderItem, OrderStatus};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::cart::Owner;
use crate::inventory::Line;
use crate::orders::{NewOrder, Orders};
use crate::{Error, Result, Shop};

/// What the customer sends (API.md's body, plus the total they were shown).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CheckoutRequest {
    pub shipping_address: Address,
    /// A Stripe PaymentMethod id, e.g. `pm_card_visa`.
    pub payment_method: String,
    /// The total the customer saw and agreed to. When prices changed since
    /// the items went into the cart, checkout goes ahead only if this equals
    /// the new total: a changed price is shown before anyone is charged it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_total_cents: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Address {
    pub name: String,
    pub line1: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2, e.g. "GB".
    pub country: String,
}

/// The 201 answer: `{order_id, status, total_cents, currency}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Placed {
    pub order_id: Uuid,
    pub status: OrderStatus,
    pub total_cents: i64,
    pub currency: String,
}

/// A stored answer: the order, or an error the customer caused.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    Placed(Placed),
    Refused { code: String, message: String, details: Option<serde_json::Value> },
}

/// How long a key's answer is kept, as Stripe keeps its keys. After that a
/// key that made an order still answers with it (orders keep the key); a key
/// whose answer was a refusal runs again.
pub const KEY_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// How long a retry waits for the first request with its key to finish.
const IN_FLIGHT_WAIT: Duration = Duration::from_secs(20);

pub struct Checkout<'a> {
    shop: &'a Shop,
}

impl<'a> Checkout<'a> {
    pub(crate) fn new(shop: &'a Shop) -> Self {
        Self { shop }
    }

    /// Places `user`'s cart as an order, once per `key`.
    pub async fn place(&self, user: Uuid, key: &str, request: &CheckoutRequest) -> Result<Placed> {
        validate_key(key)?;
        let request = validate(request)?;
        let hash = request_hash(&request);
        let order_id = Uuid::now_v7();
        let token = Uuid::new_v4();
        // Claim the key, or answer as the request that holds it did. A key
        // freed by a failed first attempt is claimed again. A key whose claim
        // was pruned (older than KEY_RETENTION) but that made an order is not
        // claimed: it answers with that order. The check rides in the claim's
        // own statement, so a new key pays no extra round trip.
        loop {
            let claimed: Option<Uuid> = sqlx::query_scalar(
                "INSERT INTO checkout_requests (user_id, idempotency_key, request_hash, order_id, reservation_token) \
                 SELECT $1, $2, $3, $4, $5 \
                 WHERE NOT EXISTS (SELECT 1 FROM orders WHERE user_id = $1 AND idempotency_key = $2) \
                 ON CONFLICT (user_id, idempotency_key) DO NOTHING RETURNING order_id",
            )
            .bind(user)
            .bind(key)
            .bind(&hash)
            .bind(order_id)
            .bind(token)
            .fetch_optional(&self.shop.db)
            .await?;
            if claimed.is_some() {
                fault::point("after_claim");
                break;
            }
            if let Some(answer) = self.replay(user, key, &hash).await? {
                return answer;
            }
            if let Some(placed) = self.order_for_key(user, key).await? {
                return Ok(placed);
            }
        }
        let mut unsettled = false;
        let result = self.run(user, key, &request, order_id, token, &mut unsettled).await;
        match result {
            Ok(placed) => Ok(placed),
            Err(err) if stored_refusal(&err) => {
                self.store_refusal(user, key, &err).await?;
                Err(err)
            }
            Err(err) if unsettled => {
                // An authorization could not be voided (the provider is
                // failing): the claim keeps its payment id, and recovery
                // voids it once the provider answers.
                tracing::warn!(%order_id, "checkout failed with its authorization still open; left for recovery");
                Err(err)
            }
            Err(err) => {
                // Ours or a dependency's: compensated already; free the key
                // so the customer's retry runs the checkout again.
                if let Err(free_err) = sqlx::query("DELETE FROM checkout_requests WHERE user_id = $1 AND idempotency_key = $2 AND state = 'started'")
                    .bind(user)
                    .bind(key)
                    .execute(&self.shop.db)
                    .await
                {
                    tracing::warn!(error = %free_err, "could not free an idempotency key after a failed checkout");
                }
                Err(err)
            }
        }
    }

    /// Sets `unsettled` when an authorization it made could not be voided.
    async fn run(&self, user: Uuid, key: &str, request: &CheckoutRequest, order_id: Uuid, token: Uuid, unsettled: &mut bool) -> Result<Placed> {
        let owner = Owner::User(user);
        let cart = self.shop.cart().view(&owner).await?;
        if cart.lines.is_empty() {
            return Err(refusal("cart_empty", "your cart is empty", None));
        }
        let total = cart.subtotal_cents;
        let changed: Vec<&model::CartLine> = cart.lines.iter().filter(|l| l.price_changed).collect();
        let accepted = request.expected_total_cents == Some(total);
        if request.expected_total_cents.is_some_and(|t| t != total) || (!changed.is_empty() && !accepted) {
            return Err(refusal(
                "price_changed",
                &format!("prices changed since you added these items; the total is now {}", model::format_price(total, &cart.currency)),
                Some(json!({
                    "total_cents": total,
                    "lines": changed.iter().map(|l| json!({ "sku_id": l.sku_id, "was_cents": l.unit_cents, "now_cents": l.current_unit_cents })).collect::<Vec<_>>(),
                })),
            ));
        }
        let lines: Vec<Line> = cart.lines.iter().map(|l| Line { sku_id: l.sku_id, quantity: l.quantity as u32 }).collect();
        let inventory = self.shop.inventory();
        inventory.reserve(token, &lines, None).await?;

        fault::point("after_reserve");
        // Create the intent, record its id, then authorize: an authorization
        // can never exist without our record of it.
        let payments = self.shop.payments();
        let intent = match payments.create_intent(key, total, &cart.currency, &request.payment_method, &order_id.to_string()).await {
            Ok(pi) => pi,
            Err(err) => {
                self.release(token).await;
                return Err(err);
            }
        };
        let noted = sqlx::query("UPDATE checkout_requests SET payment_id = $3, updated_at = now() WHERE user_id = $1 AND idempotency_key = $2")
            .bind(user)
            .bind(key)
            .bind(&intent.id)
            .execute(&self.shop.db)
            .await;
        if let Err(err) = noted {
            *unsettled |= !self.void(&intent.id, key).await;
            self.release(token).await;
            return Err(err.into());
        }
        let authorized = match payments.confirm_intent(&intent.id, key).await {
            Ok(pi) => pi,
            Err(err) => {
                // Declined (the intent is cancelled already) or unreachable.
                if matches!(err, Error::Unavailable { .. }) {
                    *unsettled |= !self.void(&intent.id, key).await;
                }
                self.release(token).await;
                return Err(err);
            }
        };
        fault::point("after_authorize");

        let placed = Placed { order_id, status: OrderStatus::Confirmed, total_cents: total, currency: cart.currency.clone() };
        let order = NewOrder {
            id: order_id,
            user_id: user,
            idempotency_key: key.to_owned(),
            total_cents: total,
            currency: cart.currency.clone(),
            payment_id: Some(authorized.id.clone()),
            reservation_token: token,
            shipping_address: serde_json::to_value(&request.shipping_address).map_err(Error::internal)?,
            items: cart
                .lines
                .iter()
                .map(|l| OrderItem { sku_id: l.sku_id, product_id: l.product_id, title: l.title.clone(), quantity: l.quantity as u32, unit_cents: l.current_unit_cents })
                .collect(),
        };
        match self.commit_order(user, key, &order, &placed, token).await {
            Ok(()) => {}
            Err(err) => {
                // confirm_in already released the hold when it ran out of
                // stock; otherwise release it here. Either way the
                // authorization must not outlive the order that never was.
                *unsettled |= !self.void(&authorized.id, key).await;
                if !matches!(err, Error::Conflict { code: "out_of_stock", .. }) {
                    self.release(token).await;
                }
                return Err(err);
            }
        }
        fault::point("after_commit");
        if let Err(err) = self.shop.cart().mark_checked_out(&owner).await {
            tracing::warn!(error = %err, %order_id, "order placed but the cart was not emptied");
        }
        Ok(placed)
    }

    /// The order transaction: inventory confirmed, order written (with its
    /// history and outbox event), the answer stored for the key.
    async fn commit_order(&self, user: Uuid, key: &str, order: &NewOrder, placed: &Placed, token: Uuid) -> Result<()> {
        let inventory = self.shop.inventory();
        let mut tx = self.shop.db.begin().await?;
        let confirmation = inventory.confirm_in(&mut tx, token).await?;
        Orders::insert(&mut tx, order, &[OrderStatus::Placed, OrderStatus::PaymentPending, OrderStatus::Confirmed]).await?;
        if !store(&mut tx, user, key, &Outcome::Placed(placed.clone())).await? {
            // Recovery took this claim for a dead process's: this attempt
            // lost its reservation and must not become an order.
            return Err(Error::internal("checkout claim was recovered while the checkout ran"));
        }
        fault::point("before_commit");
        match inventory.commit(tx, confirmation).await {
            Ok(()) => Ok(()),
            Err(err) => {
                // A failed COMMIT may still have committed: look before
                // compensating, or we would void a paid order.
                let exists: std::result::Result<bool, sqlx::Error> =
                    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM orders WHERE id = $1)").bind(order.id).fetch_one(&self.shop.db).await;
                match exists {
                    Ok(true) => Ok(()),
                    _ => Err(err),
                }
            }
        }
    }

    async fn release(&self, token: Uuid) {
        if let Err(err) = self.shop.inventory().release(token).await {
            tracing::warn!(error = %err, %token, "could not release a reservation; it will expire");
        }
    }

    /// False when the provider could not be reached to void it.
    async fn void(&self, payment_id: &str, key: &str) -> bool {
        match self.shop.payments().void(payment_id, key).await {
            Ok(_) => true,
            Err(err) => {
                tracing::error!(error = %err, payment_id, "could not void an authorization after a failed checkout");
                false
            }
        }
    }

    async fn store_refusal(&self, user: Uuid, key: &str, err: &Error) -> Result<()> {
        let outcome = match err {
            Error::Conflict { code, message, details } => Outcome::Refused { code: (*code).to_owned(), message: message.clone(), details: details.clone() },
            Error::PaymentDeclined { decline_code, message } => Outcome::Refused {
                code: "payment_declined".into(),
                message: message.clone(),
                details: Some(json!({ "decline_code": decline_code })),
            },
            other => return Err(Error::internal(format!("not a stored refusal: {other}"))),
        };
        let mut conn = self.shop.db.acquire().await?;
        store(&mut conn, user, key, &outcome).await.map(|_| ())
    }

    /// The order `key` made, read from the order itself (it keeps its key
    /// for good): the answer for a key whose claim has been pruned.
    async fn order_for_key(&self, user: Uuid, key: &str) -> Result<Option<Placed>> {
        let row: Option<(Uuid, String, i64, String)> =
            sqlx::query_as("SELECT id, status, total_cents, currency FROM orders WHERE user_id = $1 AND idempotency_key = $2")
                .bind(user)
                .bind(key)
                .fetch_optional(&self.shop.db)
                .await?;
        Ok(row.and_then(|(order_id, status, total_cents, currency)| {
            Some(Placed { order_id, status: OrderStatus::parse(&status)?, total_cents, currency })
        }))
    }

    /// Forgets answered keys older than [`KEY_RETENTION`], a batch at a
    /// time. Unfinished claims are recovery's business and are kept.
    pub async fn prune_keys(&self) -> Result<u64> {
        const BATCH: i64 = 1_000;
        let mut pruned = 0;
        loop {
            let done = sqlx::query(
                "DELETE FROM checkout_requests c USING (                      SELECT user_id, idempotency_key FROM checkout_requests                      WHERE state = 'done' AND created_at < now() - make_interval(secs => $1) LIMIT $2                  ) old WHERE c.user_id = old.user_id AND c.idempotency_key = old.idempotency_key AND c.state = 'done'",
            )
            .bind(KEY_RETENTION.as_secs_f64())
            .bind(BATCH)
            .execute(&self.shop.db)
            .await?
            .rows_affected();
            pruned += done;
            if (done as i64) < BATCH {
                return Ok(pruned);
            }
        }
    }

    /// Another request with this key exists: wait for it if it is still
    /// running, then answer exactly as it did. `None`: it failed on our side
    /// and freed the key.
    async fn replay(&self, user: Uuid, key: &str, hash: &str) -> Result<Option<Result<Placed>>> {
        let deadline = Instant::now() + IN_FLIGHT_WAIT;
        loop {
            let row: Option<(String, String, Option<sqlx::types::Json<Outcome>>)> = sqlx::query_as(
                "SELECT request_hash, state, outcome FROM checkout_requests WHERE user_id = $1 AND idempotency_key = $2",
            )
            .bind(user)
            .bind(key)
            .fetch_optional(&self.shop.db)
            .await?;
            match row {
                Some((stored_hash, _, _)) if stored_hash != hash => {
                    return Err(Error::Rejected {
                        code: "idempotency_key_reused",
                        message: "this Idempotency-Key was already used for a different checkout; use a new key for a new attempt".into(),
                    })
                }
                Some((_, state, Some(sqlx::types::Json(outcome)))) if state == "done" => return Ok(Some(outcome.into_result())),
                None => return Ok(None),
                Some(_) if Instant::now() >= deadline => {
                    return Err(Error::Conflict {
                        code: "checkout_in_progress",
                        message: "a checkout with this Idempotency-Key is still being processed; retry shortly".into(),
                        details: None,
                    })
                }
                Some(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}

/// What one recovery pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RecoveryReport {
    /// Claims left `started` by a process that died, now settled.
    pub recovered: u64,
    /// Of those, authorizations voided.
    pub voided: u64,
}

impl Checkout<'_> {
    /// Settles checkouts a dead process left half-way: claims still
    /// `started` after `older_than` (no live checkout takes that long). Each
    /// is voided at the provider if it got that far, its reservation
    /// released, and the claim deleted so the customer's retry runs again.
    /// Several processes may recover at once: SKIP LOCKED gives each claim
    /// to one of them.
    pub async fn recover(&self, older_than: Duration) -> Result<RecoveryReport> {
        let mut report = RecoveryReport::default();
        loop {
            let mut tx = self.shop.db.begin().await?;
            let stale: Option<(Uuid, String, Uuid, Uuid, Option<String>)> = sqlx::query_as(
                "SELECT user_id, idempotency_key, order_id, reservation_token, payment_id FROM checkout_requests \
                 WHERE state = 'started' AND updated_at < now() - make_interval(secs => $1) \
                 ORDER BY updated_at LIMIT 1 FOR UPDATE SKIP LOCKED",
            )
            .bind(older_than.as_secs_f64())
            .fetch_optional(&mut *tx)
            .await?;
            let Some((user, key, order_id, token, payment_id)) = stale else { return Ok(report) };
            if let Some(payment_id) = &payment_id {
                // Provider down: leave the claim for the next pass.
                self.shop.payments().void(payment_id, &key).await?;
                report.voided += 1;
            }
            self.shop.inventory().release(token).await?;
            sqlx::query("DELETE FROM checkout_requests WHERE user_id = $1 AND idempotency_key = $2").bind(user).bind(&key).execute(&mut *tx).await?;
            tx.commit().await?;
            tracing::warn!(%order_id, %user, payment_id = payment_id.as_deref().unwrap_or(""), "recovered a checkout left half-way by a dead process");
            report.recovered += 1;
        }
    }
}

/// Fault injection for the crash tests: `MERCATO_FAULT_POINT=<name>` makes
/// the process abort (no unwinding, no cleanup: as if killed) when checkout
/// reaches that point. Unset in any real deployment.
pub mod fault {
    use std::sync::OnceLock;

    static POINT: OnceLock<Option<String>> = OnceLock::new();

    pub fn point(name: &str) {
        let armed = POINT.get_or_init(|| std::env::var("MERCATO_FAULT_POINT").ok().filter(|p| !p.is_empty()));
        if armed.as_deref() == Some(name) {
            eprintln!("fault injection: aborting at checkout step {name}");
            std::process::abort();
        }
    }
}

impl Outcome {
    fn into_result(self) -> Result<Placed> {
        match self {
            Outcome::Placed(placed) => Ok(placed),
            Outcome::Refused { code, message, details } => Err(match code.as_str() {
                "payment_declined" => Error::PaymentDeclined {
                    decline_code: details
                        .as_ref()
                        .and_then(|d| d["decline_code"].as_str())
                        .unwrap_or("card_declined")
                        .to_owned(),
                    message,
                },
                other => Error::Conflict { code: static_code(other), message, details },
            }),
        }
    }
}

/// Conflict codes are `&'static str`; stored ones map back to the known set.
fn static_code(code: &str) -> &'static str {
    ["out_of_stock", "price_changed", "cart_empty", "reservation_expired"].into_iter().find(|c| *c == code).unwrap_or("conflict")
}

fn refusal(code: &'static str, message: &str, details: Option<serde_json::Value>) -> Error {
    Error::Conflict { code, message: message.to_owned(), details }
}

/// Answers the customer caused: the same request would get the same answer.
fn stored_refusal(err: &Error) -> bool {
    matches!(err, Error::PaymentDeclined { .. } | Error::Conflict { code: "out_of_stock" | "price_changed" | "cart_empty" | "reservation_expired", .. })
}

/// Stores the answer on a claim still `started`; false when it is gone.
async fn store(conn: &mut sqlx::PgConnection, user: Uuid, key: &str, outcome: &Outcome) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE checkout_requests SET state = 'done', outcome = $3, updated_at = now() \
         WHERE user_id = $1 AND idempotency_key = $2 AND state = 'started'",
    )
    .bind(user)
    .bind(key)
    .bind(sqlx::types::Json(outcome))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(done == 1)
}

fn request_hash(request: &CheckoutRequest) -> String {
    let canonical = serde_json::to_vec(request).expect("a checkout request serialises");
    Sha256::digest(&canonical).iter().map(|b| format!("{b:02x}")).collect()
}

fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::bad_input("Idempotency-Key", "send a client-generated key (e.g. a UUID) of 1 to 255 visible ASCII characters"));
    }
    Ok(())
}

/// Trims and checks every field, naming the first that is wrong.
fn validate(request: &CheckoutRequest) -> Result<CheckoutRequest> {
    let a = &request.shipping_address;
    let field = |name: &str, value: &str, max: usize| -> Result<String> {
        let v = value.trim();
        if v.is_empty() || v.chars().count() > max {
            return Err(Error::Invalid(format!("shipping_address.{name} must be 1 to {max} characters")));
        }
        Ok(v.to_owned())
    };
    let country = a.country.trim().to_ascii_uppercase();
    if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Error::Invalid("shipping_address.country must be a two-letter country code, e.g. GB".into()));
    }
    let line2 = match a.line2.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
        Some(l) if l.chars().count() > 200 => return Err(Error::Invalid("shipping_address.line2 must be at most 200 characters".into())),
        other => other.map(str::to_owned),
    };
    let pm = request.payment_method.trim();
    if !pm.starts_with("pm_") || pm.len() > 100 || !pm.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(Error::Invalid("payment_method must be a payment method id such as pm_card_visa".into()));
    }
    if request.expected_total_cents.is_some_and(|t| t < 0) {
        return Err(Error::Invalid("expected_total_cents cannot be negative".into()));
    }
    Ok(CheckoutRequest {
        shipping_address: Address {
            name: field("name", &a.name, 100)?,
            line1: field("line1", &a.line1, 200)?,
            line2,
            city: field("city", &a.city, 100)?,
            postal_code: field("postal_code", &a.postal_code, 20)?,
            country,
        },
        payment_method: pm.to_owned(),
        expected_total_cents: request.expected_total_cents,
    })
}

impl Checkout<'_> {
    /// Cancels one of `user`'s orders before it ships: the payment is voided
    /// (refunded if it was captured), the units go back to stock, and the
    /// order becomes CANCELLED with its history row and outbox event.
    /// Cancelling a cancelled order answers with it again.
    pub async fn cancel(&self, user: Uuid, order_id: Uuid) -> Result<model::OrderView> {
        let view = self.shop.orders().get(user, order_id).await?;
        if view.status == OrderStatus::Cancelled {
            return Ok(view);
        }
        if !view.status.cancellable() {
            return Err(Error::Conflict {
                code: "illegal_transition",
                message: format!("this order is {} and can no longer be cancelled", view.status),
                details: Some(json!({ "status": view.status })),
            });
        }
        let key: String = sqlx::query_scalar("SELECT idempotency_key FROM orders WHERE id = $1").bind(order_id).fetch_one(&self.shop.db).await?;
        if let Some(payment_id) = &view.payment_id {
            let payments = self.shop.payments();
            // Void first: if the provider is down the order stays as it was.
            match payments.retrieve(payment_id).await?.status.as_str() {
                "canceled" => {}
                "succeeded" => payments.refund(payment_id, &key).await?,
                _ => {
                    payments.cancel(payment_id, &key).await?;
                }
            }
        }
        let lines: Vec<Line> = view.items.iter().map(|i| Line { sku_id: i.sku_id, quantity: i.quantity }).collect();
        let mut tx = self.shop.db.begin().await?;
        match Orders::transition(&mut tx, order_id, OrderStatus::Cancelled).await {
            Ok(_) => {}
            // A concurrent cancel got there first.
            Err(Error::Conflict { code: "illegal_transition", .. }) => return self.shop.orders().get(user, order_id).await,
            Err(err) => return Err(err),
        }
        self.shop.inventory().unconfirm_in(&mut tx, &lines).await?;
        tx.commit().await?;
        self.shop.inventory().after_unconfirm(&lines).await;
        self.shop.orders().get(user, order_id).await
    }
}
