//! Wire types: what crosses the network between the storefront, the server
//! and (later) the desktop app. Serde only, so it compiles to wasm too.

pub mod catalog;
pub mod money;
pub mod query;

pub use catalog::{
    Availability, BrowsePage, CategorySummary, Facets, Image, NamedRef, PriceBucket, Product, ProductSummary,
    SearchPage, Sku, SkuStock, Sort, Suggestion,
};
pub use money::format_price;
pub use query::{ListingFilters, QueryError, SearchParams};
pub mod account;
pub use account::{Role, User};
pub mod cart;
pub mod order;
pub use cart::{CartLine, CartView};
pub use order::{OrderItem, OrderPage, OrderStatus, OrderSummary, OrderView, Parcel, StatusChange};
pub mod review;
pub use review::{Review, ReviewPage, ReviewRequest, ReviewSort};
pub mod flash;
pub mod time;
pub use flash::{BuyRequest, FlashLive, FlashReport, FlashSale, FlashSalePage, FlashSaleStatus, MyFlashState, NewFlashSale, PublicFlashSale, PublicFlashStatus};
pub mod seller;
pub use seller::{NewProduct, NewSku, ProductChange, SellerProduct, SellerProductPage, SkuChange};
pub mod inventory;
pub use inventory::{SkuStockPage, SkuStockRow};
pub mod error;
pub use error::ApiErrorBody;
pub mod desktop;
