//! The Lua scripts of a flash sale. Every key of one sale shares the hash
//! tag `{<sale id>}`, so each script touches one Redis Cluster slot, and
//! each script is one atomic step: a buy checks the sale's window, the
//! customer's limit, the units left and the line, and takes the units, all
//! at once, whatever the number of connections a customer buys from.
//!
//! Keys (`flash:{<sale>}:<name>`, passed as KEYS in this order):
//! 1. `meta`     hash: state (`ready` | `closed` | `cancelled`), starts and
//!               ends (ms), limit, left (units not held or sold), sku,
//!               price, seq (the line's ticket counter)
//! 2. `holds`    hash: token → "user qty expiry_ms state" (held), or
//!               "user qty expiry_ms confirming n" (n order transactions
//!               in flight: a customer's two tabs may both check out)
//! 3. `byuser`   hash: user → token of their live hold (at most one)
//! 4. `due`      zset: token → when the sweeper must look at it (ms)
//! 5. `bought`   hash: user → units held or in orders (what the limit counts)
//! 6. `line`     zset: user → ticket (FIFO: lowest first)
//! 7. `lineinfo` hash: user → "wanted deadline_ms"
//! 8. `gone`     hash: user → why they left the line (timeout | sold_out | left | limit | ended)
//! 9. `stats`    hash: cumulative counts (reservations, rejected, promoted,
//!               expired, released, orders, sold, waited, returned)
//! 10. `promoted` hash: user → token of a hold the line gave them
//!
//! Expiry and "now" come from Redis's clock, so every process agrees.

use std::sync::LazyLock;

use redis::Script;

/// Key names in the order every script takes them.
pub(super) const KEYS: [&str; 10] = ["meta", "holds", "byuser", "due", "bought", "line", "lineinfo", "gone", "stats", "promoted"];

