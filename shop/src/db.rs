//! PostgreSQL: the pool and the migrations (the schema in /migrations is the
//! source of truth).

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Bounds on how long one statement, or one wait for a lock, may take on
/// the server's connections.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// A statement running longer is cancelled (SQLSTATE 57014).
    pub statement: Duration,
    /// A wait for a row or table lock longer than this fails (55P03). Waits
    /// PostgreSQL cannot see as a deadlock (a lock held on one connection by
    /// a task that waits for another connection of ours) end here instead
    /// of freezing a hot SKU's row for ever.
    pub lock: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        // Generous for a hot row under a flash sale (confirmations queue on
        // it for tens of milliseconds each), short enough to unfreeze.
        Self { statement: Duration::from_secs(30), lock: Duration::from_secs(10) }
    }
}

/// Opens the pool and proves the server answers, so a wrong DATABASE_URL fails
/// at startup rather than on the first request.
pub async fn connect(options: PgConnectOptions, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    connect_with_timeouts(options, max_connections, Timeouts::default()).await
}

pub async fn connect_with_timeouts(options: PgConnectOptions, max_connections: u32, timeouts: Timeouts) -> Result<PgPool, sqlx::Error> {
    let options = options.options([
        ("statement_timeout", format!("{}ms", timeouts.statement.as_millis())),
        ("lock_timeout", format!("{}ms", timeouts.lock.as_millis())),
    ]);
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
}

pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// This database's own id (one row, made by the migrations): outside state
/// built from the database names it, so it never outlives the database.
pub async fn installation(pool: &PgPool) -> Result<uuid::Uuid, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM installation").fetch_one(pool).await
}
