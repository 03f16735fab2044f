//! The HTTP surface: one router assembled from the operational endpoints,
//! the REST API under /api/v1, the Leptos storefront, and the gateway layers
//! every request passes through.

pub mod admission;
pub mod api;
pub mod auth;
pub mod caching;
pub mod error;
pub mod health;
pub mod images;
pub mod layers;
pub mod metrics;
pub mod seo;
pub mod server_fns;

use axum::routing::get;
use axum::Router;
use leptos_axum::{generate_route_list, LeptosRoutes};

use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    let leptos_routes = generate_route_list(app::App);
    let shop_for_ssr = state.shop.clone();
    let cart_limit = app::server::account::CartLimit(state.config.cart_adds_per_sec);
    let public_url = app::seo::PublicUrl(state.config.public_url.clone());
    let provide_shop = move || {
        leptos::prelude::provide_context(shop_for_ssr.clone());
        leptos::prelude::provide_context(cart_limit);
        leptos::prelude::provide_context(public_url.clone());
    };
    let options = state.leptos.clone();

    let router = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::render))
        .route("/robots.txt", get(seo::robots))
        .route("/sitemap.xml", get(seo::index))
        .route("/sitemaps/{file}", get(seo::page))
        .route("/images/products/{product_id}/{version}/{file}", get(images::product_image))
        .merge(api::router())
        .leptos_routes_with_context(&state, leptos_routes, provide_shop.clone(), {
            let options = options.clone();
            move || app::shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context::<AppState, _>(provide_shop, app::shell));

    layers::apply(router, &state).with_state(state)
}
