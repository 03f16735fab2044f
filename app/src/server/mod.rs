//! Server functions: the storefront's only door to the shop. Under `ssr` they
//! call `shop` services; in the browser they become fetches. Catalog and
//! search here; accounts and the cart in `account`; checkout and orders in
//! `orders`.

pub mod account;
pub mod flash;
pub mod orders;
pub mod reviews;

use leptos::prelude::*;
use model::{BrowsePage, CategorySummary, Product, ProductSummary, SearchPage, SkuStock, Suggestion};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HomeData {
    pub categories: Vec<CategorySummary>,
    pub new_arrivals: Vec<ProductSummary>,
    pub top_rated: Vec<ProductSummary>,
}

#[server]
pub async fn get_home() -> Result<HomeData, ServerFnError> {
    let shop = expect_context::<shop::Shop>();
    let catalog = shop.catalog();
    let top_rated = shop
        .search()
        .run(&model::SearchParams {
            sort: model::Sort::Rating,
            per_page: 4,
            filters: model::ListingFilters { in_stock: true, ..Default::default() },
            ..Default::default()
        })
        .await
        .map_err(to_client_error)?
        .hits;
    Ok(HomeData {
        categories: catalog.top_categories().await.map_err(to_client_error)?,
        new_arrivals: catalog.new_arrivals(8).await.map_err(to_client_error)?,
        top_rated,
    })
}

/// Every category, for navigation.
#[server]
pub async fn get_categories() -> Result<Vec<CategorySummary>, ServerFnError> {
    let shop = expect_context::<shop::Shop>();
    shop.catalog().categories().await.map_err(to_client_error)
}

/// What a page asks for and may not get: `Missing` becomes a 404 page,
/// `Invalid` a 400 naming the parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PageResult<T> {
    Found(T),
    Missing,
    Invalid(String),
}

#[server]
pub async fn get_category(slug: String, query: Vec<(String, String)>) -> Result<PageResult<BrowsePage>, ServerFnError> {
    let params = match model::SearchParams::from_owned_pairs(&query) {
        Ok(p) => p,
        Err(err) => return Ok(PageResult::Invalid(err.to_string())),
    };
    let shop = expect_context::<shop::Shop>();
    page_result(shop.catalog().browse(&slug, &params).await)
}

#[server]
pub async fn search_products(query: Vec<(String, String)>) -> Result<PageResult<SearchPage>, ServerFnError> {
    let params = match model::SearchParams::from_owned_pairs(&query) {
        Ok(p) => p,
        Err(err) => return Ok(PageResult::Invalid(err.to_string())),
    };
    let shop = expect_context::<shop::Shop>();
    page_result(shop.search().run(&params).await)
}

#[server]
pub async fn get_product(id: String) -> Result<PageResult<Product>, ServerFnError> {
    let Ok(id) = uuid::Uuid::try_parse(&id) else {
        return Ok(PageResult::Missing);
    };
    let shop = expect_context::<shop::Shop>();
    page_result(shop.catalog().product(id).await)
}

/// Live stock, fetched by the hydrated product page: the HTML may have come
/// from a CDN cache, this never does.
#[server]
pub async fn get_stock(id: String) -> Result<Vec<SkuStock>, ServerFnError> {
    let id = uuid::Uuid::try_parse(&id).map_err(|_| ServerFnError::new("not a product id"))?;
    let shop = expect_context::<shop::Shop>();
    shop.catalog().stock(id).await.map_err(to_client_error)
}

#[server]
pub async fn suggest(q: String) -> Result<Vec<Suggestion>, ServerFnError> {
    let shop = expect_context::<shop::Shop>();
    shop.search().suggest(&q).await.map_err(to_client_error)
}

#[cfg(feature = "ssr")]
fn page_result<T>(result: shop::Result<T>) -> Result<PageResult<T>, ServerFnError> {
    match result {
        Ok(value) => Ok(PageResult::Found(value)),
        Err(shop::Error::NotFound { .. }) => Ok(PageResult::Missing),
        Err(shop::Error::BadInput { param, message }) => Ok(PageResult::Invalid(format!("invalid `{param}`: {message}"))),
        Err(err) => Err(to_client_error(err)),
    }
}

/// A refusal decided here rather than in `shop`: the HTTP status a REST
/// client would get, and the message for the shopper.
#[cfg(feature = "ssr")]
pub(crate) fn refuse(status: http::StatusCode, message: &str) -> ServerFnError {
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(status);
    }
    ServerFnError::new(message)
}

/// Logs the shop error with its cause, sets the HTTP status a REST client
/// would get for it (so a failed call is never a bare 500), and hands the
/// browser only what it may show a shopper.
#[cfg(feature = "ssr")]
pub(crate) fn to_client_error(err: shop::Error) -> ServerFnError {
    use http::{header, HeaderValue, StatusCode};
    let (status, retry_after) = match &err {
        shop::Error::NotFound { .. } => (StatusCode::NOT_FOUND, None),
        shop::Error::Invalid(_) | shop::Error::Rejected { .. } => (StatusCode::UNPROCESSABLE_ENTITY, None),
        shop::Error::BadInput { .. } => (StatusCode::BAD_REQUEST, None),
        shop::Error::Unauthorized(_) => (StatusCode::UNAUTHORIZED, None),
        shop::Error::Forbidden { .. } => (StatusCode::FORBIDDEN, None),
        shop::Error::Conflict { .. } => (StatusCode::CONFLICT, None),
        shop::Error::PaymentDeclined { .. } => (StatusCode::PAYMENT_REQUIRED, None),
        shop::Error::RateLimited { retry_after } => (StatusCode::TOO_MANY_REQUESTS, Some(*retry_after)),
        shop::Error::Unavailable { retry_after, .. } => (StatusCode::SERVICE_UNAVAILABLE, Some(*retry_after)),
        shop::Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, None),
    };
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(status);
        if let Some(after) = retry_after {
            response.insert_header(header::RETRY_AFTER, HeaderValue::from(after.as_secs().max(1)));
        }
    }
    match &err {
        shop::Error::Unavailable { dependency, .. } => {
            tracing::warn!(error = ?err, %dependency, "server fn: dependency unavailable");
            ServerFnError::new("The shop is briefly unavailable. Please try again in a moment.")
        }
        shop::Error::RateLimited { .. } => ServerFnError::new("You are adding items very fast. Please wait a second and try again."),
        shop::Error::NotFound { .. }
        | shop::Error::Invalid(_)
        | shop::Error::Rejected { .. }
        | shop::Error::BadInput { .. }
        | shop::Error::Unauthorized(_)
        | shop::Error::Forbidden { .. }
        | shop::Error::Conflict { .. }
        | shop::Error::PaymentDeclined { .. } => ServerFnError::new(err.to_string()),
        shop::Error::Internal(_) => {
            tracing::error!(error = ?err, "server fn failed");
            ServerFnError::new("Something went wrong on our side.")
        }
    }
}
