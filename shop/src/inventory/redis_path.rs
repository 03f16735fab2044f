//! The fast path: reservations live in Redis, taken and given back by the
//! Lua scripts in `scripts.rs`. PostgreSQL is touched only to load a cold
//! counter and to settle a confirmation that stalled.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

use super::{counters, out_of_stock, reservation_ended, scripts, Fail, HoldPath, HoldState, Inventory, Line, Released, Reservation, SweepReport};
use crate::{Error, Shop};

/// A reply's first element says what happened; the rest are details.
fn head(reply: &[String]) -> &str {
    reply.first().map(String::as_str).unwrap_or("")
}

/// How often a reservation retries after loading a cold counter: once per
/// line at most, since each retry loads one more SKU.
const LOAD_RETRIES: usize = super::MAX_LINES + 1;

/// What the Redis path made of a reservation.
pub(super) enum Reserved {
    Held(Reservation),
    /// Redis will never hold this token (its record is `void`): the DB
    /// path may, under the same token.
    Fenced,
    /// The script call failed after it may have run: Redis may hold the
    /// units while the caller never heard. [`settle_reserve`] before anything else.
    InDoubt(redis::RedisError),
    /// A counter is not loaded and the breaker is not closed: nothing was
    /// held, and Redis may not be used until the probe's rebuild is done.
    Cold,
}

pub(super) async fn reserve(shop: &Shop, token: Uuid, lines: &[Line], ttl: Duration) -> Result<Reserved, Fail> {
    for _ in 0..LOAD_RETRIES {
        let mut call = scripts::RESERVE.prepare_invoke();
        call.arg(shop.kv.prefix())
            .arg(token.to_string())
            .arg(ttl.as_millis() as u64)
            .arg(random_start());
        for line in lines {
            call.arg(line.sku_id.to_string()).arg(line.quantity);
        }
        let reply: Vec<String> = match call.invoke_async(&mut shop.kv.conn()).await {
            Ok(reply) => reply,
            // A refused connection never carried the call; anything else
            // (a timeout, a connection dropped mid-call) may have lost
            // only the reply.
            Err(err) if super::is_outage(&err) && !err.is_connection_refusal() => return Ok(Reserved::InDoubt(err)),
            Err(err) => return Err(err.into()),
        };
        match head(&reply) {
            "OK" | "DUP" => return found(token, &reply[1..]),
            "SHORT" => {
                let sku = parse_uuid(&reply[1])?;
                let requested = lines.iter().find(|l| l.sku_id == sku).map_or(0, |l| l.quantity);
                return Err(out_of_stock(sku, requested, reply[2].parse().unwrap_or(0)).into());
            }
            "MISSING" => {
                let sku = parse_uuid(&reply[1])?;
                // A call let through before the breaker opened can reach a
                // Redis that came back empty before the probe's rebuild
                // closed the breaker. Loading the counter then would let it
                // hold units the DB path, still in use and blind to Redis
                // holds, goes on selling: an oversell no rebuild can undo.
                // A counter is only loaded while the breaker is closed,
                // which happens only under the rebuild's exclusive gate, so
                // every DB-path hold after the load is mirrored into it.
                if shop.inventory_rt.breaker.state() != crate::breaker::State::Closed {
                    tracing::debug!(%sku, %token, "counter not loaded and the breaker not closed: the DB path");
                    return Ok(Reserved::Cold);
                }
                counters::load(shop, &[sku]).await?;
                let loaded = counters::available(shop, &[sku]).await?;
                if loaded == [0] && !sku_exists(shop, sku).await? {
                    return Err(Error::NotFound { what: "SKU" }.into());
                }
            }
            other => return Err(Error::internal(format!("reserve script answered {other:?}")).into()),
        }
    }
    Err(Error::internal("reserve: counters would not load").into())
}

/// A record's `state, exp, lines` as the reservation it stands for.
fn found(token: Uuid, fields: &[String]) -> Result<Reserved, Fail> {
    let state = match fields.first().map(String::as_str) {
        Some("held") => HoldState::Held,
        Some("confirming") => HoldState::Confirming,
        Some("confirmed") => HoldState::Confirmed,
        Some("void") => return Ok(Reserved::Fenced),
        _ => return Err(reservation_ended(token).into()),
    };
    let expires_at = millis(fields.get(1).and_then(|v| v.parse().ok()).unwrap_or(0));
    let lines = parse_lines(fields.get(2).map_or("", String::as_str));
    Ok(Reserved::Held(Reservation { token, lines, expires_at, path: HoldPath::Redis, state }))
}

