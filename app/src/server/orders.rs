//! Server functions for checkout and "my orders". They call the same
//! `shop::checkout` and `shop::orders` as the REST API, as the signed-in
//! customer of the session cookie.

use leptos::prelude::*;
use model::{CartView, OrderPage, OrderView};
use serde::{Deserialize, Serialize};

use super::PageResult;

/// What the checkout page needs: the cart at current prices, and a key for
/// this attempt (a form without JavaScript sends it back as is; the
/// hydrated page makes its own).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CheckoutData {
    SignedOut,
    Ready { cart: CartView, idempotency_key: String },
}

#[server]
pub async fn get_checkout() -> Result<CheckoutData, ServerFnError> {
    let shop = expect_context::<shop::Shop>();
    let req = super::account::web::Request::read().await;
    let Some(user) = signed_in(&req, &shop).await? else { return Ok(CheckoutData::SignedOut) };
    let cart = shop.cart().view(&shop::cart::Owner::User(user.id)).await.map_err(super::to_client_error)?;
    Ok(CheckoutData::Ready { cart, idempotency_key: uuid::Uuid::new_v4().to_string() })
}

/// Places the order. A refusal the customer can act on (sold out, declined
/// card, changed prices, a bad address) is an error whose message says what
/// to do; the HTTP status is the REST API's for the same case.
///
/// A fixed path (`/api/place_order`), so a form without JavaScript and
/// the tests can post to it.
#[server(endpoint = "place_order")]
#[allow(clippy::too_many_arguments)]
pub async fn place_order(
    idempotency_key: String,
    name: String,
    line1: String,
    line2: Option<String>,
    city: String,
    postal_code: String,
    country: String,
    payment_method: String,
    expected_total_cents: Option<i64>,
) -> Result<uuid::Uuid, ServerFnError> {
    use shop::checkout::{Address, CheckoutRequest};
    let shop = expect_context::<shop::Shop>();
    let req = super::account::web::Request::read().await;
    req.require_same_origin()?;
    let Some(user) = signed_in(&req, &shop).await? else {
        return Err(super::to_client_error(shop::Error::Unauthorized("sign in to check out".into())));
    };
    let request = CheckoutRequest {
        shipping_address: Address { name, line1, line2, city, postal_code, country },
        payment_method,
        expected_total_cents,
    };
    match shop.checkout().place(user.id, &idempotency_key, &request).await {
        Ok(placed) => {
            // A plain form post (no JavaScript) lands on the confirmation;
            // the hydrated page navigates there itself.
            if req.wants_html() {
                leptos_axum::redirect(&confirmation_path(placed.order_id));
            }
            Ok(placed.order_id)
        }
        Err(err) => {
            let payments_down = matches!(err, shop::Error::Unavailable { dependency: shop::error::Dependency::Payments, .. });
            let client = super::to_client_error(explain(&shop, user.id, err).await);
            Err(if payments_down {
                ServerFnError::new("The payment service is not answering right now, so nothing was charged. Please try again in a minute.")
            } else {
                client
            })
        }
    }
}

/// Where a placed order's confirmation lives.
pub fn confirmation_path(order_id: uuid::Uuid) -> String {
    format!("/orders/{order_id}?placed=1")
}

#[server]
pub async fn list_orders(cursor: Option<String>) -> Result<Option<OrderPage>, ServerFnError> {
    let shop = expect_context::<shop::Shop>();
    let req = super::account::web::Request::read().await;
    let Some(user) = signed_in(&req, &shop).await? else { return Ok(None) };
    // A cursor that is not an order id is a stale or hand-made link: start over.
    let before = cursor.as_deref().and_then(|c| uuid::Uuid::try_parse(c).ok());
    shop.orders().list(user.id, ORDERS_PER_PAGE, before).await.map(Some).map_err(super::to_client_error)
}

pub const ORDERS_PER_PAGE: i64 = 10;

