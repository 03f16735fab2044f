//! The Lua scripts behind the Redis path. Each runs atomically, so every
//! counter change and the reservation record that explains it happen
//! together or not at all.
//!
//! Keys (all under the shop's prefix, passed as ARGV[1]):
//! - `inv:{<sku>}:avail`       available units of an unsharded SKU
//! - `inv:{<sku>/<i>}:avail`   shard `i` of a sharded SKU (its own slot)
//! - `inv:{<sku>}:shards`      shard count (absent: unsharded)
//! - `inv:{<sku>}:held`        units in live Redis reservations of the SKU
//! - `inv:res:{<token>}`       a reservation: state, expiry (ms), lines; state
//!                             `void` marks a token fenced off for the DB path
//! - `inv:res:due`             tokens by expiry (ms), for the sweeper
//!
//! A record's `lines` is `"<sku> <shard> <qty>,…"` (shard -1: unsharded), so
//! units go back to the shard they came from. The scripts name keys they
//! derive from data (a cart's SKUs, a record's lines), which a single Redis
//! allows; under Redis Cluster each SKU's keys share a slot but one cart
//! spans several (see ARCHITECTURE.md).
//!
//! Invariant kept by every script: for each loaded SKU,
//! sum(counters) = PostgreSQL (stock_count - reserved - held) - `held` here.

use std::sync::LazyLock;

use redis::Script;

macro_rules! prelude {
    () => {
        r#"
local P = ARGV[1]
local DUE = P .. 'inv:res:due'
local function counter_key(sku, shard)
  if shard < 0 then return P .. 'inv:{' .. sku .. '}:avail' end
  return P .. 'inv:{' .. sku .. '/' .. shard .. '}:avail'
end
local function config_key(sku) return P .. 'inv:{' .. sku .. '}:shards' end
local function held_key(sku) return P .. 'inv:{' .. sku .. '}:held' end
local function record_key(token) return P .. 'inv:res:{' .. token .. '}' end
local function shard_count(sku)
  local n = tonumber(redis.call('GET', config_key(sku)) or '0')
  if n <= 1 then return 0 end
  return n
end
local function layout(sku)
  local n = shard_count(sku)
  local keys = {}
  if n == 0 then keys[1] = counter_key(sku, -1)
  else for i = 0, n - 1 do keys[i + 1] = counter_key(sku, i) end end
  return keys
end
-- The SKU's available total, or nil when a counter is not loaded.
local function total(keys)
  local vals = redis.call('MGET', unpack(keys))
  local sum = 0
  for i = 1, #keys do
    if not vals[i] then return nil, vals end
    sum = sum + tonumber(vals[i])
  end
  return sum, vals
end
-- Spreads a total over the shards as evenly as integers allow.
local function write_total(keys, target)
  local n = #keys
  if n == 1 or target <= 0 then
    redis.call('SET', keys[1], target)
    for i = 2, n do redis.call('SET', keys[i], 0) end
    return
  end
  local base = math.floor(target / n)
  local extra = target - base * n
  for i = 1, n do
    local v = base
    if i <= extra then v = v + 1 end
    redis.call('SET', keys[i], v)
  end
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function each_part(lines, fn)
  for part in string.gmatch(lines, '[^,]+') do
    local sku, shard, qty = string.match(part, '(%S+) (%S+) (%S+)')
    fn(sku, tonumber(shard), tonumber(qty))
  end
end
-- Returns a record's units to the counters. A counter that is not loaded is
-- left alone: loading it later computes the right figure from `held`.
local function give_back(lines)
  each_part(lines, function(sku, shard, qty)
    local n = shard_count(sku)
    local key
    if n == 0 then key = counter_key(sku, -1) else key = counter_key(sku, math.max(shard, 0) % n) end
    if redis.call('EXISTS', key) == 1 then redis.call('INCRBY', key, qty) end
    redis.call('DECRBY', held_key(sku), qty)
  end)
end
"#
    };
}

/// Reads available totals. ARGV: prefix, sku… → per SKU the total, or "n"
/// when not loaded.
pub static READ: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
local out = {}
for i = 2, #ARGV do
  local sum = total(layout(ARGV[i]))
  if sum then out[#out + 1] = tostring(sum) else out[#out + 1] = 'n' end
end
return out
"#
    ))
});

