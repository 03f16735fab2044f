//! Server functions for signing in and out and for the cart. They share the
//! REST API's rules (`shop::accounts::web`): the session and guest cookies,
//! and the same-origin check for cookie-authenticated writes.

use leptos::prelude::*;
use model::{CartView, User};
use serde::{Deserialize, Serialize};

/// What the header shows on every page: who is signed in, and the cart size.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccountState {
    pub user: Option<User>,
    pub cart_items: i64,
}

#[server]
pub async fn get_account() -> Result<AccountState, ServerFnError> {
    let shop = expect_context::<shop::Shop>();
    let req = web::Request::read().await;
    let user = req.user(&shop).await.map_err(super::to_client_error)?.map(|(u, _)| u);
    let cart_items = match req.owner(&shop, false).await.map_err(super::to_client_error)? {
        Some(owner) => shop.cart().view(&owner).await.map_err(super::to_client_error)?.item_count(),
        None => 0,
    };
    Ok(AccountState { user, cart_items })
}

/// Signing in sets the session cookie, so it is a cookie write like any
/// other: it must come from our own pages, or another site could sign a
/// visitor in to the attacker's account (login CSRF) and watch what they do.
#[server]
pub async fn sign_in(email: String, password: String) -> Result<User, ServerFnError> {
    let shop = expect_context::<shop::Shop>();
    let req = web::Request::read().await;
    req.require_same_origin()?;
    let ip = req.client_ip().await;
    let signed = shop.accounts().login(&email, &password, &ip).await.map_err(sign_in_error)?;
    req.signed_in(&shop, &signed).await.map_err(super::to_client_error)?;
    Ok(signed.user)
}

#[server]
pub async fn register(name: String, email: String, password: String) -> Result<User, ServerFnError> {
    let shop = expect_context::<shop::Shop>();
    let req = web::Request::read().await;
    req.require_same_origin()?;
    let ip = req.client_ip().await;
    let signed = shop.accounts().register(&email, &password, &name, &ip).await.map_err(sign_in_error)?;
    req.signed_in(&shop, &signed).await.map_err(super::to_client_error)?;
    Ok(signed.user)
}

/// The status the API would answer (via `to_client_error`), with the
/// shopper's words for a sign-in limit rather than the add-to-cart one.
#[cfg(feature = "ssr")]
fn sign_in_error(err: shop::Error) -> ServerFnError {
    let wait = match &err {
        shop::Error::RateLimited { retry_after } => Some(retry_after.as_secs().max(1)),
        _ => None,
    };
    let client = super::to_client_error(err);
    match wait {
        Some(secs) => ServerFnError::new(format!(
            "Too many attempts. Please wait {secs} second{} and try again.",
            if secs == 1 { "" } else { "s" }
        )),
        None => client,
    }
}

#[server]
pub async fn sign_out() -> Result<(), ServerFnError> {
    let shop = expect_context::<shop::Shop>();
    let req = web::Request::read().await;
    req.require_same_origin()?;
    if let Some((_, token)) = req.user(&shop).await.map_err(super::to_client_error)? {
        shop.accounts().logout(&token).await.map_err(super::to_client_error)?;
    }
    req.set_cookie(shop::accounts::web::expired_cookie(shop::accounts::web::SESSION_COOKIE, req.tls));
    Ok(())
}

#[server]
pub async fn get_cart() -> Result<CartView, ServerFnError> {
    let shop = expect_context::<shop::Shop>();
    let req = web::Request::read().await;
    match req.owner(&shop, false).await.map_err(super::to_client_error)? {
        Some(owner) => shop.cart().view(&owner).await.map_err(super::to_client_error),
        None => Ok(CartView { currency: "EUR".into(), ..CartView::default() }),
    }
}

#[server]
pub async fn add_to_cart(sku_id: String, quantity: i64) -> Result<CartView, ServerFnError> {
    let shop = expect_context::<shop::Shop>();
    let req = web::Request::read().await;
    req.require_same_origin()?;
    let sku = uuid::Uuid::try_parse(&sku_id).map_err(|_| super::refuse(http::StatusCode::NOT_FOUND, "That item does not exist."))?;
    let owner = req.owner(&shop, true).await.map_err(super::to_client_error)?.expect("created on write");
    let per_second = use_context::<CartLimit>().map(|l| l.0).unwrap_or(5);
    shop.cart()
        .add_limited(&owner, &req.subject(&shop).await, per_second, sku, quantity)
        .await
        .map_err(super::to_client_error)
}

