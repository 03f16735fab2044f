//! Server functions for the flash sale page: the sale (public), and the
//! signed-in customer's buy, place in line and leaving it. They call the
//! same `shop::flash` as `/api/v1/flash-sales`, under the same per-customer
//! rate limit.

use leptos::prelude::*;
use model::{MyFlashState, PublicFlashSale};
use serde::{Deserialize, Serialize};

use super::PageResult;

/// The sale, and the visitor's part in it (`None`: signed out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlashPage {
    pub sale: PublicFlashSale,
    pub mine: Option<MyFlashState>,
}

#[server]
pub async fn get_flash_page(id: String) -> Result<PageResult<FlashPage>, ServerFnError> {
    let Ok(id) = uuid::Uuid::try_parse(&id) else { return Ok(PageResult::Missing) };
    let shop = expect_context::<shop::Shop>();
    let sale = match super::page_result(shop.flash().public(id).await)? {
        PageResult::Found(sale) => sale,
        PageResult::Missing => return Ok(PageResult::Missing),
        PageResult::Invalid(why) => return Ok(PageResult::Invalid(why)),
    };
    let req = super::account::web::Request::read().await;
    let mine = match super::orders::signed_in(&req, &shop).await? {
        Some(user) => Some(shop.flash().me(user.id, id).await.map_err(super::to_client_error)?),
        None => None,
    };
    Ok(PageResult::Found(FlashPage { sale, mine }))
}

/// The sale's figures alone (remaining units, status, the server's clock):
/// what the open page refreshes every second. No session is read.
#[server]
pub async fn get_flash_sale(id: String) -> Result<PageResult<PublicFlashSale>, ServerFnError> {
    let Ok(id) = uuid::Uuid::try_parse(&id) else { return Ok(PageResult::Missing) };
    let shop = expect_context::<shop::Shop>();
    super::page_result(shop.flash().public(id).await)
}

/// The customer's state once it is no longer `known` (the state the page
/// shows, as JSON), or as it is after the longest wait: a long poll that
/// answers the moment a unit comes back for them. The gateway lets it
/// park outside the in-flight limit (`admission::long_poll`).
#[server(endpoint = "flash_wait")]
pub async fn flash_wait(id: String, known: String) -> Result<MyFlashState, ServerFnError> {
    let (shop, user, id) = customer(&id, "sign in to see your place in line").await?;
    let known: MyFlashState =
        serde_json::from_str(&known).map_err(|_| super::to_client_error(shop::Error::bad_input("known", "expected a flash state as JSON")))?;
    shop.flash().limit(user).await.map_err(super::to_client_error)?;
    shop.flash().me_changed(user, id, &shop::flash::tag(&known), shop::flash::MAX_WAIT).await.map_err(super::to_client_error)
}

/// Buy now: units held for the customer (in their cart at the sale price),
/// or a place in line.
#[server(endpoint = "flash_buy")]
pub async fn flash_buy(id: String, quantity: i64) -> Result<MyFlashState, ServerFnError> {
    let (shop, user, id) = customer(&id, "sign in to buy in a flash sale").await?;
    shop.flash().limit(user).await.map_err(super::to_client_error)?;
    match shop.flash().buy(user, id, quantity).await.map_err(super::to_client_error)? {
        shop::flash::Bought::Reserved(state) | shop::flash::Bought::Waiting(state) => Ok(state),
    }
}

/// Leaves the line, or gives a held unit back to it.
#[server(endpoint = "flash_leave")]
pub async fn flash_leave(id: String) -> Result<MyFlashState, ServerFnError> {
    let (shop, user, id) = customer(&id, "sign in to manage your place in line").await?;
    shop.flash().limit(user).await.map_err(super::to_client_error)?;
    shop.flash().leave(user, id).await.map_err(super::to_client_error)
}

/// The signed-in customer behind a flash write, from the same site.
#[cfg(feature = "ssr")]
async fn customer(id: &str, signed_out: &'static str) -> Result<(shop::Shop, uuid::Uuid, uuid::Uuid), ServerFnError> {
    let shop = expect_context::<shop::Shop>();
    let req = super::account::web::Request::read().await;
    req.require_same_origin()?;
    let Some(user) = super::orders::signed_in(&req, &shop).await? else {
        return Err(super::to_client_error(shop::Error::Unauthorized(signed_out)));
    };
    let id = uuid::Uuid::try_parse(id).map_err(|_| super::to_client_error(shop::Error::NotFound { what: "flash sale" }))?;
    Ok((shop, user.id, id))
}
