use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_navigate;
use model::{format_price, CartView};

use crate::account::Account;
use crate::components::error_view::SectionError;
use crate::pages::account::error_text;
use crate::pages::orders::SignInPrompt;
use crate::server::account::get_cart;
use crate::server::orders::{confirmation_path, get_checkout, CheckoutData, PlaceOrder};

/// `/checkout`: shipping address, test card, and the order summary at
/// current prices. The total shown is sent back, so a price that changes
/// after the page was drawn is refused and shown rather than charged.
#[component]
pub fn CheckoutPage() -> impl IntoView {
    let account = Account::get();
    let data = Resource::new(|| (), |_| get_checkout());
    view! {
        <Title text="Checkout"/>
        <section class="page-section pb-12" data-testid="checkout-page">
            <h1 class="font-display text-3xl font-bold tracking-tight">"Checkout"</h1>
            <ErrorBoundary fallback=|errors| view! { <div class="mt-6"><SectionError errors/></div> }>
                <Suspense fallback=|| view! { <p class="mt-6 text-muted">"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        data.await.map(|d| match d {
                            CheckoutData::SignedOut => view! { <SignInPrompt what="check out"/> }.into_any(),
                            CheckoutData::Ready { cart, .. } if cart.lines.is_empty() => view! {
                                <div class="card mt-6 p-10 text-center" data-testid="empty-cart">
                                    <p class="font-semibold">"Your cart is empty, so there is nothing to check out."</p>
                                    <a href="/" class="btn-primary mt-4 inline-flex">"Start shopping"</a>
                                </div>
                            }.into_any(),
                            CheckoutData::Ready { cart, idempotency_key } => {
                                view! { <CheckoutForm cart idempotency_key account/> }.into_any()
                            }
                        })
                    })}
                </Suspense>
            </ErrorBoundary>
        </section>
    }
}

/// Countries the demo shop ships to (ISO 3166-1 alpha-2).
const COUNTRIES: [(&str, &str); 10] = [
    ("GB", "United Kingdom"),
    ("IE", "Ireland"),
    ("DE", "Germany"),
    ("FR", "France"),
    ("NL", "Netherlands"),
    ("BE", "Belgium"),
    ("ES", "Spain"),
    ("IT", "Italy"),
    ("SE", "Sweden"),
    ("US", "United States"),
];

/// Stripe's test payment methods (localstripe knows the same ones).
const TEST_CARDS: [(&str, &str, &str); 2] = [
    ("pm_card_visa", "Visa ending 4242", "Approved"),
    ("pm_card_chargeCustomerFail", "Visa ending 0341", "Declined by the bank"),
];

#[component]
fn CheckoutForm(cart: CartView, idempotency_key: String, account: Account) -> impl IntoView {
    let place = ServerAction::<PlaceOrder>::new();
    // One key per attempt. The server drew one for a form sent without
    // JavaScript; once hydrated the browser draws its own, and a new one
    // whenever the customer changes what they are asking for. Sending the
    // same request again (a double click, a retry after a network error)
    // keeps the key, so it can never place a second order.
    let key = RwSignal::new(idempotency_key);
    Effect::new(move |_| key.set(browser_key()));
    let new_attempt = move |_| key.set(browser_key());

    // The summary refreshes after every attempt: a refusal for a changed
    // price or sold-out line shows the cart as it now stands.
    let summary = Resource::new(move || place.version().get(), |_| get_cart());
    let shown_total = RwSignal::new(Some(cart.subtotal_cents));
    Effect::new(move |_| {
        if let Some(Ok(c)) = summary.get() {
            if shown_total.get_untracked() != Some(c.subtotal_cents) {
                shown_total.set(Some(c.subtotal_cents));
                key.set(browser_key());
            }
        }
    });

    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(order_id)) = place.value().get() {
            account.changed();
            navigate(&confirmation_path(order_id), Default::default());
        }
    });
    let error = move || error_text(place.value().get());
    let pending = place.pending();
    let initial = StoredValue::new(cart);

    view! {
        <ActionForm action=place attr:class="mt-6 grid gap-8 lg:grid-cols-[1fr_24rem]" attr:data-testid="checkout-form">
            <input type="hidden" name="idempotency_key" value=move || key.get() prop:value=move || key.get()/>
            <div class="space-y-6" on:input=new_attempt>
                <fieldset class="card space-y-4 p-6">
                    <legend class="sr-only">"Shipping address"</legend>
                    <h2 class="font-display text-xl font-bold" aria-hidden="true">"Shipping address"</h2>
                    <TextField label="Full name" name="name" autocomplete="name" max=100 required=true/>
                    <TextField label="Address line 1" name="line1" autocomplete="address-line1" max=200 required=true/>
                    <TextField label="Address line 2 (optional)" name="line2" autocomplete="address-line2" max=200 required=false/>
                    <div class="grid gap-4 sm:grid-cols-2">
                        <TextField label="Town or city" name="city" autocomplete="address-level2" max=100 required=true/>
                        <TextField label="Postcode" name="postal_code" autocomplete="postal-code" max=20 required=true/>
                    </div>
                    <label class="block">
                        <span class="text-sm font-semibold">"Country"</span>
                        <select class="input mt-1 w-full px-3" name="country" autocomplete="country" required>
                            {COUNTRIES.iter().map(|(code, name)| view! { <option value=*code>{*name}</option> }).collect_view()}
                        </select>
                    </label>
                </fieldset>
                <fieldset class="card space-y-3 p-6">
                    <legend class="sr-only">"Payment"</legend>
                    <h2 class="font-display text-xl font-bold" aria-hidden="true">"Payment"</h2>
                    <p class="text-sm text-muted">"This is a demo shop: choose a test card. The card is authorised now and charged when your order ships."</p>
                    {TEST_CARDS.iter().enumerate().map(|(i, (pm, label, outcome))| view! {
                        <label class="flex cursor-pointer items-center gap-3 rounded-lg border border-line p-3 has-[:checked]:border-brand-500 has-[:checked]:bg-brand-50">
                            <input type="radio" name="payment_method" value=*pm checked=i == 0 prop:checked=i == 0 data-testid=format!("card-{pm}")/>
                            <span class="font-semibold">{*label}</span>
                            <span class="ml-auto text-sm text-muted">{*outcome}</span>
                        </label>
                    }).collect_view()}
                </fieldset>
            </div>
            <aside class="card h-fit p-6" aria-labelledby="summary-title" data-testid="order-summary">
                <h2 id="summary-title" class="font-display text-xl font-bold">"Order summary"</h2>
                <Transition fallback=move || view! { <Summary cart=initial.get_value()/> }>
                    {move || Suspend::new(async move {
                        summary.await.map(|cart| view! { <Summary cart/> })
                    })}
                </Transition>
                {move || error().map(|e| {
                    // Sold-out and price refusals are fixed in the cart.
                    let about_cart = e.contains("cart");
                    view! {
                        <div role="alert" class="mt-4 rounded-lg bg-rose-50 p-3 text-sm font-medium text-rose-800" data-testid="checkout-error">
                            <p>{e}</p>
                            {about_cart.then(|| view! { <a href="/cart" class="link mt-1 inline-block">"Review your cart"</a> })}
                        </div>
                    }
                })}
                <button type="submit" class="btn-primary mt-6 w-full" data-testid="place-order" disabled=move || pending.get()>
                    {move || if pending.get() { "Placing your order…" } else { "Place order" }}
                </button>
                <p class="mt-3 text-center text-xs text-muted">"You can cancel until your order ships."</p>
            </aside>
        </ActionForm>
    }
}