/// Reserves every line or none. ARGV: prefix, token, ttl_ms, random, then
/// (sku, qty) pairs with distinct SKUs.
/// → {'OK', state, exp, lines} | {'DUP', state, exp, lines} | {'SHORT', sku, available} | {'MISSING', sku}
/// (a `void` record answers DUP: the token belongs to the DB path)
pub const RESERVE_SRC: &str = concat!(
        prelude!(),
        r#"
local token, ttl, rnd = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local rec = record_key(token)
local state = redis.call('HGET', rec, 'state')
if state then
  return {'DUP', state, redis.call('HGET', rec, 'exp') or '0', redis.call('HGET', rec, 'lines') or ''}
end
-- Check every line before touching any: all or nothing.
local plan = {}
for i = 5, #ARGV, 2 do
  local sku, qty = ARGV[i], tonumber(ARGV[i + 1])
  local keys = layout(sku)
  local sum, vals = total(keys)
  if not sum then return {'MISSING', sku} end
  if sum < qty then return {'SHORT', sku, tostring(sum)} end
  plan[#plan + 1] = {sku, qty, keys, vals}
end
local parts = {}
for _, p in ipairs(plan) do
  local sku, qty, keys, vals = p[1], p[2], p[3], p[4]
  if #keys == 1 then
    redis.call('DECRBY', keys[1], qty)
    parts[#parts + 1] = sku .. ' -1 ' .. qty
  else
    -- Random first shard, then the others; never below zero on any.
    local left, n = qty, #keys
    for k = 0, n - 1 do
      local idx = (rnd + k) % n
      local have = tonumber(vals[idx + 1])
      if have > 0 then
        local take = math.min(have, left)
        redis.call('DECRBY', keys[idx + 1], take)
        parts[#parts + 1] = sku .. ' ' .. idx .. ' ' .. take
        left = left - take
        if left == 0 then break end
      end
    end
  end
  redis.call('INCRBY', held_key(sku), qty)
end
local exp = now_ms() + ttl
local lines = table.concat(parts, ',')
redis.call('HSET', rec, 'state', 'held', 'exp', exp, 'lines', lines)
-- The record outlives its hold by a day so a retried call still finds it.
redis.call('PEXPIRE', rec, ttl + 86400000)
redis.call('ZADD', DUE, exp, token)
return {'OK', 'held', tostring(exp), lines}
"#
);
pub static RESERVE: LazyLock<Script> = LazyLock::new(|| Script::new(RESERVE_SRC));

/// Gives a reservation's units back. ARGV: prefix, token, mode:
/// `release` (a held reservation, on request), `expire` (a held one past its
/// expiry), `abort` (a confirmation PostgreSQL decided did not happen).
/// → {'OK', new_state} | {'SKIP', state} | {'NONE'}
pub static GIVE_BACK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
local token, mode = ARGV[2], ARGV[3]
local rec = record_key(token)
local state = redis.call('HGET', rec, 'state')
if not state then
  redis.call('ZREM', DUE, token)
  return {'NONE'}
end
local wanted = 'held'
if mode == 'abort' then wanted = 'confirming' end
if state ~= wanted then
  if mode == 'expire' and state ~= 'confirming' then redis.call('ZREM', DUE, token) end
  return {'SKIP', state}
end
if mode == 'expire' and tonumber(redis.call('HGET', rec, 'exp')) > now_ms() then
  return {'SKIP', 'live'}
end
give_back(redis.call('HGET', rec, 'lines'))
local new_state = 'released'
if mode == 'expire' then new_state = 'expired' end
redis.call('HSET', rec, 'state', new_state)
redis.call('ZREM', DUE, token)
return {'OK', new_state}
"#
    ))
});

/// Starts a confirmation: held → confirming, so neither a release nor the
/// sweeper returns the units while PostgreSQL commits them. A confirmation
/// that never finishes is settled by the sweeper after `grace_ms`.
/// ARGV: prefix, token, grace_ms → {'OK', lines} | {'NONE'} | {'EXPIRED'} | {'CONFIRMED'} | {'RELEASED'}
pub static BEGIN_CONFIRM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
local token = ARGV[2]
local rec = record_key(token)
local state = redis.call('HGET', rec, 'state')
if not state then return {'NONE'} end
if state == 'held' then
  local now = now_ms()
  if tonumber(redis.call('HGET', rec, 'exp')) <= now then return {'EXPIRED'} end
  redis.call('HSET', rec, 'state', 'confirming')
  redis.call('ZADD', DUE, now + tonumber(ARGV[3]), token)
  return {'OK', redis.call('HGET', rec, 'lines')}
