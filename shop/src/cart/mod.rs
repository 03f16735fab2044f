//! The cart: a Redis hash per owner, `cart:{<user>}` (30 days) or
//! `cart:guest:{<session>}` (24 hours), field = SKU id, value = the line's
//! quantity and the unit price the shopper first saw. Every write resets the
//! TTL. Writes are Lua scripts so concurrent requests never lose an update,
//! and the guest-to-user merge at sign-in is one script that deletes the
//! guest cart as it folds it in, so a retried or concurrent sign-in cannot
//! add the same quantities twice.

use std::collections::HashMap;
use std::time::Duration;

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Error, Result, Shop};

pub const USER_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
pub const GUEST_TTL: Duration = Duration::from_secs(24 * 3600);
/// At most this many of one SKU per cart: flash sales live on such limits.
pub const LINE_MAX: i64 = 10;

/// Whose cart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    User(Uuid),
    /// A guest, by the random id in their guest cookie.
    Guest(String),
}

impl Owner {
    fn key(&self, shop: &Shop) -> String {
        match self {
            Owner::User(id) => shop.kv.key(&format!("cart:{{{id}}}")),
            Owner::Guest(session) => shop.kv.key(&format!("cart:guest:{{{session}}}")),
        }
    }

    fn ttl(&self) -> Duration {
        match self {
            Owner::User(_) => USER_TTL,
            Owner::Guest(_) => GUEST_TTL,
        }
    }
}

/// A stored line: quantity and the price snapshot taken when it was added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    pub qty: i64,
    pub unit_cents: i64,
}

pub use model::{CartLine, CartView};

/// A flash sale's hold as the cart keeps it, in the field `flash:<sale>`:
/// the sale's units at the sale's price, until `pay_by_ms` (Redis's clock).
/// Written by `shop::flash` when a hold is made, read by checkout, which
/// confirms the hold instead of reserving the units again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlashHold {
    pub sale_id: Uuid,
    pub sku_id: Uuid,
    pub quantity: i64,
    pub unit_cents: i64,
    pub token: Uuid,
    pub pay_by_ms: i64,
}

impl FlashHold {
    fn field(sale: Uuid) -> String {
        format!("flash:{sale}")
    }
}

/// Deletes a flash line only while it is still the given hold's: a newer
/// hold of the same sale (a promotion after a decline) stays.
const DROP_FLASH: &str = r#"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and cjson.decode(cur).token == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
"#;

/// Adds to a line, refusing (not clamping) a total above the line maximum.
/// Returns {new quantity, snapshot} or {-1, current quantity}.
const ADD: &str = r#"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local qty, unit = 0, tonumber(ARGV[3])
if cur then
  local line = cjson.decode(cur)
  qty, unit = line.qty, line.unit_cents
end
local new = qty + tonumber(ARGV[2])
if new > tonumber(ARGV[4]) then return {-1, qty} end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({qty = new, unit_cents = unit}))
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {new, unit}
"#;

/// Sets a line's quantity (0 removes it), keeping an existing snapshot.
const SET: &str = r#"
local qty = tonumber(ARGV[2])
if qty == 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  local unit = tonumber(ARGV[3])
  local cur = redis.call('HGET', KEYS[1], ARGV[1])
  if cur then unit = cjson.decode(cur).unit_cents end
  redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({qty = qty, unit_cents = unit}))
end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
return qty
"#;

/// Folds the guest cart (KEYS[2]) into the user's (KEYS[1]) and deletes it.
/// ARGV[1] = TTL ms, ARGV[2] = default line limit, then (sku, limit) pairs:
/// the guest's units are added up to min(limit, available stock) computed by
/// the caller. The clamp only limits what the guest brings: a line the
/// customer already had is never cut or deleted by the merge (a sold-out
/// guest line would otherwise remove the customer's own).
const MERGE: &str = r#"
local guest = redis.call('HGETALL', KEYS[2])
if #guest == 0 then return 0 end
local limits = {}
for i = 3, #ARGV, 2 do limits[ARGV[i]] = tonumber(ARGV[i + 1]) end
local merged = 0
for i = 1, #guest, 2 do
  local sku, g = guest[i], cjson.decode(guest[i + 1])
  local limit = limits[sku] or tonumber(ARGV[2])
  local cur = redis.call('HGET', KEYS[1], sku)
  local qty, unit = 0, g.unit_cents
  if cur then
    local line = cjson.decode(cur)
    qty, unit = line.qty, line.unit_cents
  end
  local new = math.max(qty, math.min(qty + g.qty, limit))
  if new > qty then
    redis.call('HSET', KEYS[1], sku, cjson.encode({qty = new, unit_cents = unit}))
  end
  merged = merged + 1