macro_rules! prelude {
    () => {
        r#"
local META, HOLDS, BYUSER, DUE, BOUGHT = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local LINE, LINEINFO, GONE, STATS, PROMOTED = KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local function num(v) return tonumber(v or '0') or 0 end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function parse_hold(h)
  local u, q, e, st = string.match(h, '(%S+) (%S+) (%S+) (%S+)')
  return u, tonumber(q), tonumber(e), st
end
-- Order transactions confirming the hold now (a hold written before the
-- count existed counts one).
local function confirmers(h)
  return tonumber(string.match(h, '^%S+ %S+ %S+ confirming (%d+)$') or '1')
end
local function parse_info(info)
  local w, d = string.match(info or '1 0', '(%S+) (%S+)')
  return tonumber(w), tonumber(d)
end
local function meta(field) return redis.call('HGET', META, field) end
local function open_now(now)
  return meta('state') == 'ready' and now >= num(meta('starts')) and now < num(meta('ends'))
end
local function make_hold(user, qty, token, now, ttl, promoted)
  local exp = now + ttl
  redis.call('HSET', HOLDS, token, user .. ' ' .. qty .. ' ' .. exp .. ' held')
  redis.call('HSET', BYUSER, user, token)
  redis.call('ZADD', DUE, exp, token)
  redis.call('HINCRBY', BOUGHT, user, qty)
  redis.call('HINCRBY', META, 'left', -qty)
  redis.call('HINCRBY', STATS, 'reservations', 1)
  if promoted then
    redis.call('HSET', PROMOTED, user, token)
    redis.call('HINCRBY', STATS, 'promoted', 1)
  else
    redis.call('HDEL', PROMOTED, user)
  end
  return exp
end
-- Ends a hold without an order: its units go back to the sale and stop
-- counting toward the customer's limit.
local function end_hold(token, user, qty, reason)
  redis.call('HDEL', HOLDS, token)
  if redis.call('HGET', BYUSER, user) == token then redis.call('HDEL', BYUSER, user) end
  redis.call('ZREM', DUE, token)
  redis.call('HINCRBY', BOUGHT, user, -qty)
  redis.call('HINCRBY', META, 'left', qty)
  redis.call('HINCRBY', STATS, reason, 1)
  redis.call('HDEL', PROMOTED, user)
end
-- Drops those whose wait is over from the head of the line: they joined in
-- ticket order with one wait, so their deadlines are in that order too.
local function prune(now)
  while true do
    local head = redis.call('ZRANGE', LINE, 0, 0)
    if #head == 0 then return end
    local _, deadline = parse_info(redis.call('HGET', LINEINFO, head[1]))
    if deadline > now then return end
    redis.call('ZREM', LINE, head[1])
    redis.call('HDEL', LINEINFO, head[1])
    redis.call('HSET', GONE, head[1], 'timeout')
  end
end
-- Hands units that are left to the head of the line, first come first
-- served, one fresh token per hold, skipping those whose wait is over.
-- → flat list of (user, token, qty, expiry) per promotion.
local function promote(now, ttl, tokens)
  local out = {}
  if not open_now(now) then return out end
  prune(now)
  local limit = num(meta('limit'))
  local ti = 1
  while ti <= #tokens do
    local left = num(meta('left'))
    if left <= 0 then break end
    local head = redis.call('ZRANGE', LINE, 0, 0)
    if #head == 0 then break end
    local user = head[1]
    local want, deadline = parse_info(redis.call('HGET', LINEINFO, user))
    redis.call('ZREM', LINE, user)
    redis.call('HDEL', LINEINFO, user)
    if deadline <= now then
      redis.call('HSET', GONE, user, 'timeout')
    elseif not redis.call('HGET', BYUSER, user) then
      local grant = math.min(want, left, limit - num(redis.call('HGET', BOUGHT, user)))
      if grant <= 0 then
        redis.call('HSET', GONE, user, 'limit')
      else
        local exp = make_hold(user, grant, tokens[ti], now, ttl, true)
        out[#out + 1] = user
        out[#out + 1] = tokens[ti]
        out[#out + 1] = tostring(grant)
        out[#out + 1] = tostring(exp)
        ti = ti + 1
      end
    end
  end
  return out
end
local function append(dst, src)
  for _, v in ipairs(src) do dst[#dst + 1] = v end
  return dst
end
"#
    };
}

/// ARGV: user, qty, ttl_ms, wait_ms, token.
/// → {'OK', token, qty, exp, sku, price, promoted} (a new hold, maybe fewer
///   units than asked when fewer are left) | {'HELD', ...same} (the
///   customer's live hold: two tabs, one hold) | {'WAIT', position,
///   deadline} | {'LIMIT', bought, limit} | {'SOLD_OUT'} | {'EARLY', starts}
///   | {'ENDED'} | {'CANCELLED'} | {'NOSALE'} (not pre-loaded)
pub(super) static BUY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
local user, qty, ttl, wait, token = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local state = meta('state')
if not state then return {'NOSALE'} end
if state == 'cancelled' then return {'CANCELLED'} end
local now = now_ms()
if state ~= 'ready' or now >= num(meta('ends')) then return {'ENDED'} end
if now < num(meta('starts')) then return {'EARLY', meta('starts')} end
local sku, price = meta('sku'), meta('price')
local tok = redis.call('HGET', BYUSER, user)
if tok then
  local h = redis.call('HGET', HOLDS, tok)
  if h then
    local _, q, e = parse_hold(h)
    return {'HELD', tok, tostring(q), tostring(e), sku, price, tostring(redis.call('HEXISTS', PROMOTED, user))}
  end
end
local limit, bought = num(meta('limit')), num(redis.call('HGET', BOUGHT, user))
if bought + qty > limit then
  redis.call('HINCRBY', STATS, 'rejected', 1)
  return {'LIMIT', tostring(bought), tostring(limit)}
end
prune(now)
local ticket = redis.call('ZSCORE', LINE, user)
if ticket then
  local _, deadline = parse_info(redis.call('HGET', LINEINFO, user))
  return {'WAIT', tostring(redis.call('ZRANK', LINE, user) + 1), tostring(deadline)}
end
local left = num(meta('left'))
if left > 0 and redis.call('ZCARD', LINE) == 0 then
  local grant = math.min(qty, left)
  local exp = make_hold(user, grant, token, now, ttl, false)
  return {'OK', token, tostring(grant), tostring(exp), sku, price, '0'}
end
-- Nothing to sell now. Wait in line only if units may come back soon
-- (holds in their payment window) and this customer's wait is not over.
if redis.call('HGET', GONE, user) == 'timeout' or redis.call('HLEN', HOLDS) == 0 then
  redis.call('HINCRBY', STATS, 'rejected', 1)
  return {'SOLD_OUT'}
end
local seq = redis.call('HINCRBY', META, 'seq', 1)
redis.call('ZADD', LINE, seq, user)
redis.call('HSET', LINEINFO, user, qty .. ' ' .. (now + wait))
redis.call('HDEL', GONE, user)
redis.call('HINCRBY', STATS, 'waited', 1)
return {'WAIT', tostring(redis.call('ZRANK', LINE, user) + 1), tostring(now + wait)}
"#
    ))
});

/// A customer's state in the sale. ARGV: user.
/// → {'HELD', token, qty, exp, sku, price, promoted} | {'WAIT', position,
///   deadline} | {'BOUGHT', units} | {'SOLD_OUT'} | {'NONE'}
pub(super) static ME: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
local user = ARGV[1]
local tok = redis.call('HGET', BYUSER, user)
if tok then
  local h = redis.call('HGET', HOLDS, tok)
  if h then
    local _, q, e = parse_hold(h)
    return {'HELD', tok, tostring(q), tostring(e), meta('sku') or '', meta('price') or '0', tostring(redis.call('HEXISTS', PROMOTED, user))}
  end
end
prune(now_ms())
if redis.call('ZSCORE', LINE, user) then
  if num(meta('left')) <= 0 and redis.call('HLEN', HOLDS) == 0 then
    -- Nothing left and no hold that could come back: waiting out the rest
    -- of the wait would only keep the customer (and their polls) here.
    redis.call('ZREM', LINE, user)
    redis.call('HDEL', LINEINFO, user)
    redis.call('HSET', GONE, user, 'sold_out')
    return {'SOLD_OUT'}
  end
  local _, deadline = parse_info(redis.call('HGET', LINEINFO, user))
  return {'WAIT', tostring(redis.call('ZRANK', LINE, user) + 1), tostring(deadline)}
end
local bought = num(redis.call('HGET', BOUGHT, user))
if bought > 0 then return {'BOUGHT', tostring(bought)} end
local gone = redis.call('HGET', GONE, user)
if gone == 'timeout' or gone == 'sold_out' or gone == 'ended' or gone == 'limit' then return {'SOLD_OUT'} end
return {'NONE'}
"#
    ))
});

