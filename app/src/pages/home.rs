use leptos::prelude::*;
use leptos_meta::{Link, Meta, Title};

use crate::components::error_view::SectionError;
use crate::components::icons::PerkIcon;
use crate::components::product_card::{tint_for, ProductGrid};
use crate::seo::PublicUrl;
use crate::server::get_home;

#[component]
pub fn HomePage() -> impl IntoView {
    let home = Resource::new(|| (), |_| get_home());

    view! {
        <Title text=""/>
        <Link rel="canonical" href=PublicUrl::absolute("/")/>
        <Meta property="og:url" content=PublicUrl::absolute("/")/>
        <Meta name="description" content="Mercato: independent sellers, one trusted checkout. Shop electronics, home, fashion and more."/>
        <Hero/>
        <Perks/>
        <ErrorBoundary fallback=|errors| view! { <div class="page-section"><SectionError errors/></div> }>
            <Suspense fallback=|| view! { <GridSkeleton/> }>
                {move || Suspend::new(async move {
                    home.await.map(|data| view! {
                        <section id="categories" class="page-section" aria-labelledby="categories-title">
                            <h2 id="categories-title" class="section-title">"Shop by category"</h2>
                            <ul class="mt-6 grid grid-cols-2 gap-3 sm:grid-cols-4">
                                {data.categories.into_iter().map(|c| view! {
                                    <li>
                                        <a href=format!("/c/{}", c.slug)
                                            class=format!("card flex h-full flex-col justify-between gap-3 p-4 hover:shadow-md {}", tint_for(&c.slug))>
                                            <span class="font-semibold">{c.name}</span>
                                            <span class="text-sm">{format!("{} products", c.product_count)}</span>
                                        </a>
                                    </li>
                                }).collect_view()}
                            </ul>
                        </section>
                        <section id="new-arrivals" class="page-section" aria-labelledby="new-arrivals-title">
                            <div class="flex items-end justify-between gap-4">
                                <h2 id="new-arrivals-title" class="section-title">"New arrivals"</h2>
                                <a href="/search?sort=newest" class="link text-sm">"See all"</a>
                            </div>
                            <div class="mt-6">
                                <ProductGrid products=data.new_arrivals empty="New products are on their way."/>
                            </div>
                        </section>
                        <section id="top-rated" class="page-section" aria-labelledby="top-rated-title">
                            <div class="flex items-end justify-between gap-4">
                                <h2 id="top-rated-title" class="section-title">"Top rated, in stock"</h2>
                                <a href="/search?sort=rating&in_stock=true" class="link text-sm">"See all"</a>
                            </div>
                            <div class="mt-6">
                                <ProductGrid products=data.top_rated empty="Nothing rated yet." below_fold=true/>
                            </div>
                        </section>
                    })
                })}
            </Suspense>
        </ErrorBoundary>
    }
}

#[component]
fn Hero() -> impl IntoView {
    view! {
        <section class="bg-brand-800 text-white">
            <div class="mx-auto grid max-w-7xl items-center gap-8 px-4 py-10 sm:px-6 md:grid-cols-2 md:py-14 lg:px-8">
                <div>
                    <p class="text-sm font-semibold uppercase tracking-widest text-accent-300">"Winter sale · up to 40% off"</p>
                    <h1 class="mt-3 font-display text-4xl font-bold leading-tight tracking-tight sm:text-5xl">
                        "Everything you love, from sellers you can trust."
                    </h1>
                    <p class="mt-4 max-w-prose text-lg text-brand-100">
                        "Thousands of products from independent shops, one secure checkout, and every order tracked to your door."
                    </p>
                    <div class="mt-8 flex flex-wrap gap-3">
                        <a href="#new-arrivals" class="btn-accent">"Shop new arrivals"</a>
                        <a href="#categories" class="btn-outline-light">"Browse categories"</a>
                    </div>
                </div>
                <div class="hidden md:block" aria-hidden="true">
                    <div class="ml-auto grid max-w-sm grid-cols-2 gap-4">
                        <div class="aspect-square rounded-2xl bg-accent-300/90"></div>
                        <div class="mt-8 aspect-square rounded-2xl bg-brand-500"></div>
                        <div class="-mt-8 aspect-square rounded-2xl bg-brand-600"></div>
                        <div class="aspect-square rounded-2xl bg-white/90"></div>
                    </div>
                </div>
            </div>
        </section>
    }
}

#[component]
fn Perks() -> impl IntoView {
    let perks = [
        ("truck", "Free delivery over €50", "Tracked, from every seller"),
        ("shield", "Secure checkout", "Charged only when your order ships"),
        ("return", "30-day returns", "Free and simple"),
    ];
    view! {
        <section aria-label="Why shop with us" class="border-b border-line bg-white">
            <ul class="mx-auto grid max-w-7xl gap-4 px-4 py-5 sm:grid-cols-3 sm:px-6 lg:px-8">
                {perks.into_iter().map(|(icon, title, detail)| view! {
                    <li class="flex items-center gap-3">
                        <span class="flex h-10 w-10 items-center justify-center rounded-full bg-brand-50 text-brand-700">
                            <PerkIcon kind=icon/>
                        </span>
                        <span>
                            <span class="block text-sm font-semibold">{title}</span>
                            <span class="block text-sm text-muted">{detail}</span>
                        </span>
                    </li>
                }).collect_view()}
            </ul>
        </section>
    }
}

#[component]
fn GridSkeleton() -> impl IntoView {
    view! {
        <div class="page-section" aria-busy="true" aria-label="Loading products">
            <div class="grid grid-cols-2 gap-4 md:grid-cols-3 lg:grid-cols-4">
                {(0..8).map(|_| view! { <div class="card aspect-[3/4] animate-pulse bg-line/50"></div> }).collect_view()}
            </div>
        </div>
    }
}
