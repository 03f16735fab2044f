//! Background workers a server process runs beside the router. Each loops
//! until the process shuts down; a failed round is logged and retried on the
//! next tick, never fatal.

pub mod analytics;
pub mod backoff;
pub mod checkout;
pub mod consumer;
pub mod flash;
pub mod fulfilment;
pub mod inventory;
pub mod notifications;
pub mod relay;
pub mod search_indexer;
pub mod search_sync;