end
redis.call('DEL', KEYS[2])
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return merged
"#;

pub struct Cart<'a> {
    shop: &'a Shop,
}

impl<'a> Cart<'a> {
    pub(crate) fn new(shop: &'a Shop) -> Self {
        Self { shop }
    }

    fn check_quantity(quantity: i64) -> Result<()> {
        if quantity <= 0 {
            return Err(Error::Invalid("quantity must be at least 1".into()));
        }
        if quantity > LINE_MAX {
            return Err(Error::Invalid(format!("at most {LINE_MAX} of one item per order")));
        }
        Ok(())
    }

    async fn current(&self, sku: Uuid) -> Result<crate::catalog::SkuDetails> {
        self.shop
            .catalog()
            .sku_details(&[sku])
            .await?
            .remove(&sku)
            .ok_or(Error::NotFound { what: "SKU" })
    }

    /// Adds `quantity` of a SKU; the line keeps the price first seen. A
    /// cart has one currency: a SKU priced in another is refused.
    pub async fn add(&self, owner: &Owner, sku: Uuid, quantity: i64) -> Result<CartView> {
        Self::check_quantity(quantity)?;
        let details = self.current(sku).await?;
        self.check_currency(owner, sku, &details.currency).await?;
        let (new, current): (i64, i64) = redis::Script::new(ADD)
            .key(owner.key(self.shop))
            .arg(sku.to_string())
            .arg(quantity)
            .arg(details.price_cents)
            .arg(LINE_MAX)
            .arg(owner.ttl().as_millis() as u64)
            .invoke_async(&mut self.shop.kv.conn())
            .await?;
        if new < 0 {
            return Err(Error::Invalid(format!(
                "at most {LINE_MAX} of one item per order (you already have {current})"
            )));
        }
        self.view(owner).await
    }

    async fn check_currency(&self, owner: &Owner, sku: Uuid, currency: &str) -> Result<()> {
        let others: Vec<Uuid> = self.lines(owner).await?.into_keys().filter(|other| *other != sku).collect();
        let details = self.shop.catalog().sku_details(&others).await?;
        match details.values().find(|d| d.currency != currency) {
            Some(other) => Err(Error::Rejected {
                code: "mixed_currency",
                message: format!("this item is priced in {currency} and your cart in {}; check out your cart first", other.currency),
            }),
            None => Ok(()),
        }
    }

    /// [`Cart::add`] behind the add-to-cart rate limit for `subject` (a user,
    /// or a guest's IP): what both the API and the storefront call.
    pub async fn add_limited(&self, owner: &Owner, subject: &str, per_second: u32, sku: Uuid, quantity: i64) -> Result<CartView> {
        self.spend_write_token(subject, per_second).await?;
        self.add(owner, sku, quantity).await
    }

    /// [`Cart::set`] behind the same limit and bucket as [`Cart::add_limited`]:
    /// setting a quantity is adding by another name, so a client must not get
    /// a second budget by sending PUTs instead of POSTs.
    pub async fn set_limited(&self, owner: &Owner, subject: &str, per_second: u32, sku: Uuid, quantity: i64) -> Result<CartView> {
        self.spend_write_token(subject, per_second).await?;
        self.set(owner, sku, quantity).await
    }

    async fn spend_write_token(&self, subject: &str, per_second: u32) -> Result<()> {
        let limit = crate::ratelimit::Limit { per_second: per_second as f64, burst: per_second };
        self.shop.ratelimit().check(subject, "add_to_cart", limit).await?.or_refuse()
    }

