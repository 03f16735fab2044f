//! Set-asides: units carved out of a SKU's sale for a purpose of their own
//! (a flash sale), as one DB-path hold whose token the owner chooses.
//!
//! The hold lives in `inventory_reservations` and `held` like any DB-path
//! hold, so every invariant of the module holds unchanged (counter =
//! stock − reserved − held − Redis holds; reconciliation reads `held`), and
//! the sweeper returns it if its owner never does. What is new: its owner
//! takes units out of it one order at a time ([`take_in`]: held → reserved,
//! the counter does not move), gives units back into it ([`put_back_in`]),
//! and releases the rest with [`Inventory::release`].
//!
//! Taking the set-aside must not count units Redis holds live for
//! checkouts, which PostgreSQL cannot see: so while Redis is in use the
//! loaded counter is lowered by a script that refuses to go below zero,
//! under the row lock the UPDATE took, and the caller commits through
//! [`commit`], which rewrites the counter if the COMMIT fails.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{counters, out_of_stock, scripts, Inventory, Line};
use crate::{Error, Result};

/// A set-aside written into a transaction, waiting for [`commit`]. Holds
/// the DB-path gate, so the rebuild that brings Redis back cannot read the
/// row between this change and its commit.
pub struct SetAside<'a> {
    sku: Uuid,
    mirrored: bool,
    _gate: tokio::sync::RwLockReadGuard<'a, ()>,
}

pub(super) async fn set_aside_in<'a>(
    inv: &Inventory<'a>,
    tx: &mut PgConnection,
    token: Uuid,
    sku: Uuid,
    quantity: u32,
    until: DateTime<Utc>,
) -> Result<SetAside<'a>> {
    if quantity == 0 || quantity > super::MAX_QUANTITY * 100 {
        return Err(Error::Invalid(format!("a set-aside holds 1 to {} units", super::MAX_QUANTITY * 100)));
    }
    let shop = inv.shop;
    // Load the counter first: loading takes the row FOR SHARE in a
    // transaction of its own, which would wait on the lock taken below.
    if inv.redis_usable_now() {
        counters::available(shop, &[sku]).await?;
    }
    let gate = shop.inventory_rt.db_gate.read().await;
    let taken = sqlx::query(
        "UPDATE inventory SET held = held + $2, version = version + 1, updated_at = now() \
         WHERE sku_id = $1 AND stock_count - reserved - held >= $2",
    )
    .bind(sku)
    .bind(quantity as i32)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if taken == 0 {
        let available: Option<i64> = sqlx::query_scalar("SELECT (stock_count - reserved - held)::bigint FROM inventory WHERE sku_id = $1")
            .bind(sku)
            .fetch_optional(&mut *tx)
            .await?;
        return Err(match available {
            Some(available) => out_of_stock(sku, quantity, available),
            None => Error::NotFound { what: "SKU" },
        });
    }
    sqlx::query("INSERT INTO inventory_reservations (token, lines, expires_at) VALUES ($1, $2, $3)")
        .bind(token)
        .bind(sqlx::types::Json([Line { sku_id: sku, quantity }]))
        .bind(until)
        .execute(&mut *tx)
        .await?;
    let mut mirrored = false;
    if inv.redis_usable_now() {
        let reply: redis::RedisResult<Vec<String>> = scripts::TAKE
            .prepare_invoke()
            .arg(shop.kv.prefix())
            .arg(sku.to_string())
            .arg(quantity)
            .invoke_async(&mut shop.kv.conn())
            .await;
        match reply {
            Ok(reply) if reply.first().map(String::as_str) == Some("SHORT") => {
                let available = reply.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
                return Err(out_of_stock(sku, quantity, available));
            }
            Ok(reply) => mirrored = reply.first().map(String::as_str) == Some("OK"),
            Err(err) => {
                // The script may or may not have run: no Redis reservation
                // until a rebuild has read PostgreSQL again.
                tracing::warn!(error = %err, %token, "set-aside not mirrored in Redis; no more Redis reservations until the counters are rebuilt");
                shop.inventory_rt.breaker.trip();
            }
        }
    }
    Ok(SetAside { sku, mirrored, _gate: gate })
}