end
if state == 'confirming' then return {'OK', redis.call('HGET', rec, 'lines')} end
return {string.upper(state)}
"#
    ))
});

/// Ends a confirmation: the units now count in PostgreSQL's `reserved`, so
/// they leave `held`; the counters do not move. ARGV: prefix, token.
/// → {'OK'} | {'SKIP', state}
pub static FINISH_CONFIRM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
local token = ARGV[2]
local rec = record_key(token)
local state = redis.call('HGET', rec, 'state')
if state == 'confirmed' then return {'OK'} end
if state ~= 'confirming' then return {'SKIP', state or 'none'} end
each_part(redis.call('HGET', rec, 'lines'), function(sku, shard, qty)
  redis.call('DECRBY', held_key(sku), qty)
end)
redis.call('HSET', rec, 'state', 'confirmed')
redis.call('ZREM', DUE, token)
return {'OK'}
"#
    ))
});

/// Tokens whose expiry (or confirmation grace) has passed, by Redis's clock.
/// ARGV: prefix, limit.
pub static DUE_TOKENS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
return redis.call('ZRANGEBYSCORE', DUE, '-inf', now_ms(), 'LIMIT', 0, tonumber(ARGV[2]))
"#
    ))
});

/// Writes counters from PostgreSQL's figures. The caller holds the
/// inventory rows locked (FOR SHARE or FOR UPDATE), so no confirmation can
/// move PostgreSQL underneath; this script is atomic against reservations,
/// so `held` cannot move either. ARGV: prefix, mode, then (sku, pg_available,
/// shards) triples, where pg_available = stock_count - reserved - held.
/// Modes: `fill` writes counters that are not loaded; `fix` rewrites loaded
/// ones that differ (reconciliation); `force` rewrites all; `stock` is
/// `force` but refuses (BELOW) when live holds exceed what would be left.
/// → per SKU: before ('n' if not loaded), after ('n' if still not loaded)
///   | {'BELOW', sku, held}
pub static SYNC: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
local mode = ARGV[2]
local out = {}
for i = 3, #ARGV, 3 do
  local sku, pg, want = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  if want <= 1 then want = 0 end
  local keys = layout(sku)
  local sum = total(keys)
  local held = tonumber(redis.call('GET', held_key(sku)) or '0')
  local target = pg - held
  if mode == 'stock' and target < 0 then return {'BELOW', sku, tostring(held)} end
  local write = mode == 'force' or mode == 'stock'
    or (mode == 'fill' and not sum)
    or (mode == 'fix' and sum ~= nil and (sum ~= target or shard_count(sku) ~= want))
  if write then
    for _, k in ipairs(keys) do redis.call('DEL', k) end
    if want == 0 then redis.call('DEL', config_key(sku)) else redis.call('SET', config_key(sku), want) end
    write_total(layout(sku), target)
  end
  if sum then out[#out + 1] = tostring(sum) else out[#out + 1] = 'n' end
  if write then out[#out + 1] = tostring(target) elseif sum then out[#out + 1] = tostring(sum) else out[#out + 1] = 'n' end
end
return out
"#
    ))
});

/// Applies a DB-path change (`-qty` for a hold, `+qty` for units given
/// back) to a loaded counter. ARGV: prefix, then (sku, delta) pairs. The new
/// total is spread over the shards again rather than added to one of them:
/// a hold larger than shard 0 would otherwise push it below zero while the
/// other shards kept the units, and reservations skip a shard at or below
/// zero. A total that must go negative (PostgreSQL let the DB path hold
/// units Redis holds too) lands on one shard, as `write_total` does.
pub static ADD_IF_LOADED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
for i = 2, #ARGV, 2 do
  local keys = layout(ARGV[i])
  local sum = total(keys)
  if sum then write_total(keys, sum + tonumber(ARGV[i + 1])) end
end
return 1
"#
    ))
});

