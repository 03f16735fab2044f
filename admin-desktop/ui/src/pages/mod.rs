//! One module per screen.

pub mod stock;
