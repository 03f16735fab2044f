use leptos::prelude::*;
use leptos_meta::{Link, Meta, Title};
use leptos_router::hooks::{use_params_map, use_query_map};
use model::{format_price, Availability, Product, ReviewPage, SkuStock};
use uuid::Uuid;

use crate::components::error_view::SectionError;
use crate::components::rating::RatingStars;
use crate::pages::not_found::NotFound;
use crate::pages::reviews::{reviews_resource, ProductReviews};
use crate::seo::{decimal_amount, product_json_ld, JsonLd, PublicUrl};
use crate::server::{get_product, get_stock, PageResult};

/// `/products/{product_id}`: gallery, variants, live stock, details.
///
/// The variant and the gallery image live in the query string (`?sku=`,
/// `?image=`): plain links work without JavaScript, and once hydrated the
/// router follows them in place, so only the price, stock and image change.
#[component]
pub fn ProductPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("product_id").unwrap_or_default();
    let product = Resource::new(id, get_product);
    let reviews = reviews_resource();
    view! {
        <ErrorBoundary fallback=|errors| view! { <div class="page-section"><SectionError errors/></div> }>
            <Suspense fallback=|| view! { <div class="page-section" aria-busy="true">"Loading…"</div> }>
                {move || Suspend::new(async move {
                    product.await.map(|result| match result {
                        PageResult::Found(p) => view! { <ProductView product=p reviews/> }.into_any(),
                        PageResult::Missing | PageResult::Invalid(_) => view! { <NotFound/> }.into_any(),
                    })
                })}
            </Suspense>
        </ErrorBoundary>
    }
}