/// How often, and how far apart, [`settle_reserve`] asks Redis before giving up: a
/// dropped connection is usually back within a reconnect.
const SETTLE_TRIES: u32 = 3;
const SETTLE_PAUSE: Duration = Duration::from_millis(50);

/// Settles a reservation [`Reserved::InDoubt`]: the hold the lost call made
/// if it ran ([`Reserved::Held`]), else [`Reserved::Fenced`], after which
/// the call can no longer hold anything even if Redis has yet to run it.
/// An error means Redis did not answer: the token stays in doubt.
pub(super) async fn settle_reserve(shop: &Shop, token: Uuid, ttl: Duration) -> Result<Reserved, Fail> {
    let mut last = None;
    for attempt in 0..SETTLE_TRIES {
        if attempt > 0 {
            tokio::time::sleep(SETTLE_PAUSE * attempt).await;
        }
        let reply: redis::RedisResult<Vec<String>> = scripts::FENCE
            .prepare_invoke()
            .arg(shop.kv.prefix())
            .arg(token.to_string())
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut shop.kv.conn())
            .await;
        match reply {
            Ok(reply) if head(&reply) == "FENCED" => return Ok(Reserved::Fenced),
            Ok(reply) if head(&reply) == "FOUND" => return found(token, &reply[1..]),
            Ok(reply) => return Err(Error::internal(format!("fence script answered {reply:?}")).into()),
            Err(err) if super::is_outage(&err) => last = Some(err),
            Err(err) => return Err(err.into()),
        }
    }
    Err(Fail::Redis(last.unwrap_or_else(super::breaker_open)))
}

async fn sku_exists(shop: &Shop, sku: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM inventory WHERE sku_id = $1)").bind(sku).fetch_one(&shop.db).await
}

/// `Ok(None)`: Redis has no such reservation (it may be a DB-path one).
pub(super) async fn release(shop: &Shop, token: Uuid) -> Result<Option<Released>, Fail> {
    let reply = give_back(shop, token, "release").await?;
    match head(&reply) {
        "OK" => Ok(Some(Released::Returned)),
        "NONE" => Ok(None),
        _ => match reply[1].as_str() {
            // Fenced off: any hold under this token is on the DB path.
            "void" => Ok(None),
            "confirmed" => Ok(Some(Released::AlreadyConfirmed)),
            // A confirmation started and did not finish (its transaction
            // failed, or is still running): PostgreSQL decides.
            "confirming" => settle(shop, token, "released").await.map(Some),
            _ => Ok(Some(Released::Nothing)),
        },
    }
}

pub(super) async fn give_back(shop: &Shop, token: Uuid, mode: &str) -> redis::RedisResult<Vec<String>> {
    scripts::GIVE_BACK
        .prepare_invoke()
        .arg(shop.kv.prefix())
        .arg(token.to_string())
        .arg(mode)
        .invoke_async(&mut shop.kv.conn())
        .await
}

/// Settles a confirming reservation by PostgreSQL's record: inserting the
/// outcome waits for any confirmation transaction still holding the token,
/// and whichever wrote first wins.
async fn settle(shop: &Shop, token: Uuid, outcome: &str) -> Result<Released, Fail> {
    let lines: Option<String> = redis::cmd("HGET")
        .arg(shop.kv.key(&format!("inv:res:{{{token}}}")))
        .arg("lines")
        .query_async(&mut shop.kv.conn())
        .await?;
    let lines = parse_lines(lines.as_deref().unwrap_or(""));
    let decided = super::db_path::decide(&shop.db, token, outcome, &lines).await?;
    if decided == "confirmed" {
        finish_confirm(shop, token).await?;
        return Ok(Released::AlreadyConfirmed);
    }
    let reply = give_back(shop, token, "abort").await?;
    Ok(if head(&reply) == "OK" { Released::Returned } else { Released::Nothing })
}

pub(super) enum Begin {
    Started(Vec<Line>),
    AlreadyConfirmed,
    NotHere,
}