    /// Sets a line's quantity; 0 removes it.
    pub async fn set(&self, owner: &Owner, sku: Uuid, quantity: i64) -> Result<CartView> {
        if quantity != 0 {
            Self::check_quantity(quantity)?;
        }
        let details = self.current(sku).await?;
        let _: i64 = redis::Script::new(SET)
            .key(owner.key(self.shop))
            .arg(sku.to_string())
            .arg(quantity)
            .arg(details.price_cents)
            .arg(owner.ttl().as_millis() as u64)
            .invoke_async(&mut self.shop.kv.conn())
            .await?;
        self.view(owner).await
    }

    pub async fn remove(&self, owner: &Owner, sku: Uuid) -> Result<CartView> {
        let _: i64 = redis::Script::new(SET)
            .key(owner.key(self.shop))
            .arg(sku.to_string())
            .arg(0)
            .arg(0)
            .arg(owner.ttl().as_millis() as u64)
            .invoke_async(&mut self.shop.kv.conn())
            .await?;
        self.view(owner).await
    }

    /// Folds a guest's cart into a user's at sign-in: quantities add, each
    /// line clamped to the line maximum and to available stock; the guest
    /// cart is gone afterwards, so running this twice changes nothing.
    pub async fn merge_guest(&self, guest_session: &str, user: Uuid) -> Result<usize> {
        let guest = Owner::Guest(guest_session.to_owned());
        let guest_lines: HashMap<String, String> = self.shop.kv.conn().hgetall(guest.key(self.shop)).await?;
        if guest_lines.is_empty() {
            return Ok(0);
        }
        let skus: Vec<Uuid> = guest_lines.keys().filter_map(|s| Uuid::try_parse(s).ok()).collect();
        let available = self.shop.inventory().available(&skus).await?;
        let merge = redis::Script::new(MERGE);
        let mut script = merge.prepare_invoke();
        script
            .key(Owner::User(user).key(self.shop))
            .key(guest.key(self.shop))
            .arg(USER_TTL.as_millis() as u64)
            .arg(LINE_MAX);
        for (sku, available) in skus.iter().zip(available) {
            script.arg(sku.to_string()).arg(available.clamp(0, LINE_MAX));
        }
        let merged: usize = script.invoke_async(&mut self.shop.kv.conn()).await?;
        Ok(merged)
    }

    /// The raw stored lines.
    pub async fn lines(&self, owner: &Owner) -> Result<HashMap<Uuid, Stored>> {
        let raw: HashMap<String, String> = self.shop.kv.conn().hgetall(owner.key(self.shop)).await?;
        Ok(raw
            .into_iter()
            .filter_map(|(sku, json)| Some((Uuid::try_parse(&sku).ok()?, serde_json::from_str(&json).ok()?)))
            .collect())
    }

    /// Puts a flash sale's hold in a customer's cart (replacing an older
    /// hold of the same sale).
    pub async fn put_flash_hold(&self, user: Uuid, hold: &FlashHold) -> Result<()> {
        let owner = Owner::User(user);
        let key = owner.key(self.shop);
        let json = serde_json::to_string(hold).map_err(Error::internal)?;
        let _: () = redis::pipe()
            .atomic()
            .hset(&key, FlashHold::field(hold.sale_id), json)
            .ignore()
            .pexpire(&key, owner.ttl().as_millis() as i64)
            .ignore()
            .query_async(&mut self.shop.kv.conn())
            .await?;
        Ok(())
    }

    /// Takes a flash hold out of the cart (it was given up, or went to
    /// someone else), unless a newer hold of that sale replaced it.
    pub async fn drop_flash_hold(&self, user: Uuid, sale: Uuid, token: Uuid) -> Result<()> {
        let _: i64 = redis::Script::new(DROP_FLASH)
            .key(Owner::User(user).key(self.shop))
            .arg(FlashHold::field(sale))
            .arg(token.to_string())
            .invoke_async(&mut self.shop.kv.conn())
            .await?;
        Ok(())
    }