/// Lines, the price-change notice, and the total the customer agrees to
/// (sent back as `expected_total_cents`).
#[component]
fn Summary(cart: CartView) -> impl IntoView {
    let currency = cart.currency.clone();
    let changed = cart.lines.iter().any(|l| l.price_changed);
    let total = cart.subtotal_cents;
    view! {
        <ul class="mt-4 divide-y divide-line text-sm">
            {cart.lines.into_iter().map(|line| view! {
                <li class="flex gap-3 py-2" data-testid="summary-line" data-sku=line.sku_id.to_string()>
                    <span class="min-w-0 flex-1"><span class="font-semibold">{line.quantity} " × "</span>{line.title.clone()}</span>
                    <span class="whitespace-nowrap">{format_price(line.current_unit_cents * line.quantity, &currency)}</span>
                </li>
            }).collect_view()}
        </ul>
        {changed.then(|| view! {
            <p role="status" class="mt-3 rounded-lg bg-accent-50 p-3 text-sm text-accent-900" data-testid="price-notice">
                "Some prices changed since you added the items. The total below is what you will pay."
            </p>
        })}
        <p class="mt-4 flex items-baseline justify-between border-t border-line pt-4 text-lg">
            <span>"Total"</span>
            <span class="font-bold" data-testid="checkout-total">{format_price(total, &currency)}</span>
        </p>
        <p class="text-xs text-muted">"Shipping is free. Prices include VAT."</p>
        <input type="hidden" name="expected_total_cents" value=total prop:value=total/>
    }
}

#[component]
fn TextField(label: &'static str, name: &'static str, autocomplete: &'static str, max: usize, required: bool) -> impl IntoView {
    view! {
        <label class="block">
            <span class="text-sm font-semibold">{label}</span>
            <input class="input mt-1 w-full px-3" type="text" name=name autocomplete=autocomplete maxlength=max required=required/>
        </label>
    }
}

/// A fresh idempotency key from the browser's CSPRNG (works on plain HTTP
/// too, unlike `crypto.randomUUID`). On the server, where effects never
/// run, it is never called.
fn browser_key() -> String {
    #[cfg(feature = "hydrate")]
    {
        let mut bytes = [0u8; 16];
        if let Some(crypto) = web_sys::window().and_then(|w| w.crypto().ok()) {
            if crypto.get_random_values_with_u8_array(&mut bytes).is_ok() {
                return uuid::Builder::from_random_bytes(bytes).into_uuid().to_string();
            }
        }
        // No Web Crypto at all (very old browsers): time and Math.random
        // still make a collision within one customer's keys implausible.
        let seed = (js_sys::Date::now() as u128) << 64 | (js_sys::Math::random() * u64::MAX as f64) as u128;
        uuid::Uuid::from_u128(seed).to_string()
    }
    #[cfg(not(feature = "hydrate"))]
    uuid::Uuid::nil().to_string()
}