#[component]
fn ProductView(product: Product, reviews: Resource<Result<PageResult<ReviewPage>, ServerFnError>>) -> impl IntoView {
    let query = use_query_map();
    let product = StoredValue::new(product);
    let default_sku = product.with_value(|p| p.default_sku().map(|s| s.sku_id));
    let selected = Memo::new(move |_| {
        let wanted = query.read().get("sku").and_then(|s| Uuid::try_parse(&s).ok());
        product.with_value(|p| wanted.filter(|id| p.sku(*id).is_some()).or(default_sku))
    });
    let image_count = product.with_value(|p| p.images.len());
    let image_index = Memo::new(move |_| {
        query
            .read()
            .get("image")
            .and_then(|i| i.parse::<usize>().ok())
            .filter(|i| *i < image_count)
            .unwrap_or(0)
    });

    // The page may come from a CDN cache; once hydrated, ask for live stock.
    let live: RwSignal<Option<Vec<SkuStock>>> = RwSignal::new(None);
    let product_id = product.with_value(|p| p.id.to_string());
    Effect::new(move |_| {
        let id = product_id.clone();
        leptos::task::spawn_local(async move {
            if let Ok(stock) = get_stock(id).await {
                live.set(Some(stock));
            }
        });
    });
    let stock_of = move |sku: Uuid| -> (i64, Availability) {
        live.with(|l| l.as_ref().and_then(|l| l.iter().find(|s| s.sku_id == sku)).map(|s| (s.available, s.availability)))
            .or_else(|| product.with_value(|p| p.sku(sku).map(|s| (s.available, s.availability))))
            .unwrap_or((0, Availability::OutOfStock))
    };

    let p = product.get_value();
    let description: String = p.description.chars().take(155).collect();
    let origin = PublicUrl::current();
    let canonical = format!("{origin}/products/{}", p.id);
    let og_image = p.images.first().map(|i| PublicUrl::absolute(&i.url)).unwrap_or_default();
    let json_ld = product_json_ld(&origin, &p);
    let from_price = p.skus.iter().map(|s| s.price_cents).min().unwrap_or(0);
    let currency = p.skus.first().map(|s| s.currency.clone()).unwrap_or_else(|| "EUR".into());
    let sku_link = move |sku: Uuid| format!("?sku={}", sku);
    let image_link = move |i: usize| match selected.get() {
        Some(sku) => format!("?sku={sku}&image={i}"),
        None => format!("?image={i}"),
    };

    view! {
        <Title text=p.title.clone()/>
        <Meta name="description" content=description.clone()/>
        <Link rel="canonical" href=canonical.clone()/>
        <Meta property="og:type" content="product"/>
        <Meta property="og:url" content=canonical/>
        <Meta property="og:title" content=p.title.clone()/>
        <Meta property="og:description" content=description/>
        <Meta property="og:image" content=og_image/>
        <Meta property="product:price:amount" content=decimal_amount(from_price)/>
        <Meta property="product:price:currency" content=currency.clone()/>
        <div class="page-section" data-testid="product-page">
            <JsonLd data=json_ld/>
            <nav aria-label="Breadcrumb" class="text-sm text-muted">
                <a href="/" class="link">"Home"</a>
                {p.department.clone().map(|d| view! { " / " <a href=format!("/c/{}", d.slug) class="link">{d.name}</a> })}
                " / " <a href=format!("/c/{}", p.category.slug) class="link">{p.category.name.clone()}</a>
            </nav>
            <div class="mt-4 grid gap-8 lg:grid-cols-2">
                {view! { <section aria-label="Images" data-testid="gallery">
                    <div class="card overflow-hidden">
                        {move || product.with_value(|p| p.images.get(image_index.get()).cloned()).map(|img| view! {
                            <img src=img.url alt=img.alt width=img.width height=img.height fetchpriority="high"
                                class="aspect-square w-full object-cover" data-testid="main-image"/>
                        })}
                    </div>
                    {(image_count > 1).then(|| view! {
                        <ul class="mt-3 grid grid-cols-4 gap-3">
                            {product.with_value(|p| p.images.clone()).into_iter().enumerate().map(|(i, img)| view! {
                                <li>
                                    <a href=move || image_link(i) aria-label=format!("Show image {}", i + 1)
                                        aria-current=move || (image_index.get() == i).then_some("true")
                                        class=move || if image_index.get() == i { "block overflow-hidden rounded-xl ring-2 ring-brand-700" } else { "block overflow-hidden rounded-xl ring-1 ring-line hover:ring-brand-300" }>
                                        <img src=img.url alt="" width=img.width height=img.height loading="lazy" class="aspect-square w-full object-cover"/>
                                    </a>
                                </li>
                            }).collect_view()}
                        </ul>
                    })}
                </section> }.into_any()}

                {view! { <section aria-labelledby="product-title">
                    <a href=format!("/search?brand={}", model::query::encode_component(&p.brand.name))
                        class="text-sm font-semibold uppercase tracking-wide text-brand-700 hover:underline">{p.brand.name.clone()}</a>
                    <h1 id="product-title" class="mt-1 font-display text-3xl font-bold leading-tight tracking-tight">{p.title.clone()}</h1>
                    <div class="mt-2"><RatingStars avg=p.rating_avg count=p.rating_count large=true/></div>

                    <p class="mt-5 text-3xl font-bold" data-testid="price">
                        {move || selected.get().and_then(|id| product.with_value(|p| p.sku(id).map(|s| format_price(s.price_cents, &s.currency)))).unwrap_or_default()}
                    </p>

                    {move || selected.get().map(|sku| {
                        let (available, availability) = stock_of(sku);
                        let (class, text) = match availability {
                            Availability::InStock => ("bg-lime-100 text-lime-800", "In stock".to_owned()),
                            Availability::LowStock => ("bg-accent-100 text-accent-800", format!("Only {available} left")),
                            Availability::OutOfStock => ("bg-rose-100 text-rose-800", "Out of stock".to_owned()),
                        };
                        view! {
                            <p class=format!("chip mt-3 {class}") data-testid="stock" data-availability=format!("{availability:?}")
                                aria-live="polite">{text}</p>
                        }
                    })}

                    {(p.skus.len() > 1).then(|| view! {
                        <fieldset class="mt-6">
                            <legend class="text-sm font-semibold">"Choose an option"</legend>
                            <ul class="mt-2 flex flex-wrap gap-2" data-testid="variants">
                                {product.with_value(|p| p.skus.clone()).into_iter().map(|sku| {
                                    let id = sku.sku_id;
                                    let label = sku.label();
                                    let sold_out = sku.availability == Availability::OutOfStock;
                                    view! {
                                        <li>
                                            <a href=sku_link(id) data-testid="variant" data-sku=id.to_string()
                                                aria-current=move || (selected.get() == Some(id)).then_some("true")
                                                class=move || {
                                                    let base = "inline-flex items-center gap-2 rounded-xl px-4 py-2 text-sm font-medium ring-1";
                                                    if selected.get() == Some(id) { format!("{base} bg-brand-700 text-white ring-brand-700") }
                                                    else { format!("{base} bg-white text-ink ring-line hover:ring-brand-500") }
                                                }>
                                                <span class:line-through=sold_out>{label}</span>
                                                <span>{format_price(sku.price_cents, &sku.currency)}</span>
                                            </a>
                                        </li>
                                    }
                                }).collect_view()}
                            </ul>
                        </fieldset>
                    }.into_any())}

                    <AddToCart selected stock_of=Callback::new(move |sku: Uuid| stock_of(sku).1)/>

                    <p class="mt-6 text-sm text-muted">
                        "Sold and shipped by "<span class="font-semibold text-ink" data-testid="seller">{p.seller.name.clone()}</span>
                    </p>

                    {view! { <div class="mt-6 border-t border-line pt-6">
                        <h2 class="font-semibold">"About this product"</h2>
                        <p class="mt-2 leading-relaxed text-ink/90" data-testid="description">{p.description.clone()}</p>
                        {(!p.attributes.is_empty()).then(|| view! {
                            <dl class="mt-4 grid grid-cols-[max-content_1fr] gap-x-6 gap-y-2 text-sm">
                                {p.attributes.clone().into_iter().map(|(k, v)| view! {
                                    <dt class="text-muted">{k}</dt><dd>{v}</dd>
                                }).collect_view()}
                            </dl>
                        })}
                    </div> }.into_any()}
                </section> }.into_any()}
            </div>
            <ProductReviews product_id=p.id.to_string() page=reviews/>
        </div>
    }
}

