pub mod error_view;
pub mod filters;
pub mod icons;
pub mod layout;
pub mod product_card;
pub mod rating;
