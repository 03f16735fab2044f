//! Accounts: registration, sign-in and sessions. Owns the `users` table and
//! the `session:{…}`, `sessions:{…}` and `accounts:known:{…}` Redis keys.
//!
//! Sign-in and sign-up are rate limited (`guard`) and their Argon2 work is
//! bounded per process (`password::Hashing`): both are settings of the
//! shop's [`Runtime`].

mod guard;
pub mod password;
pub mod session;
pub mod web;

use std::time::Duration;

use model::{Role, User};
use uuid::Uuid;

use crate::ratelimit::Limit;
use crate::secret::Secret;
use crate::{Error, Result, Shop};

pub use session::SessionData;

/// Limits for sign-in and sign-up (why these: `guard.rs`), and the Argon2 budget.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Every sign-in and sign-up attempt from one client address.
    pub per_address: Limit,
    /// Failed sign-ins for one account from one address.
    pub failures_per_account_address: Limit,
    /// Failed sign-ins for one account from addresses that never signed in to it.
    pub failures_per_account: Limit,
    /// Registrations of one email address.
    pub sign_ups_per_account: Limit,
    /// How long a successful sign-in keeps its address exempt from the per-account bucket.
    pub known_address_ttl: Duration,
    /// Memory all concurrent Argon2 hashes may hold together (KiB).
    pub hashing_memory_budget_kib: u32,
    /// How long a sign-in waits for a hashing slot before it gets 503.
    pub hashing_queue_wait: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            per_address: guard::defaults::PER_ADDRESS,
            failures_per_account_address: guard::defaults::FAILURES_PER_ACCOUNT_ADDRESS,
            failures_per_account: guard::defaults::FAILURES_PER_ACCOUNT,
            sign_ups_per_account: guard::defaults::SIGN_UPS_PER_ACCOUNT,
            known_address_ttl: Duration::from_secs(30 * 24 * 3600),
            // Six 19 MiB hashes at once: on a 2-core box that is already
            // more CPU than hashing gets. A waiting caller holds no Argon2
            // memory, so it may wait a few seconds (a dozen rounds of six
            // hashes in a release build, a couple in a loaded debug build);
            // past that the box is flooded and a 503 is the honest answer.
            hashing_memory_budget_kib: 128 * 1024,
            hashing_queue_wait: Duration::from_secs(5),
        }
    }
}

/// The accounts service's per-process state: its settings and the Argon2 slots.
#[derive(Debug)]
pub struct Runtime {
    pub settings: Settings,
    pub hashing: password::Hashing,
}

impl Runtime {
    pub fn new(settings: Settings) -> Self {
        let hashing = password::Hashing::new(settings.hashing_memory_budget_kib, settings.hashing_queue_wait);
        Self { settings, hashing }
    }
}

pub struct Accounts<'a> {
    shop: &'a Shop,
}

/// What a successful sign-up or sign-in hands back: the user and a session token.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub user: User,
    pub token: Secret<String>,
}

/// Trimmed and lower-cased, with a plausible shape; `None` when it is not an address.
pub fn normalise_email(raw: &str) -> Option<String> {
    let email = raw.trim().to_lowercase();
    let (local, domain) = email.split_once('@')?;
    let plausible = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && email.len() <= 254
        && !email.chars().any(char::is_whitespace);
    plausible.then_some(email)
}

impl<'a> Accounts<'a> {
    pub(crate) fn new(shop: &'a Shop) -> Self {
        Self { shop }
    }

    /// A customer signs up from `client_ip`: checked against the rules
    /// first (free), then the sign-up limits (429), then hashed.
    pub async fn register(&self, email: &str, password: &str, name: &str, client_ip: &str) -> Result<SignedIn> {
        let (email, name) = Self::check_new_user(email, password, name)?;
        guard::admit_sign_up(self.shop, &email, client_ip).await?;
        let user = self.insert_user(&email, password, &name, Role::Customer, None).await?;
        let token = session::create(&self.shop.kv, &user).await?;
        Ok(SignedIn { user, token: Secret::new(token) })
    }