/// Leaves the line, or gives up a live hold (its units go to the line).
/// ARGV: user, ttl_ms, tokens… → {'LEFT'} | {'GAVE_UP', token, promotions…} | {'NONE'}
pub(super) static LEAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
local user, ttl = ARGV[1], tonumber(ARGV[2])
if redis.call('ZSCORE', LINE, user) then
  redis.call('ZREM', LINE, user)
  redis.call('HDEL', LINEINFO, user)
  redis.call('HSET', GONE, user, 'left')
  return {'LEFT'}
end
local tok = redis.call('HGET', BYUSER, user)
local h = tok and redis.call('HGET', HOLDS, tok)
if h then
  local u, q, _, st = parse_hold(h)
  if st == 'held' then
    end_hold(tok, u, q, 'released')
    local tokens = {}
    for i = 3, #ARGV do tokens[#tokens + 1] = ARGV[i] end
    return append({'GAVE_UP', tok}, promote(now_ms(), ttl, tokens))
  end
end
return {'NONE'}
"#
    ))
});

/// Ends a hold without an order and hands its units to the line. ARGV:
/// token, mode, ttl_ms, tokens…. Modes: `release` (a held hold: declined,
/// given up), `expire` (a held hold past its payment window), `abort` (a
/// confirmation PostgreSQL says did not happen).
/// → {'OK', user, qty, promotions…} | {'SKIP', state, user, qty} | {'NONE'}
pub(super) static GIVE_BACK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
local token, mode, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local h = redis.call('HGET', HOLDS, token)
if not h then
  redis.call('ZREM', DUE, token)
  return {'NONE'}
