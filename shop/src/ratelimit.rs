//! Token buckets in Redis, one Lua script per check, keyed by who is asking
//! (a user, or an IP for guests) and a route class: `rl:{<subject>}:<class>`.
//! Redis's own clock is used, so every server process agrees on time.

use std::time::Duration;

use crate::{Result, Shop};

/// KEYS[1] bucket; ARGV: capacity, refill per second, cost.
/// Returns {1, 0} when allowed, {0, ms until enough tokens} when not.
const BUCKET: &str = r#"
local capacity, rate, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or capacity
local ts = tonumber(b[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate / 1000)
local allowed, wait = 1, 0
if tokens < cost then
  allowed = 0
  wait = math.ceil((cost - tokens) * 1000 / rate)
else
  tokens = tokens - cost
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity * 1000 / rate) + 1000)
return {allowed, wait}
"#;

/// A limit: `per_second` sustained, bursts up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    pub per_second: f64,
    pub burst: u32,
}

pub enum Verdict {
    Allowed,
    Limited { retry_after: Duration },
}

pub struct RateLimit<'a> {
    shop: &'a Shop,
}

impl<'a> RateLimit<'a> {
    pub(crate) fn new(shop: &'a Shop) -> Self {
        Self { shop }
    }

    /// Takes one token for `subject` on `class`.
    pub async fn check(&self, subject: &str, class: &str, limit: Limit) -> Result<Verdict> {
        let key = self.shop.kv.key(&format!("rl:{{{subject}}}:{class}"));
        let (allowed, wait_ms): (i64, i64) = redis::Script::new(BUCKET)
            .key(key)
            .arg(limit.burst.max(1))
            .arg(limit.per_second.max(0.001))
            .arg(1)
            .invoke_async(&mut self.shop.kv.conn())
            .await?;
        Ok(if allowed == 1 {
            Verdict::Allowed
        } else {
            Verdict::Limited { retry_after: Duration::from_millis(wait_ms.max(1) as u64) }
        })
    }
}
