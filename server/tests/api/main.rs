//! Integration tests: each boots the real application on port 0 against its
//! own fresh PostgreSQL database (`#[sqlx::test]`) and its own Redis key
//! prefix, so they run in parallel. Needs DATABASE_URL and REDIS_URL (the
//! README's test command provides both). Set TEST_LOG=1 to see server logs.

mod helpers;
mod stripe_fake;

mod errors;
mod health;
mod metrics;
mod process;
mod shutdown;
mod storefront;
mod catalog;
mod search;
mod accounts;
mod cart;
mod inventory;
mod orders;
mod payments;
mod checkout;
mod crash;
mod nothing_lost;
mod events;
mod fulfilment;
mod notifications;
mod analytics;
mod reviews;
mod flash;
mod seo;
mod seller_products;
