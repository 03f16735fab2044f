use std::time::Duration;

/// The shop layer's one error type. The HTTP layer maps each variant to a
/// status code once; the messages here may reach clients, the sources never do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} not found")]
    NotFound { what: &'static str },

    #[error("{0}")]
    Invalid(String),

    /// A request that cannot be carried out as sent (HTTP 422) with a
    /// specific code, e.g. `idempotency_key_reused`.
    #[error("{message}")]
    Rejected { code: &'static str, message: String },

    /// The caller is not who they claim (HTTP 401). The message never says
    /// which part was wrong.
    #[error("{0}")]
    Unauthorized(&'static str),

    /// The caller is known but may not do this (HTTP 403) for a reason a
    /// client can act on, named by `code` (e.g. `not_a_verified_buyer`).
    #[error("{message}")]
    Forbidden { code: &'static str, message: &'static str },

    /// A clash with existing state (HTTP 409), e.g. an email already
    /// registered or a SKU sold out; `details` adds the numbers a client
    /// needs (which SKU, how many were left).
    #[error("{message}")]
    Conflict { code: &'static str, message: String, details: Option<serde_json::Value> },

    /// The card was refused (HTTP 402); `decline_code` is the provider's
    /// (e.g. `generic_decline`, `insufficient_funds`).
    #[error("{message}")]
    PaymentDeclined { decline_code: String, message: String },

    /// Too many requests of one kind from one subject (HTTP 429).
    #[error("too many requests, slow down")]
    RateLimited { retry_after: Duration },

    /// A request parameter that cannot be used (HTTP 400 naming it).
    #[error("invalid `{param}`: {message}")]
    BadInput { param: String, message: String },

    #[error("{dependency} is unavailable")]
    Unavailable {
        dependency: Dependency,
        retry_after: Duration,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The external systems a request may depend on; named in 503 answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    Postgres,
    Redis,
    Search,
    Payments,
    /// Not an outside system: this process's bounded Argon2 capacity
    /// (`accounts::password::Hashing`), full for longer than a caller may queue.
    PasswordHashing,
    /// The SMTP server customer emails go through.
    Mail,
}

impl Dependency {
    pub fn name(self) -> &'static str {
        match self {
            Dependency::Postgres => "postgres",
            Dependency::Redis => "redis",
            Dependency::Search => "search",
            Dependency::Payments => "payments",
            Dependency::PasswordHashing => "password_hashing",
            Dependency::Mail => "mail",
        }
    }
}

impl std::fmt::Display for Dependency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        match err {
            // A pool that cannot hand out a connection means the database is
            // down or saturated: the caller should retry, not see a 500.
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                Error::Unavailable {
                    dependency: Dependency::Postgres,
                    retry_after: Duration::from_secs(5),
                    source: Box::new(err),
                }
            }
            // A lock wait or a statement past the pool's timeouts
            // (`db::Timeouts`): the database is too busy right now, retry.
            sqlx::Error::Database(ref db) if matches!(db.code().as_deref(), Some("55P03" | "57014")) => Error::Unavailable {
                dependency: Dependency::Postgres,
                retry_after: Duration::from_secs(2),
                source: Box::new(err),
            },
            // PostgreSQL chose this transaction as a deadlock's victim (or a
            // serialization failure): nothing of it was kept, and running it
            // again succeeds. Callers that can, retry at once
            // ([`Error::is_transaction_conflict`]); the rest answer 503.
            sqlx::Error::Database(ref db) if matches!(db.code().as_deref(), Some(DEADLOCK | SERIALIZATION_FAILURE)) => Error::Unavailable {
                dependency: Dependency::Postgres,
                retry_after: Duration::from_secs(1),
                source: Box::new(err),
            },
            // A flash sale's set-aside short of an order's units, found by
            // the COMMIT that applies the take (inventory's `set_aside`).
            other => crate::inventory::set_aside_refusal(&other).unwrap_or_else(|| Error::Internal(Box::new(other))),
        }
    }
}

const DEADLOCK: &str = "40P01";
const SERIALIZATION_FAILURE: &str = "40001";

impl From<redis::RedisError> for Error {
    fn from(err: redis::RedisError) -> Self {
        if err.is_io_error()
            || err.is_connection_dropped()
            || err.is_connection_refusal()
            || err.is_timeout()
        {
            Error::Unavailable {
                dependency: Dependency::Redis,
                retry_after: Duration::from_secs(2),
                source: Box::new(err),
            }
        } else {
            Error::Internal(Box::new(err))
        }
    }
}

impl From<model::QueryError> for Error {
    fn from(err: model::QueryError) -> Self {
        Error::BadInput { param: err.param, message: err.message }
    }
}

impl Error {
    pub fn internal(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::Internal(err.into())
    }

    pub fn bad_input(param: &str, message: impl Into<String>) -> Self {
        Error::BadInput { param: param.to_owned(), message: message.into() }
    }

    /// PostgreSQL rolled the transaction back to break a deadlock or a
    /// serialization conflict: the whole transaction may simply run again.
    pub fn is_transaction_conflict(&self) -> bool {
        let Error::Unavailable { source, .. } = self else { return false };
        match source.downcast_ref::<sqlx::Error>() {
            Some(sqlx::Error::Database(db)) => matches!(db.code().as_deref(), Some(DEADLOCK | SERIALIZATION_FAILURE)),
            _ => false,
        }
    }
}
