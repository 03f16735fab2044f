//! Rate limits on sign-in and sign-up, checked before any Argon2 work, so a
//! refused attempt costs one Redis call and no hashing.
//!
//! Why these buckets (`rl:{<subject>}:<class>`, see `shop::ratelimit`):
//! - `ip:<ip>` / `auth`: every sign-in and sign-up attempt from one address.
//!   Bounds the hashing one source can make us do. Loose, because offices
//!   and mobile carriers put many shoppers behind one address.
//! - `account:<a>:<ip>` / `sign_in_failures`: failed sign-ins for one
//!   account from one address. The tight one: it stops guessing from a
//!   source, and an attacker who exhausts it locks out only their own
//!   address, never the customer's.
//! - `account:<a>` / `sign_in_failures`: failed sign-ins for one account
//!   from addresses that have never signed in to it. Looser, with a short
//!   refill, against guessing spread over many addresses. It is the one
//!   bucket an attacker could drain to aim at a customer, so it is skipped
//!   for addresses that have signed in to this account successfully in the
//!   last `known_address_ttl` (`accounts:known:{<a>}:<ip>`): the customer on
//!   their usual network is never kept out, and on a new network waits at
//!   most one refill (seconds) at a time.
//! - `account:<a>` / `sign_up`: registrations of one email (each costs a hash).
//!
//! Only failures count against the account buckets: success is not guessing,
//! and a family signing in on several devices at once must not trip them.
//! That means a peek before the password check and a charge after a failure;
//! concurrent failures can overshoot by the handful in flight at once,
//! which the per-address bucket bounds. A success also resets its
//! (account, address) bucket, so yesterday's typos do not carry over.
//!
//! `<a>` is a SHA-256 prefix of the normalised email: no address in Redis
//! keys, and no braces from an email breaking a key's hash tag.

use redis::AsyncCommands;
use sha2::{Digest, Sha256};

use crate::ratelimit::Limit;
use crate::{Result, Shop};

const FAILURES: &str = "sign_in_failures";

fn account_id(email: &str) -> String {
    Sha256::digest(email.as_bytes())[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The address bucket every sign-in and sign-up attempt spends from.
async fn spend_address(shop: &Shop, ip: &str) -> Result<()> {
    let limit = shop.accounts_rt.settings.per_address;
    shop.ratelimit().check(&format!("ip:{ip}"), "auth", limit).await?.or_refuse()
}

/// Admits a sign-up of `email` (normalised) from `ip`, or refuses with 429.
pub(crate) async fn admit_sign_up(shop: &Shop, email: &str, ip: &str) -> Result<()> {
    spend_address(shop, ip).await?;
    let limit = shop.accounts_rt.settings.sign_ups_per_account;
    shop.ratelimit().check(&format!("account:{}", account_id(email)), "sign_up", limit).await?.or_refuse()
}

/// One sign-in attempt that has passed the limits; report how it ended.
pub(crate) struct SignIn<'a> {
    shop: &'a Shop,
    account: String,
    ip: String,
    known_address: bool,
}

impl<'a> SignIn<'a> {
    /// Admits a sign-in as `email` (normalised) from `ip`, or refuses with 429.
    pub(crate) async fn admit(shop: &'a Shop, email: &str, ip: &str) -> Result<Self> {
        spend_address(shop, ip).await?;
        let attempt = SignIn { shop, account: account_id(email), ip: ip.to_owned(), known_address: false };
        let settings = &shop.accounts_rt.settings;
        let limits = shop.ratelimit();
        limits.peek(&attempt.pair_subject(), FAILURES, settings.failures_per_account_address).await?.or_refuse()?;
        let known_address: bool = shop.kv.conn().exists(attempt.known_key()).await?;
        if !known_address {
            limits.peek(&attempt.account_subject(), FAILURES, settings.failures_per_account).await?.or_refuse()?;
        }
        Ok(SignIn { known_address, ..attempt })
    }

    fn pair_subject(&self) -> String {
        format!("account:{}:{}", self.account, self.ip)
    }

    fn account_subject(&self) -> String {
        format!("account:{}", self.account)
    }

    fn known_key(&self) -> String {
        self.shop.kv.key(&format!("accounts:known:{{{}}}:{}", self.account, self.ip))
    }

    pub(crate) async fn failed(self) -> Result<()> {
        let settings = &self.shop.accounts_rt.settings;
        let limits = self.shop.ratelimit();
        limits.charge(&self.pair_subject(), FAILURES, settings.failures_per_account_address).await?;
        if !self.known_address {
            limits.charge(&self.account_subject(), FAILURES, settings.failures_per_account).await?;
        }
        Ok(())
    }

    pub(crate) async fn succeeded(self) -> Result<()> {
        let ttl = self.shop.accounts_rt.settings.known_address_ttl.as_secs().max(1);
        let _: () = self.shop.kv.conn().set_ex(self.known_key(), 1, ttl).await?;
        self.shop.ratelimit().reset(&self.pair_subject(), FAILURES).await
    }
}

/// The limits' defaults, in one place with the reasons above.
pub(crate) mod defaults {
    use super::Limit;

    /// 30 at once, then one every 2 s.
    pub const PER_ADDRESS: Limit = Limit { per_second: 0.5, burst: 30 };
    /// 5 failures, then one more every 12 s (5 a minute).
    pub const FAILURES_PER_ACCOUNT_ADDRESS: Limit = Limit { per_second: 1.0 / 12.0, burst: 5 };
    /// 20 failures from new addresses, then one more every 3 s.
    pub const FAILURES_PER_ACCOUNT: Limit = Limit { per_second: 1.0 / 3.0, burst: 20 };
    /// 5 registrations of one email, then one every 12 s.
    pub const SIGN_UPS_PER_ACCOUNT: Limit = Limit { per_second: 1.0 / 12.0, burst: 5 };
}
