pub mod account;
pub mod cart;
pub mod category;
pub mod home;
pub mod not_found;
pub mod product;
pub mod search;
