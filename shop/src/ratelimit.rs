//! Token buckets in Redis, one Lua script per check, keyed by who is asking
//! (a user, or an IP for guests) and a route class: `rl:{<subject>}:<class>`.
//! Redis's own clock is used, so every server process agrees on time.

use std::time::Duration;

use crate::{Result, Shop};

/// KEYS[1] bucket; ARGV: capacity, refill per second, cost, mode.
/// Modes: `take` spends `cost` when there is enough; `peek` only looks (and
/// writes nothing); `charge` spends `cost` whatever is left, never below 0.
/// Returns {1, 0} when allowed, {0, ms until enough tokens} when not
/// (`charge` always answers {1, 0}).
const BUCKET: &str = r#"
local capacity, rate, cost, mode = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or capacity
local ts = tonumber(b[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate / 1000)
local allowed, wait = 1, 0
if mode == 'charge' then
  tokens = math.max(0, tokens - cost)
elseif tokens < cost then
  allowed = 0
  wait = math.ceil((cost - tokens) * 1000 / rate)
elseif mode == 'take' then
  tokens = tokens - cost
end
if mode == 'peek' then return {allowed, wait} end
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

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    Allowed,
    Limited { retry_after: Duration },
}

impl Verdict {
    /// `Limited` as the shop's 429 error.
    pub fn or_refuse(self) -> Result<()> {
        match self {
            Verdict::Allowed => Ok(()),
            Verdict::Limited { retry_after } => Err(crate::Error::RateLimited { retry_after }),
        }
    }
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
        self.run(subject, class, limit, "take").await
    }

    /// Whether a token is there, without taking it: for limits that count
    /// only outcomes known later (a failed sign-in), paired with [`Self::charge`].
    pub async fn peek(&self, subject: &str, class: &str, limit: Limit) -> Result<Verdict> {
        self.run(subject, class, limit, "peek").await
    }

    /// Spends one token whatever is left (never below empty).
    pub async fn charge(&self, subject: &str, class: &str, limit: Limit) -> Result<()> {
        self.run(subject, class, limit, "charge").await.map(drop)
    }

    /// Refills `subject`'s bucket on `class` (deletes it).
    pub async fn reset(&self, subject: &str, class: &str) -> Result<()> {
        let key = self.shop.kv.key(&format!("rl:{{{subject}}}:{class}"));
        let _: () = redis::AsyncCommands::del(&mut self.shop.kv.conn(), key).await?;
        Ok(())
    }

    async fn run(&self, subject: &str, class: &str, limit: Limit, mode: &str) -> Result<Verdict> {
        let key = self.shop.kv.key(&format!("rl:{{{subject}}}:{class}"));
        let (allowed, wait_ms): (i64, i64) = redis::Script::new(BUCKET)
            .key(key)
            .arg(limit.burst.max(1))
            .arg(limit.per_second.max(0.001))
            .arg(1)
            .arg(mode)
            .invoke_async(&mut self.shop.kv.conn())
            .await?;
        Ok(if allowed == 1 {
            Verdict::Allowed
        } else {
            Verdict::Limited { retry_after: Duration::from_millis(wait_ms.max(1) as u64) }
        })
    }
}
