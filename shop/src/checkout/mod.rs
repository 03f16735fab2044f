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
use uuid::Uuid;

use crate::cart::{FlashHold, Owner};
use crate::idempotency::{self, request_hash, validate_key};
use crate::inventory::Line;
use crate::orders::{NewOrder, Orders};
use crate::{Error, Result, Shop};

mod lane;
mod running;
pub use lane::Lane;
pub use running::Running;
use running::Waited;

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
pub use crate::idempotency::KEY_RETENTION;

/// How long a retry waits for the first request with its key to finish.
const IN_FLIGHT_WAIT: Duration = Duration::from_secs(20);

/// Runs of the order transaction when PostgreSQL keeps choosing it as a
/// deadlock's victim; after the last, the customer gets 503 (voided, key freed).
const ORDER_ATTEMPTS: u32 = 3;

pub struct Checkout<'a> {
    shop: &'a Shop,
}

impl<'a> Checkout<'a> {
    pub(crate) fn new(shop: &'a Shop) -> Self {
        Self { shop }
    }

    /// Places `user`'s cart as an order, once per `key`.
    ///
    /// The work runs as a task of its own, to the end, even when the caller
    /// stops waiting (the gateway's request timeout, a client that hung
    /// up): a checkout dropped between authorizing and committing would
    /// leave its authorization and claim to recovery, a minute later, and a
    /// future dropped mid-transaction hands its connection back in an
    /// unknown state. The customer's retry with the same key then gets this
    /// run's answer. The task is tracked (`Shop::tasks`), so stopping the
    /// server waits for it instead of cutting it off mid-payment.
    pub async fn place(&self, user: Uuid, key: &str, request: &CheckoutRequest) -> Result<Placed> {
        let shop = self.shop.clone();
        let (key, request) = (key.to_owned(), request.clone());
        // The request's span (its request id) goes with the task.
        let work = async move { Checkout::new(&shop).place_to_the_end(user, &key, &request).await };
        // So is its gateway slot, given back while the checkout waits its turn.
        let work = crate::parking::carry(work);
        self.shop.tasks.spawn(tracing::Instrument::instrument(work, tracing::Span::current()))
            .await
            .map_err(|e| Error::internal(format!("the checkout task failed: {e}")))?
    }

