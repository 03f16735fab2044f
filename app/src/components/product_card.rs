use leptos::prelude::*;
use model::{format_price, ProductSummary};

/// A product tile. No product images exist yet (the catalog issue brings
/// them), so the tile shows a tinted panel with the product's initials.
#[component]
pub fn ProductCard(product: ProductSummary) -> impl IntoView {
    let initials: String = product
        .title
        .split_whitespace()
        .filter_map(|w| w.chars().next())
        .filter(|c| c.is_alphanumeric())
        .take(2)
        .collect();
    let tint = tint_for(&product.category_slug);
    let href = format!("/products/{}", product.id);
    let price = format_price(product.price_cents, &product.currency);
    view! {
        <article class="card group flex flex-col overflow-hidden" data-testid="product-card">
            <a href=href.clone() class="block" tabindex="-1" aria-hidden="true">
                <div class=format!("flex aspect-[4/3] items-center justify-center {tint}")>
                    <span class="font-display text-4xl font-bold opacity-70">{initials}</span>
                </div>
            </a>
            <div class="flex flex-1 flex-col gap-1 p-4">
                <p class="text-xs font-medium uppercase tracking-wide text-muted">{product.category_name}</p>
                <h3 class="font-semibold leading-snug text-ink">
                    <a href=href class="rounded hover:text-brand-700">{product.title}</a>
                </h3>
                <p class="mt-auto pt-2 text-lg font-bold text-ink">
                    <span class="sr-only">"Price: "</span>{price}
                </p>
            </div>
        </article>
    }
}

/// One stable colour per category, so the grid reads as varied but calm.
pub fn tint_for(slug: &str) -> &'static str {
    const TINTS: [&str; 6] = [
        "bg-brand-100 text-brand-800",
        "bg-accent-100 text-accent-800",
        "bg-sky-100 text-sky-800",
        "bg-rose-100 text-rose-800",
        "bg-lime-100 text-lime-800",
        "bg-violet-100 text-violet-800",
    ];
    let hash = slug.bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
    TINTS[hash % TINTS.len()]
}