    /// The cart with current prices; lines whose SKU has been discontinued are dropped.
    pub async fn view(&self, owner: &Owner) -> Result<CartView> {
        self.view_with_holds(owner).await.map(|(view, _)| view)
    }

    /// [`Cart::view`] and the flash holds behind its flash lines, from one
    /// read. Holds past their payment window are left out.
    pub async fn view_with_holds(&self, owner: &Owner) -> Result<(CartView, Vec<FlashHold>)> {
        let raw: HashMap<String, String> = self.shop.kv.conn().hgetall(owner.key(self.shop)).await?;
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut stored: HashMap<Uuid, Stored> = HashMap::new();
        let mut holds: Vec<FlashHold> = Vec::new();
        for (field, json) in &raw {
            if field.starts_with("flash:") {
                if let Ok(hold) = serde_json::from_str::<FlashHold>(json) {
                    if hold.pay_by_ms > now_ms {
                        holds.push(hold);
                    }
                }
            } else if let (Ok(sku), Ok(line)) = (Uuid::try_parse(field), serde_json::from_str::<Stored>(json)) {
                stored.insert(sku, line);
            }
        }
        holds.sort_by_key(|h| h.sale_id);
        let mut ids: Vec<Uuid> = stored.keys().copied().collect();
        ids.extend(holds.iter().map(|h| h.sku_id));
        let details = self.shop.catalog().sku_details(&ids).await?;
        let mut lines: Vec<CartLine> = stored
            .into_iter()
            .filter_map(|(sku, line)| {
                let d = details.get(&sku)?;
                Some(CartLine {
                    sku_id: sku,
                    product_id: d.product_id,
                    title: d.title.clone(),
                    quantity: line.qty,
                    unit_cents: line.unit_cents,
                    current_unit_cents: d.price_cents,
                    price_changed: line.unit_cents != d.price_cents,
                    flash_sale_id: None,
                    pay_by: None,
                })
            })
            .collect();
        holds.retain(|h| details.contains_key(&h.sku_id));
        lines.extend(holds.iter().map(|h| {
            let d = &details[&h.sku_id];
            CartLine {
                sku_id: h.sku_id,
                product_id: d.product_id,
                title: d.title.clone(),
                quantity: h.quantity,
                unit_cents: h.unit_cents,
                // The sale's price holds for the hold's life, whatever the
                // catalog price does meanwhile.
                current_unit_cents: h.unit_cents,
                price_changed: false,
                flash_sale_id: Some(h.sale_id),
                pay_by: chrono::DateTime::from_timestamp_millis(h.pay_by_ms).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            }
        }));
        lines.sort_by(|a, b| a.title.cmp(&b.title).then(a.sku_id.cmp(&b.sku_id)).then(a.flash_sale_id.cmp(&b.flash_sale_id)));
        let subtotal_cents = lines.iter().map(|l| l.quantity * l.current_unit_cents).sum();
        // The lines' currency (add refuses a second one), read from a line
        // in a fixed order rather than whichever the map yields first.
        let currency = lines.first().and_then(|l| details.get(&l.sku_id)).map(|d| d.currency.clone()).unwrap_or_else(|| "EUR".into());
        Ok((CartView { lines, subtotal_cents, currency }, holds))
    }

    /// The cart became an order: its lines go, and its status says so.
    pub async fn mark_checked_out(&self, owner: &Owner) -> Result<()> {
        let cart = owner.key(self.shop);
        let status = format!("{cart}:status");
        let _: () = redis::pipe()
            .atomic()
            .del(&cart)
            .ignore()
            .set_ex(status, "checked_out", owner.ttl().as_secs())
            .ignore()
            .query_async(&mut self.shop.kv.conn())
            .await?;
        Ok(())
    }

    pub async fn is_checked_out(&self, owner: &Owner) -> Result<bool> {
        let key = format!("{}:status", owner.key(self.shop));
        let status: Option<String> = self.shop.kv.conn().get(key).await?;
        Ok(status.as_deref() == Some("checked_out"))
    }
}