    async fn place_to_the_end(&self, user: Uuid, key: &str, request: &CheckoutRequest) -> Result<Placed> {
        validate_key(key)?;
        let request = validate(request)?;
        let hash = request_hash(&request);
        let order_id = Uuid::now_v7();
        let token = Uuid::new_v4();
        // A resend of a checkout still running here waits for it first,
        // parked and without a pool connection: the claim below would wait
        // on the claim row the running order transaction holds.
        if self.shop.checkouts.wait_for(user, key, Instant::now() + IN_FLIGHT_WAIT).await == Waited::StillRunning {
            return Err(in_progress());
        }
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
        // Until this returns, with the outcome written or the key freed,
        // retries of the key in this process wait on it.
        let _run = self.shop.checkouts.start(user, key);
        let mut unsettled = false;
        let result = self.run(user, key, &request, order_id, token, &mut unsettled).await;
        match result {
            Ok(placed) => Ok(placed),
            // First: an authorization that is not settled (its void failed,
            // or the order's COMMIT is in doubt) keeps the claim, whatever
            // the customer is told, so recovery voids it or finds the order.
            // Storing an answer here would end the claim and orphan it.
            Err(err) if unsettled => {
                tracing::warn!(%order_id, error = %err, "checkout failed with its authorization unsettled; left for recovery");
                Err(err)
            }
            Err(err) if stored_refusal(&err) => {
                self.store_refusal(user, key, order_id, &err).await?;
                Err(err)
            }
            Err(err) => {
                // Ours or a dependency's: compensated already; free the key
                // so the customer's retry runs the checkout again (with a
                // new order id, so new provider keys).
                if let Err(free_err) = sqlx::query(
                    "DELETE FROM checkout_requests WHERE user_id = $1 AND idempotency_key = $2 AND order_id = $3 AND state = 'started'",
                )
                .bind(user)
                .bind(key)
                .bind(order_id)
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
        // Flash sale lines come with their holds: checkout confirms those
        // instead of reserving their units again, at the sale's price.
        let (cart, holds) = self.shop.cart().view_with_holds(&owner).await?;
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
        let lines: Vec<Line> =
            cart.lines.iter().filter(|l| l.flash_sale_id.is_none()).map(|l| Line { sku_id: l.sku_id, quantity: l.quantity as u32 }).collect();
        let mut flash_skus: Vec<Uuid> = holds.iter().map(|h| h.sku_id).collect();
        flash_skus.sort();
        flash_skus.dedup();
        if flash_skus.len() < holds.len() || lines.iter().any(|l| flash_skus.contains(&l.sku_id)) {
            // An order has one line per SKU, at one price.
            return Err(Error::Rejected {
                code: "flash_item_in_cart_twice",
                message: "your cart has a flash sale item also at another price; remove that line or check it out separately".into(),
            });
        }
        let inventory = self.shop.inventory();
        if !lines.is_empty() {
            inventory.reserve(token, &lines, None).await?;
        }

        fault::point("after_reserve");
        // Create the intent, record its id, then authorize: an authorization
        // can never exist without our record of it.
        let payments = self.shop.payments();
        let new_intent = crate::payments::NewIntent {
            order_id,
            amount_cents: total,
            currency: &cart.currency,
            payment_method: &request.payment_method,
            checkout_key: key,
        };
        let intent = match payments.create_intent(&new_intent).await {
            Ok(pi) => pi,
            Err(err) => {
                self.release(token).await;
                return Err(err);
            }
        };
        // Only this attempt's claim (its order id), and only while no
        // recovery has taken it: otherwise the id would land on a claim that
        // is no longer ours, and the authorization below would have no record.
        let noted = sqlx::query(
            "UPDATE checkout_requests SET payment_id = $4, updated_at = now() \
             WHERE user_id = $1 AND idempotency_key = $2 AND order_id = $3 AND state = 'started'",
        )
        .bind(user)
        .bind(key)
        .bind(order_id)
        .bind(&intent.id)
        .execute(&self.shop.db)
        .await;
        match noted {
            Ok(done) if done.rows_affected() == 1 => {}
            outcome => {
                // Not confirmed yet, so nothing is held on the card; cancel
                // it anyway so it cannot be confirmed later.
                *unsettled |= !self.void(&intent.id).await;
                self.release(token).await;
                return Err(match outcome {
                    Err(err) => err.into(),
                    Ok(_) => timed_out(),
                });
            }
        }
        let authorized = match payments.confirm_intent(&intent.id).await {
            Ok(pi) => pi,
            Err(err) => {
                // Declined (the intent is cancelled already) or unreachable.
                if matches!(err, Error::Unavailable { .. }) {
                    *unsettled |= !self.void(&intent.id).await;
                }
                self.release(token).await;
                // A refused card gives its flash units to the next in line
                // at once; an outage keeps them for a retry within the window.
                if matches!(err, Error::PaymentDeclined { .. } | Error::Rejected { code: "authentication_required", .. }) {
                    self.shop.flash().release_holds(user, &holds).await;
                }
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
        let commit = Commit { user, key, order: &order, placed: &placed, token, holds: &holds };
        let committed = match holds.is_empty() {
            true => self.commit_order_retrying(&commit).await,
            false => {
                // Taken here, in the request's own task: waiting for it
                // gives the request's gateway permit back.
                let _turn = self.shop.flash().confirm_turn(&holds).await;
                self.commit_on_lane(&commit).await
            }
        };
        match committed {
            Ok(()) => {}
            Err(Committed::InDoubt(err)) => {
                // The order may exist and be paid: voiding now could leave a
                // CONFIRMED order without its money. The claim stays; recovery
                // sees it `done` (committed) or `started` (not) and acts then.
                *unsettled = true;
                return Err(err);
            }
            Err(Committed::No(err)) => {
                // confirm_in already released the hold when it ran out of
                // stock; otherwise release it here. Either way the
                // authorization must not outlive the order that never was.
                *unsettled |= !self.void(&authorized.id).await;
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

    /// [`Checkout::commit_order_retrying`] on the commit lane (`lane`), with
    /// the lane's connections: a flash sale's orders, which a storm of buys
    /// would otherwise starve.
    async fn commit_on_lane(&self, commit: &Commit<'_>) -> std::result::Result<(), Committed> {
        let owned = OwnedCommit {
            user: commit.user,
            key: commit.key.to_owned(),
            order: commit.order.clone(),
            placed: commit.placed.clone(),
            token: commit.token,
            holds: commit.holds.to_vec(),
        };
        let shop = self.shop.clone();
        let connections = 2 * self.shop.flash_rt.settings.confirm_concurrency as u32;
        let span = tracing::Span::current();
        let work = move |conns: lane::Conns| {
            let mut shop = shop;
            shop.db = conns.db;
            shop.kv = conns.kv;
            let work = async move {
                let commit = Commit {
                    user: owned.user,
                    key: &owned.key,
                    order: &owned.order,
                    placed: &owned.placed,
                    token: owned.token,
                    holds: &owned.holds,
                };
                Checkout::new(&shop).commit_order_retrying(&commit).await
            };
            tracing::Instrument::instrument(work, span)
        };
        match self.shop.commit_lane.run(&self.shop.db, &self.shop.kv, connections, work).await {
            Ok(committed) => committed,
            // Nothing ran: run it here rather than refuse the customer.
            Err(lane::Refused::NotRun) => self.commit_order_retrying(commit).await,
            Err(lane::Refused::Lost) => {
                tracing::error!(order_id = %commit.order.id, "order transaction lost on the commit lane; recovery settles its claim");
                Err(Committed::InDoubt(Error::internal("the order transaction ended without an outcome")))
            }
        }
    }

    /// [`Checkout::commit_order`], run again when PostgreSQL rolled it back
    /// to break a deadlock. One cannot be ruled out by lock order alone: a
    /// mixed order takes its regular rows first and its flash sale's hot
    /// rows last (so the hot rows stay locked only for the end of the
    /// transaction), while shipping and regular orders take theirs in SKU
    /// order, and a flash SKU also sells at its regular price. The card is
    /// authorized already: the customer must not be refused for it.
    async fn commit_order_retrying(&self, commit: &Commit<'_>) -> std::result::Result<(), Committed> {
        let mut attempt = 1;
        loop {
            let mut begun = Vec::new();
            let committed = self.commit_order(commit, &mut begun).await;
            if let Err(Committed::No(err)) = &committed {
                // Surely not committed: the holds this attempt started to
                // confirm are the customer's again (for a retry, or theirs).
                self.shop.flash().unconfirm(&begun).await;
                if err.is_transaction_conflict() && attempt < ORDER_ATTEMPTS {
                    tracing::info!(order_id = %commit.order.id, attempt, error = %err, "order transaction rolled back by PostgreSQL; running it again");
                    attempt += 1;
                    continue;
                }
            }
            return committed;
        }
    }

    /// The order transaction: inventory confirmed, prices read from
    /// PostgreSQL and checked against what was authorized, order written
    /// (with its history and outbox event), the answer stored for the key.
    /// `begun` gets the flash holds it started confirming.
    async fn commit_order(&self, commit: &Commit<'_>, begun: &mut Vec<FlashHold>) -> std::result::Result<(), Committed> {
        let Commit { user, key, order, placed, token, holds } = *commit;
        let inventory = self.shop.inventory();
        let mut tx = self.shop.db.begin().await.map_err(|e| Committed::No(e.into()))?;
        let flash_skus: Vec<Uuid> = holds.iter().map(|h| h.sku_id).collect();
        let regular = order.items.iter().any(|i| !flash_skus.contains(&i.sku_id));
        let confirmation = match regular {
            true => Some(inventory.confirm_in(&mut tx, token).await.map_err(Committed::No)?),
            false => None,
        };
        self.shop.flash().confirm_in(&mut tx, user, order.id, holds, begun).await.map_err(Committed::No)?;
        // The cart priced the lines from the `sku:{id}` cache, which a reader
        // racing a price change can refill with the old price: what is
        // charged must be what PostgreSQL says now (flash lines: the sale's
        // price, checked by `confirm_in`).
        self.check_prices(&mut tx, order, &flash_skus).await.map_err(Committed::No)?;
        Orders::insert(&mut tx, order, &[OrderStatus::Placed, OrderStatus::PaymentPending, OrderStatus::Confirmed]).await.map_err(Committed::No)?;
        if !store(&mut tx, user, key, order.id, &Outcome::Placed(placed.clone())).await.map_err(Committed::No)? {
            // Recovery took this claim for a dead process's: this attempt
            // lost its reservation and must not become an order.
            return Err(Committed::No(timed_out()));
        }
        self.shop.flash().take_in(&mut tx, holds).await.map_err(Committed::No)?;
        fault::point("before_commit");
        let committed = match confirmation {
            Some(confirmation) => inventory.commit(tx, confirmation).await,
            None => tx.commit().await.map_err(Error::from),
        };
        match committed {
            Ok(()) => {
                self.shop.flash().finish(holds).await;
                Ok(())
            }
            Err(err) => {
                // A failed COMMIT may still have committed: look before
                // compensating, or we would void a paid order. If even the
                // look fails, nobody knows yet: say so, and compensate nothing.
                let exists: std::result::Result<bool, sqlx::Error> =
                    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM orders WHERE id = $1)").bind(order.id).fetch_one(&self.shop.db).await;
                match exists {
                    Ok(true) => {
                        self.shop.flash().finish(holds).await;
                        Ok(())
                    }
                    Ok(false) => Err(Committed::No(err)),
                    Err(check) => {
                        tracing::error!(order_id = %order.id, error = %err, check = %check, "order COMMIT failed and its outcome cannot be read");
                        Err(Committed::InDoubt(Error::Unavailable {
                            dependency: crate::error::Dependency::Postgres,
                            retry_after: Duration::from_secs(5),
                            source: Box::new(err),
                        }))
                    }
                }
            }
        }
    }

    /// Refuses (409 `price_changed`) an order whose lines no longer cost
    /// what the cart said, and drops the stale cache entries so the next
    /// look at the cart shows the new prices.
    async fn check_prices(&self, tx: &mut sqlx::PgConnection, order: &NewOrder, flash_skus: &[Uuid]) -> Result<()> {
        let skus: Vec<Uuid> = order.items.iter().map(|i| i.sku_id).collect();
        let prices = self.shop.catalog().prices_in(tx, &skus).await?;
        let mut total = 0;
        let mut changed = Vec::new();
        for item in &order.items {
            if flash_skus.contains(&item.sku_id) {
                total += item.unit_cents * i64::from(item.quantity);
                continue;
            }
            let (now, currency) = prices.get(&item.sku_id).cloned().ok_or(Error::NotFound { what: "SKU" })?;
            if currency != order.currency {
                return Err(Error::Rejected { code: "mixed_currency", message: "the items in this cart are priced in different currencies; check them out separately".into() });
            }
            if now != item.unit_cents {
                changed.push(json!({ "sku_id": item.sku_id, "was_cents": item.unit_cents, "now_cents": now }));
            }
            total += now * i64::from(item.quantity);
        }
        if changed.is_empty() {
            return Ok(());
        }
        let products: Vec<Uuid> = order.items.iter().map(|i| i.product_id).collect();
        if let Err(err) = self.shop.catalog().forget(&products).await {
            tracing::warn!(error = %err, "could not drop stale prices from the cache");
        }
        Err(refusal(
            "price_changed",
            &format!("prices changed while you checked out; the total is now {}", model::format_price(total, &order.currency)),
            Some(json!({ "total_cents": total, "lines": changed })),
        ))
    }

    async fn release(&self, token: Uuid) {
        if let Err(err) = self.shop.inventory().release(token).await {
            tracing::warn!(error = %err, %token, "could not release a reservation; it will expire");
        }
    }

    /// False when the provider could not be reached to void it.
    async fn void(&self, payment_id: &str) -> bool {
        match self.shop.payments().void(payment_id).await {
            Ok(_) => true,
            Err(err) => {
                tracing::error!(error = %err, payment_id, "could not void an authorization after a failed checkout");
                false
            }
        }
    }

    async fn store_refusal(&self, user: Uuid, key: &str, order_id: Uuid, err: &Error) -> Result<()> {
        let outcome = match err {
            Error::Conflict { code, message, details } => Outcome::Refused { code: (*code).to_owned(), message: message.clone(), details: details.clone() },
            Error::PaymentDeclined { decline_code, message } => Outcome::Refused {
                code: "payment_declined".into(),
                message: message.clone(),
                details: Some(json!({ "decline_code": decline_code })),
            },
            Error::Rejected { code, message } => Outcome::Refused { code: (*code).to_owned(), message: message.clone(), details: None },
            other => return Err(Error::internal(format!("not a stored refusal: {other}"))),
        };
        let mut conn = self.shop.db.acquire().await?;
        store(&mut conn, user, key, order_id, &outcome).await.map(|_| ())
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
                    return Err(idempotency::reused("checkout"))
                }
                Some((_, state, Some(sqlx::types::Json(outcome)))) if state == "done" => return Ok(Some(outcome.into_result())),
                None => return Ok(None),
                Some(_) if Instant::now() >= deadline => return Err(in_progress()),
                Some(_) => {
                    if self.shop.checkouts.wait_for(user, key, deadline).await == Waited::NotHere {
                        tokio::time::sleep(Duration::from_millis(50)).await
                    }
                }
            }
        }
    }
}

fn in_progress() -> Error {
    Error::Conflict {
        code: "checkout_in_progress",
        message: "a checkout with this Idempotency-Key is still being processed; retry shortly".into(),
        details: None,
    }
}

/// What one recovery pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RecoveryReport {
    /// Claims left `started` by a process that died, now settled.
    pub recovered: u64,
    /// Of those, authorizations voided.
    pub voided: u64,
    /// Claims whose settling failed this time (provider down, a void that
    /// keeps failing): they back off and are tried again later, while the
    /// others go through.
    pub failed: u64,
    /// Cancels a dead process left between their void and their status
    /// change, now finished.
    pub cancels_finished: u64,
}

/// Claims taken per statement, so a large backlog is worked in slices.
const RECOVERY_BATCH: i64 = 100;
/// The first retry of a failing claim waits this long, doubling per
/// failure up to [`RECOVERY_MAX_BACKOFF`].
const RECOVERY_BACKOFF: Duration = Duration::from_secs(5);
const RECOVERY_MAX_BACKOFF: Duration = Duration::from_secs(60 * 60);

impl Checkout<'_> {
    /// Settles checkouts a dead process left half-way: claims still
    /// `started` after `older_than` (no live checkout takes that long), and
    /// claims an earlier pass could not finish, once their back-off is over.
    ///
    /// One short statement takes a batch: each claim becomes `recovering`
    /// with a lease (its next attempt time), and the statement's row locks
    /// end with it. The provider is called after that, outside any lock: a
    /// live checkout that was only slow finds its claim no longer `started`
    /// when it stores its answer, and rolls back. Several processes may
    /// recover at once: SKIP LOCKED and the lease give each claim to one.
    /// A claim whose void fails keeps its lease (doubling each time) and
    /// the pass goes on with the others, so one poison claim blocks nothing.
    pub async fn recover(&self, older_than: Duration) -> Result<RecoveryReport> {
        let mut report = RecoveryReport::default();
        loop {
            let taken: Vec<(Uuid, String, Uuid, Uuid, Option<String>)> = sqlx::query_as(
                "WITH due AS ( \
                     SELECT user_id, idempotency_key FROM checkout_requests \
                     WHERE (state = 'started' AND updated_at < now() - make_interval(secs => $1)) \
                        OR (state = 'recovering' AND next_attempt_at <= now()) \
                     ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
                 UPDATE checkout_requests c SET state = 'recovering', recovery_attempts = c.recovery_attempts + 1, \
                     next_attempt_at = now() + least(make_interval(secs => $3 * power(2, c.recovery_attempts)), make_interval(secs => $4)) \
                 FROM due WHERE c.user_id = due.user_id AND c.idempotency_key = due.idempotency_key \
                 RETURNING c.user_id, c.idempotency_key, c.order_id, c.reservation_token, c.payment_id",
            )
            .bind(older_than.as_secs_f64())
            .bind(RECOVERY_BATCH)
            .bind(RECOVERY_BACKOFF.as_secs_f64())
            .bind(RECOVERY_MAX_BACKOFF.as_secs_f64())
            .fetch_all(&self.shop.db)
            .await?;
            let batch = taken.len() as i64;
            for (user, key, order_id, token, payment_id) in taken {
                match self.settle_claim(user, &key, order_id, token, payment_id.as_deref()).await {
                    Ok(voided) => {
                        report.recovered += 1;
                        report.voided += u64::from(voided);
                        tracing::warn!(%order_id, %user, payment_id = payment_id.as_deref().unwrap_or(""), "recovered a checkout left half-way by a dead process");
                    }
                    Err(err) => {
                        report.failed += 1;
                        tracing::warn!(%order_id, %user, error = %err, "could not settle a half-way checkout; backing off");
                        let noted = sqlx::query("UPDATE checkout_requests SET last_error = $4 WHERE user_id = $1 AND idempotency_key = $2 AND order_id = $3")
                            .bind(user)
                            .bind(&key)
                            .bind(order_id)
                            .bind(err.to_string())
                            .execute(&self.shop.db)
                            .await;
                        if let Err(err) = noted {
                            tracing::warn!(error = %err, "could not record a recovery failure");
                        }
                    }
                }
            }
            if batch < RECOVERY_BATCH {
                break;
            }
        }
        report.cancels_finished = self.finish_cancels(older_than).await?;
        Ok(report)
    }

    /// Voids a taken claim's intent, releases its reservation and deletes
    /// the claim (the customer's retry runs again). True when it voided.
    async fn settle_claim(&self, user: Uuid, key: &str, order_id: Uuid, token: Uuid, payment_id: Option<&str>) -> Result<bool> {
        if let Some(payment_id) = payment_id {
            self.shop.payments().void(payment_id).await?;
        }
        self.shop.inventory().release(token).await?;
        sqlx::query("DELETE FROM checkout_requests WHERE user_id = $1 AND idempotency_key = $2 AND order_id = $3 AND state = 'recovering'")
            .bind(user)
            .bind(key)
            .bind(order_id)
            .execute(&self.shop.db)
            .await?;
        Ok(payment_id.is_some())
    }
}

/// Fault injection for the crash tests: `MERCATO_FAULT_POINT=<name>` makes
/// the process abort (no unwinding, no cleanup: as if killed) when checkout
/// reaches that point, or the outbox relay (`relay_after_publish`) or the
/// notifier (`notifications_before_send`, `notifications_after_send`).
/// Unset in any real deployment.
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
                "authentication_required" => Error::Rejected { code: "authentication_required", message },
                "mixed_currency" => Error::Rejected { code: "mixed_currency", message },
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
/// Recovery took this attempt's claim: it ran longer than
/// `MERCATO_CHECKOUT_RECOVERY_SECS`, so recovery voided its authorization
/// and released its units as if its process had died. The customer may
/// send it again (the key is free once recovery is done).
fn timed_out() -> Error {
    refusal("checkout_timed_out", "this checkout took too long and was undone, nothing was charged; please send it again", None)
}

fn static_code(code: &str) -> &'static str {
    ["out_of_stock", "price_changed", "cart_empty"].into_iter().find(|c| *c == code).unwrap_or("conflict")
}

