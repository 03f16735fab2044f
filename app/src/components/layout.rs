//! The frame around every page: header (logo, search, account, cart) and footer.

use leptos::prelude::*;

use super::icons::{CartIcon, ChevronDown, Logo, SearchIcon, UserIcon};

#[component]
pub fn Header() -> impl IntoView {
    view! {
        <header class="sticky top-0 z-30 border-b border-line bg-white/95 backdrop-blur">
            <div class="mx-auto flex max-w-7xl flex-wrap items-center gap-x-4 gap-y-3 px-4 py-3 sm:px-6 lg:flex-nowrap lg:gap-8 lg:px-8">
                <a href="/" class="flex items-center gap-2 rounded-md" aria-label="Mercato home">
                    <Logo/>
                    <span class="font-display text-xl font-bold tracking-tight text-brand-800">"Mercato"</span>
                </a>
                <SearchBox/>
                <nav aria-label="Account and cart" class="ml-auto flex items-center gap-1 sm:gap-2">
                    <AccountMenu/>
                    <a href="/cart" class="btn-ghost relative" data-testid="cart-link">
                        <CartIcon/>
                        <span class="hidden sm:inline">"Cart"</span>
                        <CartBadge/>
                    </a>
                </nav>
            </div>
        </header>
    }
}

/// A plain GET form: it works before hydration and without JavaScript.
#[component]
fn SearchBox() -> impl IntoView {
    let query = leptos_router::hooks::use_query_map();
    let typed = RwSignal::new(String::new());
    let open = RwSignal::new(false);
    // Suggestions are asked for only in the browser, as the shopper types.
    let suggestions = LocalResource::new(move || {
        let q = typed.get();
        async move {
            if q.trim().chars().count() < 2 {
                return Vec::new();
            }
            crate::server::suggest(q).await.unwrap_or_default()
        }
    });
    let on_input = move |ev: leptos::ev::Event| {
        typed.set(event_target_value(&ev));
        open.set(true);
    };
    let expanded = move || open.get() && suggestions.get().is_some_and(|list| !list.is_empty());
    let on_keydown = move |ev: leptos::ev::KeyboardEvent| {
        if ev.key() == "Escape" {
            open.set(false);
        }
    };
    view! {
        <form action="/search" method="get" role="search"
            class="order-last w-full lg:order-none lg:max-w-2xl lg:flex-1"
            on:submit=move |_| open.set(false)>
            <label for="site-search" class="sr-only">"Search products"</label>
            <div class="relative" on:keydown=on_keydown>
                <span class="pointer-events-none absolute inset-y-0 left-3 flex items-center text-muted">
                    <SearchIcon/>
                </span>
                <input id="site-search" name="q" type="search" autocomplete="off"
                    placeholder="Search products, brands and categories"
                    prop:value=move || query.read().get("q").unwrap_or_default()
                    role="combobox" aria-autocomplete="list"
                    // The list exists only while it shows: pointing at it
                    // otherwise names an element that is not there.
                    aria-expanded=move || expanded().to_string()
                    aria-controls=move || expanded().then_some("search-suggestions")
                    on:input=on_input
                    class="input pl-10 pr-24"/>
                <button type="submit" class="btn-primary absolute inset-y-1 right-1 px-4 text-sm">"Search"</button>
                <Transition>
                    {move || {
                        let list = suggestions.get().unwrap_or_default();
                        (open.get() && !list.is_empty()).then(|| view! {
                            <ul id="search-suggestions" role="listbox" data-testid="suggestions"
                                class="absolute inset-x-0 top-full z-30 mt-1 overflow-hidden rounded-xl border border-line bg-white py-1 shadow-lg">
                                {list.into_iter().map(|s| view! {
                                    <li role="option">
                                        <a href=format!("/products/{}", s.product_id) on:click=move |_| open.set(false)
                                            class="flex items-baseline justify-between gap-3 px-4 py-2 text-sm hover:bg-brand-50">
                                            <span class="font-medium text-ink">{s.title}</span>
                                            <span class="shrink-0 text-xs text-muted">{s.category}</span>
                                        </a>
                                    </li>
                                }).collect_view()}
                            </ul>
                        })
                    }}
                </Transition>
            </div>
        </form>
    }
}

/// The number of items in the cart, from the shared account state.
#[component]
fn CartBadge() -> impl IntoView {
    let account = crate::account::Account::get();
    let count = move || account.state.get().and_then(|r| r.ok()).map(|s| s.cart_items).unwrap_or(0);
    view! {
        <Transition fallback=|| view! { <span class="badge" aria-label="0 items in cart" data-testid="cart-badge">"0"</span> }>
            <span class="badge" aria-label=move || format!("{} items in cart", count()) data-testid="cart-badge">{count}</span>
        </Transition>
    }
}

