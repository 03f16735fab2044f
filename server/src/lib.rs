//! The Mercato server as a library, so `main` and the integration tests boot
//! exactly the same application.

// serde_json::json! recurses once per token tree; the OpenAPI document is big.
#![recursion_limit = "256"]

pub mod cli;
pub mod config;
pub mod http;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod workers;