fn refusal(code: &'static str, message: &str, details: Option<serde_json::Value>) -> Error {
    Error::Conflict { code, message: message.to_owned(), details }
}

/// Answers the customer caused: the same request would get the same answer.
/// `reservation_expired` is not one: the hold ran out while *we* were slow,
/// so the key is freed and the retry runs again.
fn stored_refusal(err: &Error) -> bool {
    matches!(
        err,
        Error::PaymentDeclined { .. }
            | Error::Conflict { code: "out_of_stock" | "price_changed" | "cart_empty", .. }
            | Error::Rejected { code: "authentication_required" | "mixed_currency", .. }
    )
}

/// What the order transaction writes: the customer, their key, the order
/// and its answer, the reservation of its regular lines, its flash holds.
#[derive(Clone, Copy)]
struct Commit<'a> {
    user: Uuid,
    key: &'a str,
    order: &'a NewOrder,
    placed: &'a Placed,
    token: Uuid,
    holds: &'a [FlashHold],
}

/// A [`Commit`] that owns what it refers to, to send to the commit lane.
struct OwnedCommit {
    user: Uuid,
    key: String,
    order: NewOrder,
    placed: Placed,
    token: Uuid,
    holds: Vec<FlashHold>,
}

/// How the order transaction ended, when it did not commit for sure.
enum Committed {
    /// It did not commit: compensate.
    No(Error),
    /// The COMMIT failed and its outcome could not be read: compensate
    /// nothing; recovery settles it from the claim.
    InDoubt(Error),
}

