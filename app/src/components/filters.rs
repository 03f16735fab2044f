//! The filter sidebar and sort bar shared by search results and category
//! pages. Plain GET forms and links, so everything works without
//! JavaScript; once hydrated the router submits and follows them in place.

use leptos::prelude::*;
use leptos_router::components::Form;
use model::query::format_units as units;
use model::{format_price, Facets, SearchParams, Sort};

/// `path?query` for `params`, or just `path` when there is nothing to add.
pub fn href(path: &str, params: &SearchParams) -> String {
    let qs = params.to_query_string();
    if qs.is_empty() { path.to_owned() } else { format!("{path}?{qs}") }
}

#[component]
pub fn FilterSidebar(
    /// Where the form submits (the page it is on).
    #[prop(into)]
    action: String,
    params: SearchParams,
    facets: Facets,
    /// Keep `q` and `category` as hidden fields (search page).
    #[prop(optional)]
    carry_query: bool,
) -> impl IntoView {
    let selected = params.filters.brands.clone();
    let mut brands: Vec<(String, u64)> = facets.brand.clone().into_iter().collect();
    brands.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    // The busiest brands, plus any already chosen even if now at zero.
    let mut shown: Vec<(String, u64)> = brands.iter().take(12).cloned().collect();
    for b in &selected {
        if !shown.iter().any(|(name, _)| name == b) {
            shown.push((b.clone(), facets.brand.get(b).copied().unwrap_or(0)));
        }
    }
    let price_min = params.filters.price_min_cents.map(units).unwrap_or_default();
    let price_max = params.filters.price_max_cents.map(units).unwrap_or_default();
    let rating = params.filters.rating_min.map(|r| r as u8);
    let clear = href(&action, &SearchParams { q: params.q.clone(), category: if carry_query { params.category.clone() } else { None }, sort: params.sort, ..SearchParams::default() });
    let price_links = facets
        .price
        .iter()
        .filter(|b| b.count > 0)
        .map(|bucket| {
            let mut p = params.first_page();
            p.filters.price_min_cents = Some(bucket.min_cents);
            p.filters.price_max_cents = bucket.max_cents.map(|m| m - 1);
            let label = match bucket.max_cents {
                Some(max) => format!("{} – {}", format_price(bucket.min_cents, "EUR"), format_price(max, "EUR")),
                None => format!("{} and up", format_price(bucket.min_cents, "EUR")),
            };
            (href(&action, &p), label, bucket.count)
        })
        .collect::<Vec<_>>();

    view! {
        // On phones the results come first and the filters follow them
        // (the sort bar links down here); from `lg` they sit in a sidebar.
        <aside id="filters" aria-label="Filters" class="card order-last p-4 text-sm lg:order-none" data-testid="filters">
            <Form method="GET" action=action.clone()>
                {carry_query.then(|| view! {
                    <input type="hidden" name="q" value=params.q.clone()/>
                    {params.category.clone().map(|c| view! { <input type="hidden" name="category" value=c/> })}
                })}
                {(params.sort != Sort::Relevance).then(|| view! { <input type="hidden" name="sort" value=params.sort.as_str()/> })}

                <fieldset class="border-b border-line pb-4">
                    <legend class="mb-2 font-semibold">"Brand"</legend>
                    {if shown.is_empty() {
                        view! { <p class="text-muted">"No brands match."</p> }.into_any()
                    } else {
                        view! {
                            <ul class="space-y-1.5" data-testid="brand-facet">
                                {shown.into_iter().map(|(name, count)| {
                                    let checked = selected.contains(&name);
                                    view! {
                                        <li>
                                            <label class="flex cursor-pointer items-center gap-2">
                                                <input type="checkbox" name="brand" value=name.clone() checked=checked prop:checked=checked
                                                    class="h-4 w-4 rounded border-line accent-brand-700"/>
                                                <span class="flex-1">{name}</span>
                                                <span class="text-muted">{count}</span>
                                            </label>
                                        </li>
                                    }
                                }).collect_view()}
                            </ul>
                        }.into_any()
                    }}
                </fieldset>

                <fieldset class="border-b border-line py-4">
                    <legend class="mb-2 font-semibold">"Price (€)"</legend>
                    <div class="flex items-center gap-2">
                        <label class="sr-only" for="price_min">"Minimum price"</label>
                        <input id="price_min" name="price_min" inputmode="decimal" placeholder="Min" value=price_min.clone() prop:value=price_min
                            class="input w-full py-1.5" data-testid="price-min"/>
                        <span aria-hidden="true">"–"</span>
                        <label class="sr-only" for="price_max">"Maximum price"</label>
                        <input id="price_max" name="price_max" inputmode="decimal" placeholder="Max" value=price_max.clone() prop:value=price_max
                            class="input w-full py-1.5" data-testid="price-max"/>
                    </div>
                    {(!price_links.is_empty()).then(|| view! {
                        <ul class="mt-2 space-y-1" data-testid="price-facet">
                            {price_links.into_iter().map(|(url, label, count)| view! {
                                <li><a href=url class="link">{label}</a>" "<span class="text-muted">{format!("({count})")}</span></li>
                            }).collect_view()}
                        </ul>
                    })}
                </fieldset>

                <fieldset class="border-b border-line py-4">
                    <legend class="mb-2 font-semibold">"Customer rating"</legend>
                    <ul class="space-y-1.5" data-testid="rating-facet">
                        {[4u8, 3, 2, 1].into_iter().map(|r| {
                            let count = facets.rating.get(&r.to_string()).copied();
                            view! {
                                <li>
                                    <label class="flex cursor-pointer items-center gap-2">
                                        <input type="radio" name="rating_min" value=r.to_string() checked=rating == Some(r) prop:checked=rating == Some(r)
                                            class="h-4 w-4 accent-brand-700"/>
                                        <span class="flex-1">{format!("{r}★ & up")}</span>
                                        {count.map(|c| view! { <span class="text-muted">{c}</span> })}
                                    </label>
                                </li>
                            }
                        }).collect_view()}
                        <li>
                            <label class="flex cursor-pointer items-center gap-2">
                                <input type="radio" name="rating_min" value="" checked=rating.is_none() prop:checked=rating.is_none() class="h-4 w-4 accent-brand-700"/>
                                <span>"Any rating"</span>
                            </label>
                        </li>
                    </ul>
                </fieldset>

                <div class="py-4">
                    <label class="flex cursor-pointer items-center gap-2">
                        <input type="checkbox" name="in_stock" value="true" checked=params.filters.in_stock prop:checked=params.filters.in_stock
                            class="h-4 w-4 rounded accent-brand-700" data-testid="in-stock"/>
                        <span>"In stock only"</span>
                    </label>
                </div>

                <div class="flex items-center gap-3">
                    <button type="submit" class="btn-primary flex-1" data-testid="apply-filters">"Apply filters"</button>
                    <a href=clear class="link">"Clear"</a>
                </div>
            </Form>
        </aside>
    }
}

/// Sort order as links, keeping every other parameter (and restarting paging).
#[component]
pub fn SortLinks(#[prop(into)] path: String, params: SearchParams, #[prop(optional)] relevance_label: Option<&'static str>) -> impl IntoView {
    view! {
        <nav aria-label="Sort" class="flex flex-wrap items-center gap-2 text-sm" data-testid="sort">
            <a href="#filters" class="chip bg-white text-brand-700 ring-1 ring-brand-700 lg:hidden">"Filters"</a>
            <span class="text-muted">"Sort by"</span>
            {Sort::ALL.into_iter().map(|sort| {
                let url = href(&path, &SearchParams { sort, ..params.first_page() });
                let current = sort == params.sort;
                let label = if sort == Sort::Relevance { relevance_label.unwrap_or(sort.label()) } else { sort.label() };
                view! {
                    <a href=url aria-current=current.then_some("true")
                        class=if current { "chip bg-brand-700 text-white" } else { "chip bg-white text-ink hover:bg-brand-50" }>
                        {label}
                    </a>
                }
            }).collect_view()}
        </nav>
    }
}