    /// The normalised email and trimmed name, or why they (or the password) are refused.
    fn check_new_user(email: &str, password: &str, name: &str) -> Result<(String, String)> {
        let email = normalise_email(email).ok_or_else(|| Error::Invalid("enter a valid email address".into()))?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(Error::Invalid("a name needs 1 to 100 characters".into()));
        }
        password::check_rules(password, &email)?;
        Ok((email, name.to_owned()))
    }

    /// Creates a user of any role (demo accounts, admin tooling, tests):
    /// no rate limit, as no client is asking.
    pub async fn create_user(
        &self,
        email: &str,
        password: &str,
        name: &str,
        role: Role,
        seller_id: Option<Uuid>,
    ) -> Result<User> {
        let (email, name) = Self::check_new_user(email, password, name)?;
        self.insert_user(&email, password, &name, role, seller_id).await
    }

    async fn insert_user(&self, email: &str, password: &str, name: &str, role: Role, seller_id: Option<Uuid>) -> Result<User> {
        let hash = self.shop.accounts_rt.hashing.hash(password.to_owned()).await?;
        let id = Uuid::now_v7();
        let inserted = sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, role, seller_id) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(email)
        .bind(name)
        .bind(&hash)
        .bind(role.as_str())
        .bind(seller_id)
        .execute(&self.shop.db)
        .await;
        match inserted {
            Ok(_) => Ok(User { id, email: email.to_owned(), name: name.to_owned(), role, seller_id }),
            Err(sqlx::Error::Database(db)) if db.constraint() == Some("users_email_key") => Err(Error::Conflict {
                code: "email_taken",
                message: "an account with this email already exists; sign in instead".into(),
                details: None,
            }),
            Err(err) => Err(err.into()),
        }
    }

    /// Signs in from `client_ip`, within the sign-in limits (429 before any
    /// hashing when over them). A wrong password and an unknown email get
    /// the same answer in the same time.
    pub async fn login(&self, email: &str, password: &str, client_ip: &str) -> Result<SignedIn> {
        let email = normalise_email(email).unwrap_or_default();
        let attempt = guard::SignIn::admit(self.shop, &email, client_ip).await?;
        let mut user = match self.check_password(&email, password).await {
            Ok(user) => user,
            Err(err @ Error::Unauthorized(_)) => {
                attempt.failed().await?;
                return Err(err);
            }
            Err(err) => return Err(err),
        };
        attempt.succeeded().await?;
        let token = session::create(&self.shop.kv, &user).await?;
        // A role change that committed after our read above may have revoked
        // the user's sessions before this one was listed; read the row again
        // (it is committed by now) so the new session cannot keep a stale role.
        if let Some(current) = self.user(user.id).await? {
            if current != user {
                session::refresh_user(&self.shop.kv, &token, &current).await?;
                user = current;
            }
        }
        Ok(SignedIn { user, token: Secret::new(token) })
    }

    async fn check_password(&self, email: &str, password: &str) -> Result<User> {
        const WRONG: &str = "wrong email or password";
        let row: Option<(Uuid, String, String, String, Option<Uuid>)> = sqlx::query_as(
            "SELECT id, name, password_hash, role, seller_id FROM users WHERE email = $1",
        )
        .bind(email)
        .fetch_optional(&self.shop.db)
        .await?;
        let phc = row.as_ref().map(|r| r.2.clone());
        if !self.shop.accounts_rt.hashing.verify(password.to_owned(), phc).await? {
            return Err(Error::Unauthorized(WRONG));
        }
        let (id, name, _, role, seller_id) = row.ok_or(Error::Unauthorized(WRONG))?;
        let role = Role::parse(&role).ok_or_else(|| Error::internal(format!("unknown role {role}")))?;
        Ok(User { id, email: email.to_owned(), name, role, seller_id })
    }

    /// A user as PostgreSQL has it now.
    pub async fn user(&self, id: Uuid) -> Result<Option<User>> {
        let row: Option<(String, String, String, Option<Uuid>)> =
            sqlx::query_as("SELECT email, name, role, seller_id FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.shop.db)
                .await?;
        row.map(|(email, name, role, seller_id)| {
            let role = Role::parse(&role).ok_or_else(|| Error::internal(format!("unknown role {role}")))?;
            Ok(User { id, email, name, role, seller_id })
        })
        .transpose()
    }

    /// Changes a user's role (and the seller shop a seller acts for), then
    /// revokes every session of theirs: sessions carry the role, so this is
    /// the one way roles may change (a direct UPDATE would leave sessions
    /// acting with the old role until they expire).
    pub async fn set_role(&self, user: Uuid, role: Role, seller_id: Option<Uuid>) -> Result<User> {
        let updated = sqlx::query("UPDATE users SET role = $2, seller_id = $3 WHERE id = $1")
            .bind(user)
            .bind(role.as_str())
            .bind(seller_id)
            .execute(&self.shop.db)
            .await;
        match updated {
            Ok(done) if done.rows_affected() == 0 => return Err(Error::NotFound { what: "user" }),
            Ok(_) => {}
            Err(sqlx::Error::Database(db)) if db.constraint() == Some("users_seller_has_a_shop") => {
                return Err(Error::Invalid("a seller needs a seller shop, and only sellers have one".into()))
            }
            Err(err) => return Err(err.into()),
        }
        let revoked = session::revoke_all(&self.shop.kv, user).await?;
        tracing::info!(%user, role = role.as_str(), revoked, "role changed; sessions revoked");
        self.user(user).await?.ok_or(Error::NotFound { what: "user" })
    }

    /// The user behind a session token, if the session is live.
    pub async fn authenticate(&self, token: &str) -> Result<Option<User>> {
        Ok(session::load(&self.shop.kv, token).await?.map(|s| s.user))
    }

    /// Ends the session: the token stops working immediately.
    pub async fn logout(&self, token: &str) -> Result<()> {
        session::end(&self.shop.kv, token).await
    }
}

