//! Live figures: once a second per running sale, whichever process gets
//! there first (a `SET NX` on the second) samples the sale's counters and
//! appends one entry to the stream `flash:{<sale>}:live` (an hour kept).
//! The seller's Server-Sent Events read that stream: every viewer in every
//! process sees the same events with the same ids, so `Last-Event-ID`
//! resumes exactly where a dropped connection stopped.
//!
//! Rates are the difference of cumulative counters between two samples
//! over the time between them. Reserve latency is a histogram in the
//! sale's hash `lat` (10 % wide buckets of microseconds, one HINCRBY per
//! buy, cumulative since the pre-load); `oversold` is PostgreSQL's: units
//! confirmed into orders beyond the quantity.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use model::flash::FlashLive;
use uuid::Uuid;

use super::schedule::stats;
use super::{int, rfc3339, scripts, Flash, Row};
use crate::{Error, Result, Shop};

/// Entries kept per sale: an hour of samples.
const KEEP: usize = 3_600;
/// Each latency bucket is this much wider than the one before.
const BUCKET_RATIO: f64 = 1.1;

pub(super) async fn observe_latency(shop: &Shop, key: &str, elapsed: Duration) {
    let micros = (elapsed.as_micros() as f64).max(1.0);
    let bucket = (micros.ln() / BUCKET_RATIO.ln()).floor() as i64;
    let done: redis::RedisResult<i64> = redis::cmd("HINCRBY").arg(key).arg(bucket).arg(1).query_async(&mut shop.kv.conn()).await;
    if let Err(err) = done {
        tracing::debug!(error = %err, "flash latency not recorded");
    }
}

/// The `p` quantile (0..1) of a bucket histogram, in milliseconds (the
/// bucket's middle); 0 when empty.
fn quantile(buckets: &HashMap<i64, i64>, p: f64) -> f64 {
    let total: i64 = buckets.values().sum();
    if total == 0 {
        return 0.0;
    }
    let mut sorted: Vec<(i64, i64)> = buckets.iter().map(|(b, n)| (*b, *n)).collect();
    sorted.sort();
    let rank = (p * total as f64).ceil().max(1.0) as i64;
    let mut seen = 0;
    for (bucket, n) in sorted {
        seen += n;
        if seen >= rank {
            let micros = BUCKET_RATIO.powf(bucket as f64 + 0.5);
            return (micros / 10.0).round() / 100.0;
        }
    }
    0.0
}

/// Samples the sale if no process did this second; true when this one did.
pub(super) async fn sample(flash: &Flash<'_>, row: &Row) -> Result<bool> {
    let now = Utc::now();
    let mut conn = flash.shop.kv.conn();
    let claimed: Option<String> = redis::cmd("SET")
        .arg(flash.key(row.id, &format!("sampled:{}", now.timestamp())))
        .arg(1)
        .arg("NX")
        .arg("EX")
        .arg(5)
        .query_async(&mut conn)
        .await?;
    if claimed.is_none() {
        return Ok(false);
    }
    let figures: Vec<String> = flash.invoke(&scripts::FIGURES, row.id).invoke_async(&mut conn).await?;
    let stat = stats(&figures);
    let now_ms = now.timestamp_millis();
    let last_key = flash.key(row.id, "last");
    let last: HashMap<String, i64> = redis::cmd("HGETALL").arg(&last_key).query_async(&mut conn).await?;
    let (reservations, orders, rejected) = (stat("reservations"), stat("orders"), stat("rejected"));
    let seconds = last.get("at").map_or(0.0, |at| (now_ms - at) as f64 / 1000.0);
    let rate = |name: &str, now: i64| {
        if seconds <= 0.0 {
            return 0.0;
        }
        let before = last.get(name).copied().unwrap_or(now);
        (((now - before) as f64 / seconds) * 10.0).round() / 10.0
    };
    let lat: HashMap<i64, i64> = redis::cmd("HGETALL").arg(flash.key(row.id, "lat")).query_async(&mut conn).await?;
    let sold = flash.sold(row.id).await?;
    let event = FlashLive {
        sale_id: row.id,
        status: row.status(),
        at: rfc3339(now),
        remaining: if figures.first().map(String::as_str) == Some("n") { i64::from(row.quantity) - sold } else { int(&figures, 0) }.max(0),
        reservations_per_s: rate("reservations", reservations),
        orders_per_s: rate("orders", orders),
        rejections_per_s: rate("rejected", rejected),
        waitlist: int(&figures, 1),
        promotions: stat("promoted"),
        reserve_p50_ms: quantile(&lat, 0.50),
        reserve_p99_ms: quantile(&lat, 0.99),
        sold,
        oversold: (sold - i64::from(row.quantity)).max(0),
    };
    let json = serde_json::to_string(&event).map_err(Error::internal)?;
    let _: () = redis::pipe()
        .cmd("XADD")
        .arg(flash.key(row.id, "live"))
        .arg("MAXLEN")
        .arg("~")
        .arg(KEEP)
        .arg("*")
        .arg("data")
        .arg(json)
        .ignore()
        .cmd("HSET")
        .arg(&last_key)
        .arg("at")
        .arg(now_ms)
        .arg("reservations")
        .arg(reservations)
        .arg("orders")
        .arg(orders)
        .arg("rejected")
        .arg(rejected)
        .ignore()
        .query_async(&mut conn)
        .await?;
    Ok(true)
}