/// Sums, per SKU, the units of the live reservation records (listed in
/// `inv:res:due`, state held or confirming): what `held` must say. Scanning
/// inside the script makes the sum exact against reservations in flight,
/// since every script that moves `held` also moves a record.
macro_rules! live_held {
    () => {
        r#"
local function live_held(wanted)
  local sums = {}
  for _, token in ipairs(redis.call('ZRANGE', DUE, 0, -1)) do
    local rec = redis.call('HMGET', record_key(token), 'state', 'lines')
    if (rec[1] == 'held' or rec[1] == 'confirming') and rec[2] then
      each_part(rec[2], function(sku, shard, qty)
        if wanted == nil or wanted[sku] then sums[sku] = (sums[sku] or 0) + qty end
      end)
    end
  end
  return sums
end
local function held_of(sku) return tonumber(redis.call('GET', held_key(sku)) or '0') end
"#
    };
}

/// Finds SKUs whose `held` disagrees with their live records, writing
/// nothing (so it needs no row locks). ARGV: prefix, then SKUs whose `held`
/// is non-zero (SKUs named in records are found by the scan).
/// → (sku, held, live) triples for the SKUs that disagree.
pub static HELD_DRIFT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        live_held!(),
        r#"
local sums = live_held(nil)
local seen, out = {}, {}
local function check(sku)
  if seen[sku] then return end
  seen[sku] = true
  local held, live = held_of(sku), sums[sku] or 0
  if held ~= live then
    out[#out + 1] = sku
    out[#out + 1] = tostring(held)
    out[#out + 1] = tostring(live)
  end
end
for i = 2, #ARGV do check(ARGV[i]) end
for sku, _ in pairs(sums) do check(sku) end
return out
"#
    ))
});

/// Where `held` differs from the live records, rewrites it and the counter
/// (PostgreSQL's figure minus the new `held`), as `SYNC`'s `fix` does: the caller holds the rows
/// FOR SHARE. ARGV: prefix, then (sku, pg_available, shards) triples.
/// → per SKU: held before, held after, counter before ('n': not loaded),
///   counter after.
pub static REBUILD_HELD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        live_held!(),
        r#"
local wanted = {}
for i = 2, #ARGV, 3 do wanted[ARGV[i]] = true end
local sums = live_held(wanted)
local out = {}
for i = 2, #ARGV, 3 do
  local sku, pg, want = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  if want <= 1 then want = 0 end
  local before, live = held_of(sku), sums[sku] or 0
  local keys = layout(sku)
  local sum = total(keys)
  local after = sum
  -- Settled meanwhile (another process's reconciliation): leave it to the
  -- counter walk, which reports any counter drift of its own.
  if before ~= live then
    redis.call('SET', held_key(sku), live)
    if sum then
      for _, k in ipairs(keys) do redis.call('DEL', k) end
      if want == 0 then redis.call('DEL', config_key(sku)) else redis.call('SET', config_key(sku), want) end
      write_total(layout(sku), pg - live)
      after = pg - live
    end
  end
  out[#out + 1] = tostring(before)
  out[#out + 1] = tostring(live)
  out[#out + 1] = sum and tostring(sum) or 'n'
  out[#out + 1] = after and tostring(after) or 'n'
end
return out
"#
    ))
});

/// Settles a reservation whose script call failed after it may have run
/// (a reply lost to a timeout or a dropped connection): either the record
/// is there, and that hold is the reservation, or a `void` record takes its
/// place, so a copy of the call still queued in Redis finds the token taken
/// and holds nothing. Then the DB path may hold under the same token.
/// ARGV: prefix, token, ttl_ms → {'FOUND', state, exp, lines} | {'FENCED'}
pub static FENCE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
local token, ttl = ARGV[2], tonumber(ARGV[3])
local rec = record_key(token)
local state = redis.call('HGET', rec, 'state')
if state then
  return {'FOUND', state, redis.call('HGET', rec, 'exp') or '0', redis.call('HGET', rec, 'lines') or ''}
end
redis.call('HSET', rec, 'state', 'void')
redis.call('PEXPIRE', rec, ttl + 86400000)
return {'FENCED'}
"#
    ))
});

/// Takes units out of a loaded counter for a set-aside (a flash sale's
/// carve-out) while the caller holds the inventory row FOR UPDATE: refused
/// when the counter has fewer, because Redis holds PostgreSQL cannot see
/// may have taken them. ARGV: prefix, sku, qty.
/// → {'OK', after} | {'SHORT', available} | {'MISSING'}
pub static TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
local keys = layout(ARGV[2])
local sum = total(keys)
if not sum then return {'MISSING'} end
local q = tonumber(ARGV[3])
if sum < q then return {'SHORT', tostring(sum)} end
write_total(keys, sum - q)
return {'OK', tostring(sum - q)}
"#
    ))
});
