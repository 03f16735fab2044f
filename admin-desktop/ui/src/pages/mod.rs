//! One module per screen.

pub mod admin;
pub mod flash;
pub mod orders;
pub mod products;
pub mod stock;
