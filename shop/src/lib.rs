//! The business: every service of the design lives in its own module and owns
//! its tables and Redis keys. The server (HTTP) and the storefront's server
//! functions both call these services, so both behave the same.

pub mod catalog;
pub mod db;
pub mod error;
pub mod health;
pub mod kv;

pub use error::{Error, Result};

use sqlx::PgPool;

/// Handles to the shop's backing stores, cheap to clone (pools inside).
#[derive(Clone)]
pub struct Shop {
    pub db: PgPool,
    pub kv: kv::Kv,
}

impl Shop {
    pub fn new(db: PgPool, kv: kv::Kv) -> Self {
        Self { db, kv }
    }

    pub fn catalog(&self) -> catalog::Catalog<'_> {
        catalog::Catalog::new(self)
    }
}