pub(super) async fn commit(inv: &Inventory<'_>, tx: sqlx::Transaction<'_, sqlx::Postgres>, set_aside: SetAside<'_>) -> Result<()> {
    if let Err(err) = tx.commit().await {
        if set_aside.mirrored {
            counters::resync(inv.shop, &[set_aside.sku]).await;
        }
        return Err(err.into());
    }
    Ok(())
}

/// `UPDATE` of the set-aside's one line by `delta` units, refused when it
/// would go below zero.
const MOVE_LINE: &str = "UPDATE inventory_reservations \
     SET lines = jsonb_build_array(jsonb_build_object('sku_id', $2::uuid, 'quantity', (lines->0->>'quantity')::int + $3)) \
     WHERE token = $1 AND (lines->0->>'sku_id')::uuid = $2 AND (lines->0->>'quantity')::int + $3 >= 0";

/// Moves `quantity` units of the set-aside `token` into `reserved` (an
/// order from it) when the caller's transaction commits: the take is
/// recorded now and applied by a deferred trigger inside the COMMIT
/// (migration `set_aside_takes_at_commit` says why). The set-aside row is
/// locked before the inventory row, the order every DB-path change keeps.
/// A set-aside with fewer units left fails the COMMIT, which
/// [`commit_refusal`] turns into `out_of_stock`: what keeps a sale from
/// ever selling more than it set aside.
pub(super) async fn take_in(tx: &mut PgConnection, token: Uuid, sku: Uuid, quantity: u32) -> Result<()> {
    sqlx::query("INSERT INTO inventory_set_aside_takes (token, sku_id, quantity) VALUES ($1, $2, $3)")
        .bind(token)
        .bind(sku)
        .bind(quantity as i32)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// What a COMMIT that failed on a take ([`take_in`]) means to the
/// customer; `None` for any other failure.
pub(crate) fn commit_refusal(err: &sqlx::Error) -> Option<Error> {
    let sqlx::Error::Database(db) = err else { return None };
    match db.code().as_deref() {
        Some("MS001") => Some(Error::Conflict {
            code: "out_of_stock",
            message: "this flash sale has no units left for this order".into(),
            details: None,
        }),
        Some("MS002") => Some(Error::internal(db.message().to_owned())),
        _ => None,
    }
}

/// The reverse of [`take_in`]: units of a cancelled order go back into the
/// set-aside (reserved → held). False when the set-aside is gone (its
/// remainder was already returned to stock): the caller returns the units
/// to normal stock instead.
pub(super) async fn put_back_in(tx: &mut PgConnection, token: Uuid, sku: Uuid, quantity: u32) -> Result<bool> {
    let q = quantity as i32;
    let moved = sqlx::query(MOVE_LINE).bind(token).bind(sku).bind(q).execute(&mut *tx).await?.rows_affected();
    if moved != 1 {
        return Ok(false);
    }
    let done = sqlx::query(
        "UPDATE inventory SET held = held + $2, reserved = reserved - $2, version = version + 1, updated_at = now() \
         WHERE sku_id = $1 AND reserved >= $2",
    )
    .bind(sku)
    .bind(q)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if done != 1 {
        return Err(Error::internal(format!("SKU {sku} has fewer units in orders than an order returns")));
    }
    Ok(true)
}

/// Units left in a set-aside (`None`: it is gone).
pub(super) async fn left(db: &sqlx::PgPool, token: Uuid) -> Result<Option<i64>> {
    let left: Option<i32> = sqlx::query_scalar("SELECT (lines->0->>'quantity')::int FROM inventory_reservations WHERE token = $1")
        .bind(token)
        .fetch_optional(db)
        .await?;
    Ok(left.map(i64::from))
}
