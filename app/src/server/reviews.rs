//! Server functions for reviews: the product page's list, and the form a
//! verified buyer writes (or edits) theirs with. They call the same
//! `shop::reviews` as the REST API.

use leptos::prelude::*;
use model::{Review, ReviewPage};
use serde::{Deserialize, Serialize};

use super::PageResult;

pub const REVIEWS_PER_PAGE: i64 = 5;

/// One page of a product's reviews. `sort` is `newest` (the default) or
/// `helpful`; a cursor that is not a review id is a stale link: first page.
#[server]
pub async fn get_reviews(product_id: String, sort: Option<String>, cursor: Option<String>) -> Result<PageResult<ReviewPage>, ServerFnError> {
    let Ok(product) = uuid::Uuid::try_parse(&product_id) else { return Ok(PageResult::Missing) };
    let sort = sort.as_deref().and_then(model::ReviewSort::parse).unwrap_or_default();
    let cursor = cursor.as_deref().and_then(|c| uuid::Uuid::try_parse(c).ok());
    let shop = expect_context::<shop::Shop>();
    super::page_result(shop.reviews().list(product, sort, REVIEWS_PER_PAGE, cursor).await)
}

/// What the review form shows for the signed-in customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ReviewForm {
    SignedOut,
    /// Signed in, but without a delivered order containing the product.
    NotABuyer { title: String },
    Ready { title: String, existing: Option<Review> },
}

#[server]
pub async fn get_review_form(product_id: String) -> Result<PageResult<ReviewForm>, ServerFnError> {
    let Ok(product) = uuid::Uuid::try_parse(&product_id) else { return Ok(PageResult::Missing) };
    let shop = expect_context::<shop::Shop>();
    let title = match super::page_result(shop.catalog().product(product).await)? {
        PageResult::Found(p) => p.title,
        PageResult::Missing => return Ok(PageResult::Missing),
        PageResult::Invalid(why) => return Ok(PageResult::Invalid(why)),
    };
    let req = super::account::web::Request::read().await;
    let Some(user) = super::orders::signed_in(&req, &shop).await? else { return Ok(PageResult::Found(ReviewForm::SignedOut)) };
    let (allowed, existing) = shop.reviews().draft(user.id, product).await.map_err(super::to_client_error)?;
    Ok(PageResult::Found(if allowed { ReviewForm::Ready { title, existing } } else { ReviewForm::NotABuyer { title } }))
}

/// Where a product's reviews start on its page.
pub fn reviews_path(product_id: &str) -> String {
    format!("/products/{product_id}?reviewed=1#reviews")
}

/// Writes (or replaces) the customer's review. `rating` is optional so an
/// unchosen star rating is a message, not a malformed form. A fixed path
/// (`/api/write_review`): a form without JavaScript posts to it and lands
/// back on the product's reviews.
#[server(endpoint = "write_review")]
pub async fn write_review(product_id: String, rating: Option<String>, title: String, body: String) -> Result<String, ServerFnError> {
    let shop = expect_context::<shop::Shop>();
    let req = super::account::web::Request::read().await;
    req.require_same_origin()?;
    let Some(user) = super::orders::signed_in(&req, &shop).await? else {
        return Err(super::to_client_error(shop::Error::Unauthorized("sign in to write a review".into())));
    };
    let product = uuid::Uuid::try_parse(&product_id).map_err(|_| super::to_client_error(shop::Error::NotFound { what: "product" }))?;
    let Some(rating) = rating.as_deref().and_then(|r| r.trim().parse::<i64>().ok()) else {
        return Err(super::to_client_error(shop::Error::Invalid("Choose a rating from 1 to 5 stars.".into())));
    };
    let request = model::ReviewRequest { rating, title, body };
    shop.reviews().write(user.id, product, &request).await.map_err(|err| super::to_client_error(in_words(err)))?;
    if req.wants_html() {
        leptos_axum::redirect(&reviews_path(&product_id));
    }
    Ok(product_id)
}

/// The shop's messages name JSON fields; the form names what the customer sees.
#[cfg(feature = "ssr")]
fn in_words(err: shop::Error) -> shop::Error {
    match err {
        shop::Error::Invalid(message) => shop::Error::Invalid(
            message.replacen("rating must", "The rating must", 1).replacen("title must", "The headline must", 1).replacen("body must", "Your review must", 1),
        ),
        shop::Error::Forbidden { code, .. } => shop::Error::Forbidden {
            code,
            message: "Only a customer whose order with this product has been delivered can review it.",
        },
        other => other,
    }
}
