//! Server functions: the storefront's only door to the shop. Under `ssr` they
//! call `shop` services; in the browser they become fetches.

use leptos::prelude::*;
use model::{CategorySummary, ProductSummary};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HomeData {
    pub categories: Vec<CategorySummary>,
    pub new_arrivals: Vec<ProductSummary>,
}

#[server]
pub async fn get_home() -> Result<HomeData, ServerFnError> {
    let shop = expect_context::<shop::Shop>();
    let catalog = shop.catalog();
    Ok(HomeData {
        categories: catalog.top_categories().await.map_err(to_client_error)?,
        new_arrivals: catalog.new_arrivals(8).await.map_err(to_client_error)?,
    })
}

/// Logs the shop error with its cause and hands the browser only what it may
/// show a shopper.
#[cfg(feature = "ssr")]
fn to_client_error(err: shop::Error) -> ServerFnError {
    match &err {
        shop::Error::Unavailable { dependency, .. } => {
            tracing::warn!(error = ?err, %dependency, "server fn: dependency unavailable");
            ServerFnError::new("The shop is briefly unavailable. Please try again in a moment.")
        }
        shop::Error::NotFound { .. } | shop::Error::Invalid(_) => ServerFnError::new(err.to_string()),
        shop::Error::Internal(_) => {
            tracing::error!(error = ?err, "server fn failed");
            ServerFnError::new("Something went wrong on our side.")
        }
    }
}
