//! Accounts: registration, sign-in and sessions. Owns the `users` table and
//! the `session:{…}` Redis keys.

pub mod password;
pub mod session;
pub mod web;

use model::{Role, User};
use uuid::Uuid;

use crate::{Error, Result, Shop};

pub use session::SessionData;

pub struct Accounts<'a> {
    shop: &'a Shop,
}

/// What a successful sign-up or sign-in hands back: the user and a session token.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub user: User,
    pub token: String,
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

    pub async fn register(&self, email: &str, password: &str, name: &str) -> Result<SignedIn> {
        let user = self.create_user(email, password, name, Role::Customer, None).await?;
        let token = session::create(&self.shop.kv, &user).await?;
        Ok(SignedIn { user, token })
    }

    /// Creates a user of any role (demo accounts, admin tooling).
    pub async fn create_user(
        &self,
        email: &str,
        password: &str,
        name: &str,
        role: Role,
        seller_id: Option<Uuid>,
    ) -> Result<User> {
        let email = normalise_email(email).ok_or_else(|| Error::Invalid("enter a valid email address".into()))?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(Error::Invalid("a name needs 1 to 100 characters".into()));
        }
        password::check_rules(password, &email)?;
        let hash = password::hash(password.to_owned()).await?;
        let id = Uuid::now_v7();
        let inserted = sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, role, seller_id) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(&email)
        .bind(name)
        .bind(&hash)
        .bind(role.as_str())
        .bind(seller_id)
        .execute(&self.shop.db)
        .await;
        match inserted {
            Ok(_) => Ok(User { id, email, name: name.to_owned(), role, seller_id }),
            Err(sqlx::Error::Database(db)) if db.constraint() == Some("users_email_key") => Err(Error::Conflict {
                code: "email_taken",
                message: "an account with this email already exists; sign in instead".into(),
                details: None,
            }),
            Err(err) => Err(err.into()),
        }
    }

    /// Checks the password; a wrong password and an unknown email get the
    /// same answer in the same time.
    pub async fn login(&self, email: &str, password: &str) -> Result<SignedIn> {
        const WRONG: &str = "wrong email or password";
        let email = normalise_email(email).unwrap_or_default();
        let row: Option<(Uuid, String, String, String, Option<Uuid>)> = sqlx::query_as(
            "SELECT id, name, password_hash, role, seller_id FROM users WHERE email = $1",
        )
        .bind(&email)
        .fetch_optional(&self.shop.db)
        .await?;
        let phc = row.as_ref().map(|r| r.2.clone());
        if !password::verify(password.to_owned(), phc).await? {
            return Err(Error::Unauthorized(WRONG));
        }
        let (id, name, _, role, seller_id) = row.ok_or(Error::Unauthorized(WRONG))?;
        let role = Role::parse(&role).ok_or_else(|| Error::internal(format!("unknown role {role}")))?;
        let user = User { id, email, name, role, seller_id };
        let token = session::create(&self.shop.kv, &user).await?;
        Ok(SignedIn { user, token })
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
        let hash = password::hash(password.to_owned()).await?;
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
