use leptos::prelude::*;
use leptos_meta::{Meta, Title};
use leptos_router::hooks::use_query_map;
use model::{SearchPage, SearchParams};

use crate::components::error_view::SectionError;
use crate::components::filters::{href, FilterSidebar, SortLinks};
use crate::components::product_card::ProductGrid;
use crate::routing::{query_pairs, set_status};
use crate::server::{search_products, PageResult};

/// `/search?q=…&brand=…`: full-text results with facets and page numbers.
#[component]
pub fn SearchResultsPage() -> impl IntoView {
    let query = use_query_map();
    let results = Resource::new(move || query_pairs(&query.read()), search_products);
    view! {
        <ErrorBoundary fallback=|errors| view! { <div class="page-section"><SectionError errors/></div> }>
            <Suspense fallback=|| view! { <div class="page-section" aria-busy="true">"Searching…"</div> }>
                {move || Suspend::new(async move {
                    let pairs = query_pairs(&query.read_untracked());
                    results.await.map(|result| {
                        listing_view(result, &pairs, |page, params| view! { <ResultsView page params/> }.into_any(), || {
                            view! { <InvalidQuery message="Nothing to search for.".to_owned()/> }.into_any()
                        })
                    })
                })}
            </Suspense>
        </ErrorBoundary>
    }
}

#[component]
fn ResultsView(page: SearchPage, params: SearchParams) -> impl IntoView {
    let heading = if params.q.is_empty() { "All products".to_owned() } else { format!("Results for “{}”", params.q) };
    let pages = page.total.div_ceil(page.per_page.max(1) as u64).min(SearchParams::MAX_PAGE as u64) as u32;
    let prev = (params.page > 1).then(|| href("/search", &SearchParams { page: params.page - 1, ..params.clone() }));
    let next = (params.page < pages).then(|| href("/search", &SearchParams { page: params.page + 1, ..params.clone() }));
    let mut categories: Vec<(String, u64)> = page.facets.category.clone().into_iter().filter(|(_, n)| *n > 0).collect();
    categories.sort_by_key(|c| std::cmp::Reverse(c.1));
    let category_links: Vec<(String, String, u64, bool)> = categories
        .into_iter()
        .take(10)
        .map(|(slug, count)| {
            let current = params.category.as_deref() == Some(slug.as_str());
            let category = if current { None } else { Some(slug.clone()) };
            (href("/search", &SearchParams { category, ..params.first_page() }), slug, count, current)
        })
        .collect();
    view! {
        <Title text=heading.clone()/>
        // Result pages of arbitrary queries are kept out of indexes (the
        // categories and products are what a search engine should list);
        // the description still serves links shared from here.
        <Meta name="robots" content="noindex"/>
        <Meta name="description" content=format!("{heading}: {} products at Mercato, with prices, ratings and live stock.", page.total)/>
        <div class="page-section" data-testid="search-page">
            <h1 class="font-display text-3xl font-bold tracking-tight">{heading}</h1>
            <p class="mt-1 text-sm text-muted" data-testid="result-count">
                {format!("{} {}", page.total, if page.total == 1 { "product" } else { "products" })}
            </p>
            {(!category_links.is_empty()).then(|| view! {
                <ul class="mt-4 flex flex-wrap gap-2" aria-label="Categories" data-testid="category-facet">
                    {category_links.into_iter().map(|(url, slug, count, current)| view! {
                        <li><a href=url aria-current=current.then_some("true")
                            class=if current { "chip bg-brand-700 text-white" } else { "chip bg-white text-ink ring-1 ring-line hover:bg-brand-50" }>
                            {slug.replace('-', " ")}" "<span class="opacity-70">{count}</span>
                        </a></li>
                    }).collect_view()}
                </ul>
            })}
            <div class="mt-6 grid gap-6 lg:grid-cols-[16rem_1fr]">
                <FilterSidebar action="/search" params=params.clone() facets=page.facets.clone() carry_query=true/>
                <div>
                    <SortLinks path="/search" params=params.clone()/>
                    // The cards' titles are h3s: a heading between them and
                    // the page's h1 keeps the outline in order.
                    <h2 class="sr-only">"Results"</h2>
                    <div class="mt-4">
                        <ProductGrid products=page.hits empty="No products match your search."/>
                    </div>
                    {(pages > 1).then(|| view! {
                        <nav aria-label="Pages" class="mt-8 flex items-center justify-between gap-4">
                            {match prev { Some(url) => view! { <a href=url class="btn-secondary" rel="prev">"← Previous"</a> }.into_any(), None => view! { <span></span> }.into_any() }}
                            <span class="text-sm text-muted">{format!("Page {} of {}", params.page, pages)}</span>
                            {match next { Some(url) => view! { <a href=url class="btn-primary" rel="next" data-testid="next-page">"Next →"</a> }.into_any(), None => view! { <span></span> }.into_any() }}
                        </nav>
                    })}
                </div>
            </div>
        </div>
    }
}

/// The view for a listing page's answer: the page itself with the URL's
/// parameters, `missing()` for an unknown category, or a 400 naming the
/// parameter that could not be used.
pub fn listing_view<T>(
    result: PageResult<T>,
    pairs: &[(String, String)],
    found: impl FnOnce(T, SearchParams) -> AnyView,
    missing: impl FnOnce() -> AnyView,
) -> AnyView {
    match result {
        PageResult::Found(data) => found(data, SearchParams::from_owned_pairs(pairs).unwrap_or_default()),
        PageResult::Missing => missing(),
        PageResult::Invalid(message) => {
            set_status(400);
            view! { <InvalidQuery message/> }.into_any()
        }
    }
}

/// A URL whose parameters cannot be used: say which, and offer a way out.
#[component]
pub fn InvalidQuery(message: String) -> impl IntoView {
    view! {
        <Title text="Check your filters"/>
        <section class="page-section" data-testid="invalid-query">
            <div role="alert" class="card max-w-xl p-6">
                <h1 class="font-display text-2xl font-bold">"We couldn't use that search"</h1>
                <p class="mt-2 text-muted">{message}</p>
                <a href="/search" class="btn-primary mt-4 inline-flex">"Start a new search"</a>
            </div>
        </section>
    }
}