/// Add to cart: a plain form posting to the server function (works without
/// JavaScript); once hydrated it updates the header's cart badge in place.
#[component]
fn AddToCart(selected: Memo<Option<Uuid>>, stock_of: Callback<Uuid, Availability>) -> impl IntoView {
    let add = ServerAction::<crate::server::account::AddToCart>::new();
    let account = crate::account::Account::get();
    Effect::new(move |_| {
        if let Some(Ok(_)) = add.value().get() {
            account.changed();
        }
    });
    let sold_out = move || selected.get().map(|s| stock_of.run(s) == Availability::OutOfStock).unwrap_or(true);
    view! {
        <ActionForm action=add attr:class="mt-6 flex flex-wrap items-end gap-3" attr:data-testid="add-to-cart-form">
            <input type="hidden" name="sku_id" value=move || selected.get().map(|s| s.to_string()).unwrap_or_default()/>
            <label class="block">
                <span class="text-sm font-semibold">"Quantity"</span>
                <select name="quantity" class="input mt-1 w-24 py-2" data-testid="add-quantity">
                    {(1..=5).map(|n| view! { <option value=n.to_string()>{n}</option> }).collect_view()}
                </select>
            </label>
            <button type="submit" class="btn-primary" disabled=sold_out data-testid="add-to-cart">
                {move || if sold_out() { "Out of stock" } else { "Add to cart" }}
            </button>
        </ActionForm>
        {move || match add.value().get() {
            Some(Ok(cart)) => Some(view! {
                <p role="status" class="mt-3 text-sm text-lime-800" data-testid="added">
                    {format!("Added. Your cart has {} items. ", cart.item_count())}<a href="/cart" class="link">"View cart"</a>
                </p>
            }.into_any()),
            Some(Err(e)) => Some(view! {
                <p role="alert" class="mt-3 text-sm text-rose-700" data-testid="add-error">
                    {crate::pages::account::error_text::<()>(Some(Err(e))).unwrap_or_default()}
                </p>
            }.into_any()),
            None => None,
        }}
    }
}
