pub mod error_view;
pub mod icons;
pub mod layout;
pub mod product_card;
