use leptos::prelude::*;
use leptos_meta::{Link, Meta, Title};
use leptos_router::hooks::{use_params_map, use_query_map};
use model::{BrowsePage, Facets, SearchParams};

use crate::components::error_view::SectionError;
use crate::components::filters::{href, FilterSidebar, SortLinks};
use crate::components::product_card::ProductGrid;
use crate::pages::not_found::NotFound;
use crate::pages::search::listing_view;
use crate::routing::query_pairs;
use crate::seo::PublicUrl;
use crate::server::get_category;

/// `/c/{category_slug}`: a category's products, filtered and sorted, one
/// keyset page at a time ("More products" carries the cursor).
#[component]
pub fn CategoryPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let slug = move || params.read().get("category_slug").unwrap_or_default();
    let page = Resource::new(
        move || (slug(), query_pairs(&query.read())),
        |(slug, pairs)| get_category(slug, pairs),
    );
    view! {
        <ErrorBoundary fallback=|errors| view! { <div class="page-section"><SectionError errors/></div> }>
            <Suspense fallback=|| view! { <div class="page-section" aria-busy="true">"Loading…"</div> }>
                {move || Suspend::new(async move {
                    let pairs = query_pairs(&query.read_untracked());
                    page.await.map(|result| {
                        listing_view(result, &pairs, |data, params| view! { <CategoryView data params/> }.into_any(), || {
                            view! { <NotFound/> }.into_any()
                        })
                    })
                })}
            </Suspense>
        </ErrorBoundary>
    }
}

#[component]
fn CategoryView(data: BrowsePage, params: SearchParams) -> impl IntoView {
    let path = format!("/c/{}", data.category.slug);
    let facets = Facets { brand: data.brands.clone(), ..Facets::default() };
    let next = data.next_cursor.clone().map(|cursor| href(&path, &SearchParams { cursor: Some(cursor), page: 1, ..params.clone() }));
    let first = params.cursor.is_some().then(|| href(&path, &params.first_page()));
    let description = format!(
        "Shop {} at Mercato: {} products from independent sellers, with fast delivery and free returns.",
        data.category.name, data.category.product_count
    );
    // Filtered views are the same products again: they point at the plain
    // category; later pages of it are pages of their own.
    let canonical = PublicUrl::absolute(&match &params.cursor {
        Some(cursor) => href(&path, &SearchParams { cursor: Some(cursor.clone()), ..SearchParams::default() }),
        None => path.clone(),
    });
    view! {
        <Title text=data.category.name.clone()/>
        <Link rel="canonical" href=canonical.clone()/>
        <Meta property="og:url" content=canonical/>
        <Meta name="description" content=description.clone()/>
        <Meta property="og:title" content=data.category.name.clone()/>
        <Meta property="og:description" content=description/>
        <div class="page-section" data-testid="category-page">
            <nav aria-label="Breadcrumb" class="text-sm text-muted">
                <a href="/" class="link">"Home"</a>
                {data.department.clone().map(|d| view! { " / " <a href=format!("/c/{}", d.slug) class="link">{d.name}</a> })}
                " / " <span aria-current="page">{data.category.name.clone()}</span>
            </nav>
            <div class="mt-2 flex flex-wrap items-end justify-between gap-4">
                <h1 class="font-display text-3xl font-bold tracking-tight">{data.category.name.clone()}</h1>
                <p class="text-sm text-muted">{format!("{} products", data.category.product_count)}</p>
            </div>
            {(!data.subcategories.is_empty()).then(|| view! {
                <ul class="mt-4 flex flex-wrap gap-2" aria-label="Subcategories">
                    {data.subcategories.iter().map(|c| view! {
                        <li><a href=format!("/c/{}", c.slug) class="chip bg-white text-ink ring-1 ring-line hover:bg-brand-50">
                            {c.name.clone()}" "<span class="text-muted">{c.product_count}</span>
                        </a></li>
                    }).collect_view()}
                </ul>
            })}
            <div class="mt-6 grid gap-6 lg:grid-cols-[16rem_1fr]">
                <FilterSidebar action=path.clone() params=params.clone() facets/>
                <div>
                    <SortLinks path=path.clone() params=params.clone() relevance_label="Popular"/>
                    <h2 class="sr-only">"Products"</h2>
                    <div class="mt-4">
                        <ProductGrid products=data.products empty="No products match these filters."/>
                    </div>
                    <nav aria-label="Pages" class="mt-8 flex items-center justify-between">
                        {first.map(|url| view! { <a href=url class="btn-secondary">"← First page"</a> })}
                        <span></span>
                        {next.map(|url| view! { <a href=url class="btn-primary" rel="next" data-testid="next-page">"More products →"</a> })}
                    </nav>
                </div>
            </div>
        </div>
    }
}
