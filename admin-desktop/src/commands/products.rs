//! Products: the seller's list (search, keyset paging), one product, create
//! and edit. A create carries the `Idempotency-Key` the form made when it
//! opened, so a retry after a lost answer makes one product, not two.

use model::desktop::CmdError;
use model::seller::{NewProduct, ProductChange, SellerProductPage};
use model::{CategorySummary, Product};
use reqwest::Method;
use serde::Deserialize;
use tauri::State;
use uuid::Uuid;

use crate::Desktop;

#[tauri::command(rename_all = "snake_case")]
pub async fn list_products(
    state: State<'_, Desktop>,
    q: Option<String>,
    cursor: Option<Uuid>,
    limit: Option<u32>,
) -> Result<SellerProductPage, CmdError> {
    let path = super::page_path("api/v1/seller/products", limit, cursor, &[("q", q.as_deref())]);
    state.authed::<(), _>(Method::GET, &path, None).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn get_product(state: State<'_, Desktop>, product_id: Uuid) -> Result<Product, CmdError> {
    state.authed::<(), _>(Method::GET, &format!("api/v1/seller/products/{product_id}"), None).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn create_product(state: State<'_, Desktop>, product: NewProduct, idempotency_key: Uuid) -> Result<Product, CmdError> {
    state.authed_with_key(Method::POST, "api/v1/seller/products", Some(&product), Some(idempotency_key)).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn update_product(state: State<'_, Desktop>, product_id: Uuid, change: ProductChange) -> Result<Product, CmdError> {
    state.authed(Method::PATCH, &format!("api/v1/seller/products/{product_id}"), Some(&change)).await
}

#[derive(Deserialize)]
struct Categories {
    categories: Vec<CategorySummary>,
}

/// The shop's categories, for the product form (public, no session needed).
#[tauri::command(rename_all = "snake_case")]
pub async fn list_categories(state: State<'_, Desktop>) -> Result<Vec<CategorySummary>, CmdError> {
    let c: Categories = state.api.call::<(), _>(Method::GET, "api/v1/categories", None, None).await?;
    Ok(c.categories)
}