/// Stores the answer on this attempt's claim while it is still `started`;
/// false when recovery took it (or it is gone).
async fn store(conn: &mut sqlx::PgConnection, user: Uuid, key: &str, order_id: Uuid, outcome: &Outcome) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE checkout_requests SET state = 'done', outcome = $4, updated_at = now() \
         WHERE user_id = $1 AND idempotency_key = $2 AND order_id = $3 AND state = 'started'",
    )
    .bind(user)
    .bind(key)
    .bind(order_id)
    .bind(sqlx::types::Json(outcome))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(done == 1)
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
    ///
    /// The intent to cancel is recorded first (`cancel_requested_at`), then
    /// the payment is voided, then the status changes: a process that dies
    /// after the void leaves a trail that recovery finishes, never a
    /// CONFIRMED order whose payment is gone. A provider that is down
    /// leaves the request recorded (503 now; recovery finishes it later).
    pub async fn cancel(&self, user: Uuid, order_id: Uuid) -> Result<model::OrderView> {
        let view = self.shop.orders().get(user, order_id).await?;
        if view.status == OrderStatus::Cancelled {
            return Ok(view);
        }
        if !view.status.cancellable() {
            return Err(not_cancellable(view.status));
        }
        let recorded = sqlx::query(
            "UPDATE orders SET cancel_requested_at = coalesce(cancel_requested_at, now()) WHERE id = $1 AND user_id = $2 AND status = ANY($3)",
        )
        .bind(order_id)
        .bind(user)
        .bind(cancellable_statuses())
        .execute(&self.shop.db)
        .await?
        .rows_affected();
        if recorded == 0 {
            // It moved on meanwhile (cancelled by a concurrent request, or shipped).
            let now = self.shop.orders().get(user, order_id).await?;
            return if now.status == OrderStatus::Cancelled { Ok(now) } else { Err(not_cancellable(now.status)) };
        }
        fault::point("after_cancel_recorded");
        self.finish_cancel(order_id).await?;
        self.shop.orders().get(user, order_id).await
    }

    /// Cancels an order on the shop's side (the warehouse found nothing to
    /// pick): the same recorded-intent path as a customer's cancel, so a
    /// crash half-way is finished by the same recovery. Refused (409) for
    /// an order that is no longer cancellable (it shipped).
    pub async fn cancel_by_shop(&self, order_id: Uuid) -> Result<()> {
        let recorded = sqlx::query(
            "UPDATE orders SET cancel_requested_at = coalesce(cancel_requested_at, now()) WHERE id = $1 AND status = ANY($2)",
        )
        .bind(order_id)
        .bind(cancellable_statuses())
        .execute(&self.shop.db)
        .await?
        .rows_affected();
        if recorded == 0 {
            let status: Option<String> = sqlx::query_scalar("SELECT status FROM orders WHERE id = $1").bind(order_id).fetch_optional(&self.shop.db).await?;
            return match status.as_deref().and_then(OrderStatus::parse) {
                None => Err(Error::NotFound { what: "order" }),
                Some(OrderStatus::Cancelled) => Ok(()),
                Some(status) => Err(not_cancellable(status)),
            };
        }
        self.finish_cancel(order_id).await
    }

    /// The second half of a recorded cancel: void (or refund) at the
    /// provider, then CANCELLED and the units back in one transaction.
    /// Idempotent: provider calls replay by key, and only the first status
    /// change returns the units.
    async fn finish_cancel(&self, order_id: Uuid) -> Result<()> {
        let (status, payment_id): (String, Option<String>) =
            sqlx::query_as("SELECT status, payment_id FROM orders WHERE id = $1").bind(order_id).fetch_one(&self.shop.db).await?;
        match OrderStatus::parse(&status) {
            Some(OrderStatus::Cancelled) => return Ok(()),
            // Never void the payment of an order that has moved on (shipped).
            Some(status) if !status.cancellable() => return Err(not_cancellable(status)),
            _ => {}
        }
        if let Some(payment_id) = &payment_id {
            let payments = self.shop.payments();
            match payments.retrieve(payment_id).await?.status.as_str() {
                "canceled" => {}
                "succeeded" => payments.refund(payment_id).await?,
                _ => {
                    payments.cancel(payment_id).await?;
                }
            }
        }
        fault::point("after_cancel_void");
        let items: Vec<(Uuid, i32)> = sqlx::query_as("SELECT sku_id, quantity FROM order_items WHERE order_id = $1").bind(order_id).fetch_all(&self.shop.db).await?;
        let lines: Vec<Line> = items.into_iter().map(|(sku_id, quantity)| Line { sku_id, quantity: quantity as u32 }).collect();
        let mut tx = self.shop.db.begin().await?;
        match Orders::transition(&mut tx, order_id, OrderStatus::Cancelled).await {
            Ok(_) => {}
            // A concurrent finish got there first.
            Err(Error::Conflict { code: "illegal_transition", .. }) => return Ok(()),
            Err(err) => return Err(err),
        }
        // Units bought in a flash sale that is still running go back to
        // that sale (and its line), the rest to normal stock.
        let (to_stock, returned) = self.shop.flash().order_cancelled_in(&mut tx, order_id, &lines).await?;
        tx.commit().await?;
        self.shop.inventory().after_unconfirm(&to_stock).await;
        self.shop.flash().after_order_cancelled(&returned).await;
        Ok(())
    }

    /// Finishes cancels recorded more than `older_than` ago whose process
    /// died (or whose provider was down) before the status changed. One
    /// that fails again is left for the next pass; the others go on.
    async fn finish_cancels(&self, older_than: Duration) -> Result<u64> {
        let pending: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM orders WHERE cancel_requested_at IS NOT NULL AND status NOT IN ('CANCELLED', 'REFUNDED') \
             AND status = ANY($2) AND cancel_requested_at < now() - make_interval(secs => $1) ORDER BY cancel_requested_at LIMIT 1000",
        )
        .bind(older_than.as_secs_f64())
        .bind(cancellable_statuses())
        .fetch_all(&self.shop.db)
        .await?;
        let mut finished = 0;
        for order_id in pending {
            match self.finish_cancel(order_id).await {
                Ok(()) => {
                    finished += 1;
                    tracing::warn!(%order_id, "finished a cancel left half-way");
                }
                Err(err) => tracing::warn!(%order_id, error = %err, "could not finish a recorded cancel; retrying next pass"),
            }
        }
        Ok(finished)
    }
}

fn cancellable_statuses() -> Vec<&'static str> {
    OrderStatus::ALL.into_iter().filter(|s| s.cancellable()).map(|s| s.as_str()).collect()
}

fn not_cancellable(status: OrderStatus) -> Error {
    Error::Conflict {
        code: "illegal_transition",
        message: format!("this order is {status} and can no longer be cancelled"),
        details: Some(json!({ "status": status })),
    }
}
