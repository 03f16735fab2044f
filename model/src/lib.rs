//! Wire types: what crosses the network between the storefront, the server
//! and (later) the desktop app. Serde only, so it compiles to wasm too.

pub mod catalog;
pub mod money;

pub use catalog::{CategorySummary, ProductSummary};
pub use money::format_price;