end
local user, qty, exp, st = parse_hold(h)
local now = now_ms()
local wanted = 'held'
if mode == 'abort' then wanted = 'confirming' end
if st ~= wanted then return {'SKIP', st, user, tostring(qty)} end
if mode == 'expire' and exp > now then return {'SKIP', 'live', user, tostring(qty)} end
local reason = 'released'
if mode == 'expire' or mode == 'abort' then reason = 'expired' end
end_hold(token, user, qty, reason)
local tokens = {}
for i = 4, #ARGV do tokens[#tokens + 1] = ARGV[i] end
return append({'OK', user, tostring(qty)}, promote(now, ttl, tokens))
"#
    ))
});

/// Starts confirming a hold into an order: held → confirming, so neither
/// the sweeper nor a release returns it while PostgreSQL commits. Each
/// order transaction counts itself in, so one that rolls back
/// ([`UNBEGIN`]) cannot hand the hold back while another may still commit
/// it. ARGV: token, user, grace_ms → {'OK', qty} | {'EXPIRED'} | {'NONE'}
pub(super) static BEGIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
local token, user, grace = ARGV[1], ARGV[2], tonumber(ARGV[3])
local h = redis.call('HGET', HOLDS, token)
if not h then return {'NONE'} end
local u, q, e, st = parse_hold(h)
if u ~= user then return {'NONE'} end
local now = now_ms()
local n = 1
if st == 'held' then
  if e <= now then return {'EXPIRED'} end
else
  n = confirmers(h) + 1
end
redis.call('HSET', HOLDS, token, u .. ' ' .. q .. ' ' .. e .. ' confirming ' .. n)
redis.call('ZADD', DUE, now + grace, token)
return {'OK', tostring(q)}
"#
    ))
});

/// An order transaction that began confirming the hold did not commit (a
/// refusal, a lost deadlock): it counts itself out, and the last one out
/// gives the hold back to its customer for the rest of its payment window
/// instead of leaving it to the sweeper's grace. ARGV: token →
/// {'HELD'} | {'CONFIRMING', n} | {'SKIP', state} | {'NONE'}
pub(super) static UNBEGIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
local token = ARGV[1]
local h = redis.call('HGET', HOLDS, token)
if not h then return {'NONE'} end
local u, q, e, st = parse_hold(h)
if st ~= 'confirming' then return {'SKIP', st} end
local n = confirmers(h) - 1
if n > 0 then
  redis.call('HSET', HOLDS, token, u .. ' ' .. q .. ' ' .. e .. ' confirming ' .. n)
  return {'CONFIRMING', tostring(n)}
end
redis.call('HSET', HOLDS, token, u .. ' ' .. q .. ' ' .. e .. ' held')
redis.call('ZADD', DUE, e, token)
return {'HELD'}
"#
    ))
});