/// The account dropdown. Opening it needs the hydrated app, which is what the
/// browser tests use to prove hydration happened.
#[component]
fn AccountMenu() -> impl IntoView {
    let open = RwSignal::new(false);
    let account = crate::account::Account::get();
    let sign_out = ServerAction::<crate::server::account::SignOut>::new();
    // The menu already closed when "Sign out" was clicked. Closing it again
    // here, when the server answers, would shut a menu the shopper has
    // reopened meanwhile (the browser suite caught exactly that race).
    Effect::new(move |_| {
        if let Some(Ok(())) = sign_out.value().get() {
            account.changed();
        }
    });
    let user = move || account.state.get().and_then(|r| r.ok()).and_then(|s| s.user);
    let close_on_escape = move |ev: leptos::ev::KeyboardEvent| {
        if ev.key() == "Escape" {
            open.set(false);
        }
    };
    view! {
        <div class="relative" on:keydown=close_on_escape>
            // Named for narrow screens too, where the word "Account" is hidden.
            <button type="button" class="btn-ghost" aria-haspopup="true" aria-label="Account"
                aria-controls="account-menu"
                aria-expanded=move || open.get().to_string()
                data-testid="account-menu-button"
                on:click=move |_| open.update(|o| *o = !*o)>
                <UserIcon/>
                <span class="hidden sm:inline">"Account"</span>
                <ChevronDown/>
            </button>
            // Every item is a link or a button: once one is used, the menu
            // closes (client-side navigation keeps the header mounted).
            <div id="account-menu" class="menu" hidden=move || !open.get() data-testid="account-menu" on:click=move |_| open.set(false)>
                <Transition fallback=|| ()>
                    {move || match user() {
                        Some(u) => view! {
                            <p class="px-4 pb-2 pt-3 text-sm text-muted" data-testid="signed-in-as">"Signed in as " <span class="font-semibold text-ink">{u.name}</span></p>
                            <a class="menu-item" href="/orders" data-testid="my-orders">"My orders"</a>
                            <a class="menu-item" href="/cart">"My cart"</a>
                            <hr class="my-1 border-line"/>
                            <ActionForm action=sign_out>
                                <button type="submit" class="menu-item w-full text-left" data-testid="sign-out">"Sign out"</button>
                            </ActionForm>
                        }.into_any(),
                        None => view! {
                            <p class="px-4 pb-2 pt-3 text-sm text-muted">"Welcome to Mercato"</p>
                            <a class="menu-item font-semibold text-brand-700" href="/login">"Sign in"</a>
                            <a class="menu-item" href="/register">"Create an account"</a>
                        }.into_any(),
                    }}
                </Transition>
            </div>
        </div>
    }
}

#[component]
pub fn Footer() -> impl IntoView {
    view! {
        <footer class="mt-16 border-t border-line bg-brand-900 text-brand-100">
            <div class="mx-auto grid max-w-7xl gap-8 px-4 py-12 sm:grid-cols-2 sm:px-6 lg:grid-cols-4 lg:px-8">
                <div>
                    <p class="font-display text-lg font-bold text-white">"Mercato"</p>
                    <p class="mt-2 text-sm leading-relaxed text-brand-200">
                        "Independent sellers, one trusted checkout. Every order tracked from cart to doorstep."
                    </p>
                </div>
                <FooterLinks title="Shop" links=&[("New arrivals", "/#new-arrivals"), ("Categories", "/#categories"), ("Search", "/search")]/>
                <FooterLinks title="Your account" links=&[("Sign in", "/login"), ("Orders", "/orders"), ("Cart", "/cart")]/>
                <FooterLinks title="Help" links=&[("Shipping & delivery", "/help/shipping"), ("Returns & refunds", "/help/returns"), ("Contact us", "/help/contact")]/>
            </div>
            <div class="border-t border-brand-800">
                <p class="mx-auto max-w-7xl px-4 py-4 text-xs text-brand-300 sm:px-6 lg:px-8">
                    "© 2026 Mercato. Prices include VAT. Secure payments."
                </p>
            </div>
        </footer>
    }
}

#[component]
fn FooterLinks(title: &'static str, links: &'static [(&'static str, &'static str)]) -> impl IntoView {
    view! {
        <nav aria-label=title>
            <h2 class="text-sm font-semibold uppercase tracking-wider text-white">{title}</h2>
            <ul class="mt-3 space-y-2 text-sm">
                {links.iter().map(|(label, href)| view! {
                    <li><a class="rounded text-brand-200 hover:text-white" href=*href>{*label}</a></li>
                }).collect_view()}
            </ul>
        </nav>
    }
}
