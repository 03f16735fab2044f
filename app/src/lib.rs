//! The Mercato storefront. Rendered on the server (feature `ssr`), then
//! hydrated in the browser (feature `hydrate`). No SQL or Redis here: server
//! functions call `shop` under `ssr`.

// The pages' view types nest deeply; the release wasm build (`cargo xtask
// run`) computes their layouts past the default limit of 128.
#![recursion_limit = "256"]

pub mod account;
pub mod components;
pub mod pages;
pub mod routing;
pub mod seo;
pub mod server;
pub mod timer;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, Link, Meta, MetaTags, Stylesheet, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{path, SsrMode};

use components::layout::{Footer, Header};
use pages::{
    account::{LoginPage, RegisterPage},
    cart::CartPage,
    category::CategoryPage,
    checkout::CheckoutPage,
    flash::FlashSalePage,
    home::HomePage,
    not_found::NotFound,
    orders::{OrderPage, OrdersPage},
    product::ProductPage,
    reviews::WriteReviewPage,
    search::SearchResultsPage,
};

/// The HTML document around the app, rendered only on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name=seo::PUBLIC_URL_META content=seo::PublicUrl::current()/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body class="min-h-screen bg-canvas text-ink antialiased">
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    account::Account::provide();

    view! {
        <Stylesheet id="leptos" href="/pkg/mercato.css"/>
        <Link rel="icon" type_="image/svg+xml" href="/favicon.svg"/>
        <Meta name="theme-color" content="#0f3d3e"/>
        <Title formatter=|text: String| {
            if text.is_empty() { "Mercato".to_owned() } else { format!("{text} · Mercato") }
        }/>
        <Router>
            <a href="#main" class="skip-link">"Skip to content"</a>
            <div class="flex min-h-screen flex-col">
                <Header/>
                <main id="main" class="flex-1">
                    <Routes fallback=NotFound>
                        <Route path=path!("") view=HomePage/>
                        // Async: the whole page renders before the head is sent, so
                        // titles, Open Graph tags and 404/400 statuses are right.
                        <Route path=path!("/c/:category_slug") view=CategoryPage ssr=SsrMode::Async/>
                        <Route path=path!("/search") view=SearchResultsPage ssr=SsrMode::Async/>
                        <Route path=path!("/products/:product_id") view=ProductPage ssr=SsrMode::Async/>
                        <Route path=path!("/products/:product_id/review") view=WriteReviewPage ssr=SsrMode::Async/>
                        <Route path=path!("/login") view=LoginPage/>
                        <Route path=path!("/register") view=RegisterPage/>
                        <Route path=path!("/cart") view=CartPage ssr=SsrMode::Async/>
                        <Route path=path!("/checkout") view=CheckoutPage ssr=SsrMode::Async/>
                        <Route path=path!("/orders") view=OrdersPage ssr=SsrMode::Async/>
                        <Route path=path!("/orders/:order_id") view=OrderPage ssr=SsrMode::Async/>
                        <Route path=path!("/flash/:flash_sale_id") view=FlashSalePage ssr=SsrMode::Async/>
                    </Routes>
                </main>
                <Footer/>
            </div>
        </Router>
    }
}

/// The wasm entry point: attaches the app to the server-rendered HTML, then
/// marks the document so tests (and CSS) can tell the page is interactive.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
    if let Some(root) = document().document_element() {
        let _ = root.set_attribute("data-hydrated", "true");
    }
}