/// Ends a confirmation that committed: the units are sold and keep
/// counting toward the customer's limit. ARGV: token → {'OK'} | {'OK',
/// 'LINE_DONE'} (the line has nothing left to wait for) | {'SKIP'}
pub(super) static FINISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
local token = ARGV[1]
local h = redis.call('HGET', HOLDS, token)
if not h then return {'SKIP'} end
local u, q, _, st = parse_hold(h)
if st ~= 'confirming' then return {'SKIP'} end
redis.call('HDEL', HOLDS, token)
if redis.call('HGET', BYUSER, u) == token then redis.call('HDEL', BYUSER, u) end
redis.call('ZREM', DUE, token)
redis.call('HINCRBY', STATS, 'orders', 1)
redis.call('HINCRBY', STATS, 'sold', q)
-- The last hold is sold and nothing is left: nobody in line can be served.
if num(meta('left')) <= 0 and redis.call('HLEN', HOLDS) == 0 and redis.call('ZCARD', LINE) > 0 then
  return {'OK', 'LINE_DONE'}
end
return {'OK'}
"#
    ))
});

/// Units of a cancelled order come back to a sale still running (its
/// set-aside took them back): they leave the customer's count and go to
/// the line. ARGV: user, qty, ttl_ms, tokens… → promotions…
pub(super) static RETURN_SOLD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
local user, qty, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if not meta('state') then return {} end
redis.call('HINCRBY', BOUGHT, user, -qty)
redis.call('HINCRBY', META, 'left', qty)
redis.call('HINCRBY', STATS, 'sold', -qty)
redis.call('HINCRBY', STATS, 'returned', 1)
local tokens = {}
for i = 4, #ARGV do tokens[#tokens + 1] = ARGV[i] end
return promote(now_ms(), ttl, tokens)
"#
    ))
});

/// Hands units left over to the line (a promotion that ran out of tokens,
/// or a head that could not take them). ARGV: ttl_ms, tokens… → promotions…
pub(super) static PROMOTE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
local tokens = {}
for i = 2, #ARGV do tokens[#tokens + 1] = ARGV[i] end
return promote(now_ms(), tonumber(ARGV[1]), tokens)
"#
    ))
});

/// Holds whose time is up (payment window, or confirmation grace).
/// ARGV: limit → tokens
pub(super) static DUE_TOKENS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
return redis.call('ZRANGEBYSCORE', DUE, '-inf', now_ms(), 'LIMIT', 0, tonumber(ARGV[1]))
"#
    ))
});

/// Loads a sale before its start, once: a sale already loaded is left as
/// it is (its counters are live). ARGV: sku, price, starts_ms, ends_ms,
/// limit, left → 1 loaded | 0 already there
pub(super) static PRELOAD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
if redis.call('EXISTS', META) == 1 then return 0 end
redis.call('HSET', META, 'state', 'ready', 'sku', ARGV[1], 'price', ARGV[2], 'starts', ARGV[3],
  'ends', ARGV[4], 'limit', ARGV[5], 'left', ARGV[6], 'seq', 0)
return 1
"#
    ))
});

/// The sale is over: no more buys, and the line is told (sold out).
/// → how many were still waiting
pub(super) static CLOSE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
if meta('state') == 'ready' then redis.call('HSET', META, 'state', 'closed') end
local waiting = redis.call('ZRANGE', LINE, 0, -1)
for _, user in ipairs(waiting) do redis.call('HSET', GONE, user, 'ended') end
redis.call('DEL', LINE, LINEINFO)
return #waiting
"#
    ))
});

/// Cancels a sale nobody has bought from. → {'OK'} | {'STARTED'}
pub(super) static CANCEL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
if redis.call('HLEN', BOUGHT) > 0 or redis.call('HLEN', HOLDS) > 0 then return {'STARTED'} end
redis.call('HSET', META, 'state', 'cancelled')
return {'OK'}
"#
    ))
});

/// Figures for the live stream and the report, in one atomic read.
/// → {left, line length, live holds, stats as field/value pairs…}
pub(super) static FIGURES: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r#"
local out = {meta('left') or 'n', tostring(redis.call('ZCARD', LINE)), tostring(redis.call('HLEN', HOLDS))}
return append(out, redis.call('HGETALL', STATS))
"#
    ))
});
