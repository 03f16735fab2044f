use leptos::prelude::*;
use model::{format_price, ProductSummary};

use super::rating::RatingStars;

/// A product tile in a grid: image, brand, title, rating and "from" price.
/// `eager`: the card is in the first screenful, so its image must not wait
/// for layout (a lazy image there delays the page's largest paint).
#[component]
pub fn ProductCard(product: ProductSummary, #[prop(optional)] eager: bool) -> impl IntoView {
    let href = format!("/products/{}", product.id);
    let price = format_price(product.price_cents, &product.currency);
    let tint = tint_for(&product.category_slug);
    let image = product.image.clone();
    view! {
        <article class="card group flex flex-col overflow-hidden" data-testid="product-card">
            <a href=href.clone() class="block" tabindex="-1" aria-hidden="true">
                {match image {
                    Some(img) => view! {
                        <img src=img.url alt="" width=img.width height=img.height
                            loading=if eager { "eager" } else { "lazy" } decoding="async"
                            class="aspect-square w-full bg-line/40 object-cover transition group-hover:opacity-90"/>
                    }.into_any(),
                    None => view! { <div class=format!("aspect-square w-full {tint}")></div> }.into_any(),
                }}
            </a>
            <div class="flex flex-1 flex-col gap-1 p-4">
                <p class="text-xs font-medium uppercase tracking-wide text-muted">{product.brand}</p>
                <h3 class="font-semibold leading-snug text-ink">
                    <a href=href class="rounded hover:text-brand-700" data-testid="product-card-title">{product.title}</a>
                </h3>
                <RatingStars avg=product.rating_avg count=product.rating_count/>
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

/// Cards that fit the first screenful on a phone (two rows of two) or a
/// desktop (one row of four): their images load at once, the rest lazily.
const FIRST_SCREEN: usize = 4;

/// A grid of product cards, or a friendly empty state. `below_fold`: the
/// grid starts below the first screenful, so every image loads lazily.
#[component]
pub fn ProductGrid(products: Vec<ProductSummary>, #[prop(into)] empty: String, #[prop(optional)] below_fold: bool) -> impl IntoView {
    if products.is_empty() {
        return view! {
            <div class="card p-10 text-center" data-testid="empty-results">
                <p class="font-semibold">{empty}</p>
                <p class="mt-1 text-sm text-muted">"Try fewer filters or a different search."</p>
            </div>
        }
        .into_any();
    }
    view! {
        <div class="grid grid-cols-2 gap-4 md:grid-cols-3 xl:grid-cols-4" data-testid="product-grid">
            {products.into_iter().enumerate().map(|(i, p)| view! { <ProductCard product=p eager=!below_fold && i < FIRST_SCREEN/> }).collect_view()}
        </div>
    }
    .into_any()
}