#[server]
pub async fn update_cart(sku_id: String, quantity: i64) -> Result<CartView, ServerFnError> {
    let shop = expect_context::<shop::Shop>();
    let req = web::Request::read().await;
    req.require_same_origin()?;
    let sku = uuid::Uuid::try_parse(&sku_id).map_err(|_| super::refuse(http::StatusCode::NOT_FOUND, "That item does not exist."))?;
    let owner = req.owner(&shop, true).await.map_err(super::to_client_error)?.expect("created on write");
    // The same budget as adding (`Cart::set_limited`), shared with the REST PUT.
    let per_second = use_context::<CartLimit>().map(|l| l.0).unwrap_or(5);
    shop.cart()
        .set_limited(&owner, &req.subject(&shop).await, per_second, sku, quantity)
        .await
        .map_err(super::to_client_error)
}

/// The add-to-cart limit per second, provided by the server from its config.
#[derive(Debug, Clone, Copy)]
pub struct CartLimit(pub u32);

#[cfg(feature = "ssr")]
pub(crate) mod web {
    use http::{header, HeaderMap, HeaderValue};
    use leptos::prelude::*;
    use shop::accounts::web as cookies;
    use shop::cart::Owner;

    /// The parts of the request these functions need.
    pub struct Request {
        pub headers: HeaderMap,
        pub tls: bool,
    }

    impl Request {
        pub async fn read() -> Self {
            let headers = leptos_axum::extract::<HeaderMap>().await.unwrap_or_default();
            let tls = cookies::is_tls(headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()));
            Self { headers, tls }
        }

        fn get(&self, name: header::HeaderName) -> Option<&str> {
            self.headers.get(name).and_then(|v| v.to_str().ok())
        }

        pub fn cookie(&self, name: &str) -> Option<String> {
            cookies::read_cookie(self.headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()), name)
        }

        /// A plain HTML form post (no JavaScript): the answer should be a
        /// page to go to, not data.
        pub fn wants_html(&self) -> bool {
            self.get(header::ACCEPT).is_some_and(|a| a.contains("text/html"))
        }

        pub fn require_same_origin(&self) -> Result<(), ServerFnError> {
            if cookies::same_origin(self.get(header::HOST), self.get(header::ORIGIN), self.get(header::REFERER)) {
                Ok(())
            } else {
                Err(crate::server::refuse(http::StatusCode::FORBIDDEN, "This request did not come from the shop's own pages."))
            }
        }

        pub fn set_cookie(&self, cookie: String) {
            if let (Some(response), Ok(value)) =
                (use_context::<leptos_axum::ResponseOptions>(), HeaderValue::from_str(&cookie))
            {
                response.append_header(header::SET_COOKIE, value);
            }
        }

        pub async fn user(&self, shop: &shop::Shop) -> shop::Result<Option<(model::User, String)>> {
            let Some(token) = self.cookie(cookies::SESSION_COOKIE) else { return Ok(None) };
            Ok(shop.accounts().authenticate(&token).await?.map(|u| (u, token)))
        }

        /// Whose cart: the signed-in user's, else the guest cookie's; with
        /// `create`, a new guest cart (and its cookie) when there is neither.
        pub async fn owner(&self, shop: &shop::Shop, create: bool) -> shop::Result<Option<Owner>> {
            if let Some((user, _)) = self.user(shop).await? {
                return Ok(Some(Owner::User(user.id)));
            }
            if let Some(guest) = self.cookie(cookies::GUEST_COOKIE).filter(|t| shop::accounts::session::well_formed(t)) {
                return Ok(Some(Owner::Guest(guest)));
            }
            if !create {
                return Ok(None);
            }
            let token = shop::accounts::session::new_token();
            self.set_cookie(cookies::guest_cookie(&token, self.tls));
            Ok(Some(Owner::Guest(token)))
        }

        /// Who the rate limit counts: the user, else the client's address.
        pub async fn subject(&self, shop: &shop::Shop) -> String {
            if let Ok(Some((user, _))) = self.user(shop).await {
                return format!("user:{}", user.id);
            }
            format!("ip:{}", self.client_ip().await)
        }

        /// The connection's address, as the REST handlers see it (`server::http::auth::client_ip`).
        pub async fn client_ip(&self) -> String {
            leptos_axum::extract::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .await
                .map(|axum::extract::ConnectInfo(addr)| addr.ip().to_string())
                .unwrap_or_else(|_| "unknown".into())
        }

        /// After sign-in: session cookie, guest cart merged, guest cookie gone.
        pub async fn signed_in(&self, shop: &shop::Shop, signed: &shop::accounts::SignedIn) -> shop::Result<()> {
            self.set_cookie(cookies::session_cookie(signed.token.expose(), self.tls));
            if let Some(guest) = self.cookie(cookies::GUEST_COOKIE).filter(|t| shop::accounts::session::well_formed(t)) {
                shop.cart().merge_guest(&guest, signed.user.id).await?;
                self.set_cookie(cookies::expired_cookie(cookies::GUEST_COOKIE, self.tls));
            }
            Ok(())
        }
    }
}
