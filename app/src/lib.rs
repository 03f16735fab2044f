//! The Mercato storefront. Rendered on the server (feature `ssr`), then
//! hydrated in the browser (feature `hydrate`). No SQL or Redis here: server
//! functions call `shop` under `ssr`.

// The pages' view types nest deeply; the release wasm build (`cargo xtask
// run`) computes their layouts past the default limit of 128.
#![recursion_limit = "256"]

pub mod account;
pub mod components;
pub mod pages;
pub mod routes;
pub mod routing;
pub mod seo;
pub mod server;
pub mod timer;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, Link, Meta, MetaTags, Stylesheet, Title};
use leptos_router::components::Router;

use components::layout::{Footer, Header};

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
                    <routes::StoreRoutes/>
                </main>
                <Footer/>
            </div>
        </Router>
    }
}

/// The wasm entry point: attaches the app to the server-rendered HTML once
/// the current page's chunk has loaded (`routes`: every page is split out
/// of the main wasm), then marks the document so tests (and CSS) can tell
/// the page is interactive.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    wasm_bindgen_futures::spawn_local(async {
        leptos::mount::hydrate_from_async(leptos::tachys::dom::body(), App).await.forget();
        if let Some(root) = document().document_element() {
            let _ = root.set_attribute("data-hydrated", "true");
        }
    });
}