impl Accounts<'_> {
    /// Creates `count` customers for load tests in one statement, all with
    /// one password hashed once (so no per-user Argon2 cost), and signs each
    /// in. Returns their session tokens.
    pub async fn create_load_test_users(&self, count: usize, password: &str) -> Result<Vec<String>> {
        let hash = self.shop.accounts_rt.hashing.hash(password.to_owned()).await?;
        let run = Uuid::now_v7().simple().to_string();
        let ids: Vec<Uuid> = (0..count).map(|_| Uuid::now_v7()).collect();
        let emails: Vec<String> = (0..count).map(|i| format!("load-{run}-{i}@loadtest.mercato.test")).collect();
        sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, role)
             SELECT id, email, 'Load Test', $3, 'customer' FROM unnest($1::uuid[], $2::text[]) AS t(id, email)",
        )
        .bind(&ids)
        .bind(&emails)
        .bind(&hash)
        .execute(&self.shop.db)
        .await?;
        let mut tokens = Vec::with_capacity(count);
        for chunk in ids.iter().zip(&emails).collect::<Vec<_>>().chunks(1_000) {
            let users: Vec<User> = chunk
                .iter()
                .map(|(id, email)| User { id: **id, email: (*email).clone(), name: "Load Test".into(), role: Role::Customer, seller_id: None })
                .collect();
            tokens.extend(session::create_many(&self.shop.kv, &users).await?);
        }
        Ok(tokens)
    }
}

/// The demo accounts `server seed` creates, one per role: (role, email, password, name).
pub const DEMO_ACCOUNTS: [(Role, &str, &str, &str); 3] = [
    (Role::Customer, "ada@mercato.test", "shop-demo-2026", "Ada Lovelace"),
    (Role::Seller, "seller@mercato.test", "sell-demo-2026", "Northwind Traders"),
    (Role::Admin, "admin@mercato.test", "admin-demo-2026", "Mercato Admin"),
];

impl Accounts<'_> {
    /// Creates the demo accounts; the seller acts for the demo catalog's first seller.
    pub async fn seed_demo(&self) -> Result<Vec<User>> {
        let seller = self.shop.catalog().first_seller().await?;
        let mut users = Vec::new();
        for (role, email, password, name) in DEMO_ACCOUNTS {
            let seller_id = (role == Role::Seller).then_some(seller.id);
            users.push(self.create_user(email, password, name, role, seller_id).await?);
        }
        Ok(users)
    }
}

#[cfg(test)]
mod tests {
    use super::normalise_email;

    #[test]
    fn emails_are_normalised_or_refused() {
        assert_eq!(normalise_email("  Ada@Example.COM ").as_deref(), Some("ada@example.com"));
        for bad in ["", "ada", "ada@", "@example.com", "ada@example", "ada@.com", "a da@example.com", "a@b@c.com"] {
            assert_eq!(normalise_email(bad), None, "{bad}");
        }
    }
}
