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
use tower_http::services::ServeDir;
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
        .fallback_service(site_files(&options, &state, provide_shop));

    layers::apply(router, &state).with_state(state)
}

/// The site's files (wasm, JS, CSS, icons; `.br`/`.gz` when the release
/// build wrote them), and for any other path the storefront's 404 page.
///
/// Files are served here rather than by leptos_axum's file handler: that
/// one wraps each file response in a reactive owner, and an owner left
/// current on the worker thread by a page being rendered leaks that page's
/// status into it. The browser suite caught `/pkg/mercato.js` answered
/// with its body but status 404 right after a 404 page, which stops the
/// page from hydrating.
fn site_files(
    options: &leptos::config::LeptosOptions,
    state: &AppState,
    provide_shop: impl Fn() + Clone + Send + Sync + 'static,
) -> ServeDir<Router> {
    let not_found = Router::new()
        .fallback(leptos_axum::file_and_error_handler_with_context::<AppState, _>(provide_shop, app::shell))
        .with_state(state.clone());
    ServeDir::new(&*options.site_root)
        .precompressed_br()
        .precompressed_gzip()
        .append_index_html_on_directories(false)
        .call_fallback_on_method_not_allowed(true)
        .fallback(not_found)
}