type Entries = Vec<(String, HashMap<String, String>)>;

/// Events after `after` (exclusive; at most 100), or the latest one when
/// `after` is `None`. Polled, not `XREAD BLOCK`: the shop's Redis
/// connection is shared by every request of the process, and a blocking
/// read would hold up all of them.
pub(super) async fn read(flash: &Flash<'_>, sale: Uuid, after: Option<&str>) -> Result<Vec<(String, FlashLive)>> {
    let key = flash.key(sale, "live");
    let mut conn = flash.shop.kv.conn();
    let entries: Entries = match after {
        Some(id) if valid_id(id) => {
            redis::cmd("XRANGE").arg(&key).arg(format!("({id}")).arg("+").arg("COUNT").arg(100).query_async(&mut conn).await?
        }
        _ => redis::cmd("XREVRANGE").arg(&key).arg("+").arg("-").arg("COUNT").arg(1).query_async(&mut conn).await?,
    };
    Ok(entries
        .into_iter()
        .filter_map(|(id, fields)| Some((id, serde_json::from_str::<FlashLive>(fields.get("data")?).ok()?)))
        .collect())
}

/// A stream id as Redis writes them (`<ms>-<seq>`); anything else is
/// treated as no id at all.
fn valid_id(id: &str) -> bool {
    let mut parts = id.splitn(2, '-');
    let ms = parts.next().is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let seq = parts.next().is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    ms && seq
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_buckets() {
        let mut buckets = HashMap::new();
        assert_eq!(quantile(&buckets, 0.5), 0.0);
        // 99 fast buys (~1 ms) and one slow (~100 ms).
        let fast = ((1000f64).ln() / BUCKET_RATIO.ln()).floor() as i64;
        let slow = ((100_000f64).ln() / BUCKET_RATIO.ln()).floor() as i64;
        buckets.insert(fast, 99);
        buckets.insert(slow, 1);
        let p50 = quantile(&buckets, 0.5);
        assert!((0.9..1.2).contains(&p50), "{p50}");
        assert!(quantile(&buckets, 0.99) < 2.0);
        buckets.insert(slow, 2);
        assert!(quantile(&buckets, 0.99) > 90.0);
    }

    #[test]
    fn only_stream_ids_are_resumed_from() {
        assert!(valid_id("1700000000000-0"));
        assert!(!valid_id("1700000000000"));
        assert!(!valid_id("x-1"));
        assert!(!valid_id("1-2-3"));
    }
}