/// `None`: signed out.
#[server]
pub async fn get_order(id: String) -> Result<Option<PageResult<OrderView>>, ServerFnError> {
    let shop = expect_context::<shop::Shop>();
    let req = super::account::web::Request::read().await;
    let Some(user) = signed_in(&req, &shop).await? else { return Ok(None) };
    let Ok(id) = uuid::Uuid::try_parse(&id) else { return Ok(Some(PageResult::Missing)) };
    super::page_result(shop.orders().get(user.id, id).await).map(Some)
}

#[server]
pub async fn cancel_order(id: String) -> Result<OrderView, ServerFnError> {
    let shop = expect_context::<shop::Shop>();
    let req = super::account::web::Request::read().await;
    req.require_same_origin()?;
    let Some(user) = signed_in(&req, &shop).await? else {
        return Err(super::to_client_error(shop::Error::Unauthorized("sign in to manage your orders".into())));
    };
    let id = uuid::Uuid::try_parse(&id).map_err(|_| super::to_client_error(shop::Error::NotFound { what: "order" }))?;
    shop.checkout().cancel(user.id, id).await.map_err(super::to_client_error)
}

#[cfg(feature = "ssr")]
pub(super) async fn signed_in(req: &super::account::web::Request, shop: &shop::Shop) -> Result<Option<model::User>, ServerFnError> {
    Ok(req.user(shop).await.map_err(super::to_client_error)?.map(|(user, _)| user))
}

/// Rewrites a refusal in the shopper's terms: the product's name rather
/// than a SKU id, the form's labels rather than JSON field names.
#[cfg(feature = "ssr")]
async fn explain(shop: &shop::Shop, user: uuid::Uuid, err: shop::Error) -> shop::Error {
    match err {
        shop::Error::Conflict { code: "out_of_stock", details, message } => {
            let short: Vec<(uuid::Uuid, i64)> = details
                .as_ref()
                .and_then(|d| d["skus"].as_array())
                .map(|skus| {
                    skus.iter()
                        .filter_map(|s| Some((uuid::Uuid::try_parse(s["sku_id"].as_str()?).ok()?, s["available"].as_i64()?)))
                        .collect()
                })
                .unwrap_or_default();
            let cart = shop.cart().view(&shop::cart::Owner::User(user)).await.ok();
            let named: Vec<String> = short
                .iter()
                .filter_map(|(sku, available)| {
                    let line = cart.as_ref()?.lines.iter().find(|l| l.sku_id == *sku)?;
                    Some(match available {
                        0 => format!("“{}” is sold out", line.title),
                        n => format!("only {n} of “{}” left (you asked for {})", line.title, line.quantity),
                    })
                })
                .collect();
            let message = if named.is_empty() {
                message
            } else {
                format!("Sorry, {}. Change your cart and try again.", named.join("; "))
            };
            shop::Error::Conflict { code: "out_of_stock", message, details }
        }
        shop::Error::PaymentDeclined { decline_code, .. } => shop::Error::PaymentDeclined {
            message: format!("Your card was declined by the bank ({decline_code}). Nothing was charged; please try another card."),
            decline_code,
        },
        shop::Error::Invalid(message) => shop::Error::Invalid(field_labels(&message)),
        other => other,
    }
}

/// `shipping_address.postal_code must …` → `Postcode must …`.
#[cfg(feature = "ssr")]
fn field_labels(message: &str) -> String {
    const LABELS: [(&str, &str); 6] = [
        ("shipping_address.name", "Full name"),
        ("shipping_address.line1", "Address line 1"),
        ("shipping_address.line2", "Address line 2"),
        ("shipping_address.city", "Town or city"),
        ("shipping_address.postal_code", "Postcode"),
        ("shipping_address.country", "Country"),
    ];
    LABELS.iter().fold(message.to_owned(), |m, (field, label)| m.replace(field, label))
}
