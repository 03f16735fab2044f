use leptos::prelude::*;
use leptos_meta::Title;

/// The router's fallback: a real 404 status on the server-rendered response,
/// and a page that helps the shopper carry on.
#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    {
        if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(http::StatusCode::NOT_FOUND);
        }
    }
    view! {
        <Title text="Page not found"/>
        <section class="mx-auto flex max-w-2xl flex-col items-center px-4 py-24 text-center" data-testid="not-found">
            <p class="font-display text-6xl font-bold text-brand-700">"404"</p>
            <h1 class="mt-4 font-display text-3xl font-bold tracking-tight">"Page not found"</h1>
            <p class="mt-3 text-muted">
                "We couldn't find the page you were looking for. It may have moved, or the link may be mistyped."
            </p>
            <div class="mt-8 flex flex-wrap justify-center gap-3">
                <a href="/" class="btn-primary">"Back to the shop"</a>
                <a href="/search" class="btn-secondary">"Search products"</a>
            </div>
        </section>
    }
}