pub(super) async fn begin_confirm(shop: &Shop, token: Uuid, grace: Duration) -> Result<Begin, Fail> {
    let reply: Vec<String> = scripts::BEGIN_CONFIRM
        .prepare_invoke()
        .arg(shop.kv.prefix())
        .arg(token.to_string())
        .arg(grace.as_millis() as u64)
        .invoke_async(&mut shop.kv.conn())
        .await?;
    match head(&reply) {
        "OK" => Ok(Begin::Started(parse_lines(&reply[1]))),
        "NONE" | "VOID" => Ok(Begin::NotHere),
        "CONFIRMED" => Ok(Begin::AlreadyConfirmed),
        _ => Err(reservation_ended(token).into()),
    }
}

pub(super) async fn finish_confirm(shop: &Shop, token: Uuid) -> redis::RedisResult<()> {
    let reply: Vec<String> = scripts::FINISH_CONFIRM
        .prepare_invoke()
        .arg(shop.kv.prefix())
        .arg(token.to_string())
        .invoke_async(&mut shop.kv.conn())
        .await?;
    if head(&reply) != "OK" {
        tracing::warn!(%token, state = ?reply.get(1), "confirmation finished on a reservation Redis no longer holds");
    }
    Ok(())
}

const SWEEP_BATCH: u64 = 500;

pub(super) async fn sweep(inv: &Inventory<'_>) -> Result<SweepReport, Fail> {
    let shop = inv.shop;
    let mut report = SweepReport::default();
    loop {
        let due: Vec<String> = scripts::DUE_TOKENS
            .prepare_invoke()
            .arg(shop.kv.prefix())
            .arg(SWEEP_BATCH)
            .invoke_async(&mut shop.kv.conn())
            .await?;
        if due.is_empty() {
            return Ok(report);
        }
        let mut progressed = false;
        for raw in &due {
            let token = parse_uuid(raw)?;
            let reply = give_back(shop, token, "expire").await?;
            match (head(&reply), reply.get(1).map(String::as_str)) {
                ("OK", _) => {
                    report.expired += 1;
                    progressed = true;
                }
                ("SKIP", Some("confirming")) => {
                    // Its confirmation outlived the grace period: the
                    // process probably died mid-checkout.
                    settle(shop, token, "expired").await?;
                    report.settled += 1;
                    progressed = true;
                }
                ("SKIP", Some("live")) => {}
                _ => progressed = true, // already ended: the script dropped it from the queue
            }
        }
        if !progressed || (due.len() as u64) < SWEEP_BATCH {
            return Ok(report);
        }
    }
}

/// Parses a record's `"<sku> <shard> <qty>,…"` into one line per SKU.
pub(super) fn parse_lines(raw: &str) -> Vec<Line> {
    let mut lines: Vec<Line> = Vec::new();
    for part in raw.split(',').filter(|p| !p.is_empty()) {
        let mut fields = part.split(' ');
        let (Some(sku), Some(_shard), Some(qty)) = (fields.next(), fields.next(), fields.next()) else { continue };
        let (Ok(sku_id), Ok(quantity)) = (Uuid::try_parse(sku), qty.parse::<u32>()) else { continue };
        match lines.iter_mut().find(|l| l.sku_id == sku_id) {
            Some(line) => line.quantity += quantity,
            None => lines.push(Line { sku_id, quantity }),
        }
    }
    lines.sort_by_key(|l| l.sku_id);
    lines
}

fn parse_uuid(raw: &str) -> Result<Uuid, Fail> {
    Uuid::try_parse(raw).map_err(|_| Fail::Shop(Error::internal(format!("inventory script returned a bad id {raw:?}"))))
}

fn millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_else(Utc::now)
}

/// Where a sharded reservation starts looking: spreads concurrent
/// reservations over the shards.
fn random_start() -> u32 {
    (Uuid::new_v4().as_u128() & 0xffff) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_lines_merge_shard_pieces() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        let lines = parse_lines(&format!("{b} 3 2,{a} -1 1,{b} 4 1"));
        assert_eq!(lines, vec![Line { sku_id: a, quantity: 1 }, Line { sku_id: b, quantity: 3 }]);
        assert!(parse_lines("").is_empty());
    }
}
