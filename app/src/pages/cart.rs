use leptos::prelude::*;
use leptos_meta::Title;
use model::{format_price, CartView};

use crate::account::Account;
use crate::components::error_view::SectionError;
use crate::server::account::{get_cart, UpdateCart};

/// `/cart`: lines with quantity and remove, the subtotal at current prices,
/// and a notice where a price changed since the item was added.
#[component]
pub fn CartPage() -> impl IntoView {
    let account = Account::get();
    let update = ServerAction::<UpdateCart>::new();
    let cart = Resource::new(move || (account.version.get(), update.version().get()), |_| get_cart());
    Effect::new(move |_| {
        if let Some(Ok(_)) = update.value().get() {
            account.changed();
        }
    });
    view! {
        <Title text="Your cart"/>
        <section class="page-section" data-testid="cart-page">
            <h1 class="font-display text-3xl font-bold tracking-tight">"Your cart"</h1>
            <ErrorBoundary fallback=|errors| view! { <div class="mt-6"><SectionError errors/></div> }>
                <Transition fallback=|| view! { <p class="mt-6 text-muted">"Loading your cart…"</p> }>
                    {move || Suspend::new(async move {
                        cart.await.map(|c| view! { <CartLines cart=c update/> })
                    })}
                </Transition>
            </ErrorBoundary>
        </section>
    }
}

#[component]
fn CartLines(cart: CartView, update: ServerAction<UpdateCart>) -> impl IntoView {
    if cart.lines.is_empty() {
        return view! {
            <div class="card mt-6 p-10 text-center" data-testid="empty-cart">
                <p class="font-semibold">"Your cart is empty."</p>
                <a href="/" class="btn-primary mt-4 inline-flex">"Start shopping"</a>
            </div>
        }
        .into_any();
    }
    let currency = cart.currency.clone();
    let changed = cart.lines.iter().any(|l| l.price_changed);
    view! {
        {changed.then(|| view! {
            <p role="status" class="mt-4 rounded-xl bg-accent-50 p-4 text-sm text-accent-900" data-testid="price-notice">
                "Some prices changed since you added the items. You will pay the current price shown."
            </p>
        })}
        <ul class="mt-6 divide-y divide-line rounded-2xl border border-line bg-white" data-testid="cart-lines">
            {cart.lines.into_iter().map(|line| {
                let sku = line.sku_id.to_string();
                let (sku_update, sku_remove, qty_id) = (sku.clone(), sku.clone(), format!("qty-{sku}"));
                let currency = currency.clone();
                view! {
                    <li class="flex flex-wrap items-center gap-4 p-4" data-testid="cart-line" data-sku=sku.clone()>
                        <div class="min-w-0 flex-1">
                            <a href=format!("/products/{}?sku={}", line.product_id, line.sku_id) class="font-semibold hover:text-brand-700">{line.title.clone()}</a>
                            <p class="text-sm text-muted">
                                {format_price(line.current_unit_cents, &currency)} " each"
                                {line.price_changed.then(|| view! {
                                    <span class="ml-2 text-accent-800">{format!("(was {})", format_price(line.unit_cents, &currency))}</span>
                                })}
                            </p>
                        </div>
                        <ActionForm action=update attr:class="flex items-center gap-2">
                            <input type="hidden" name="sku_id" value=sku_update/>
                            <label class="sr-only" for=qty_id.clone()>"Quantity"</label>
                            <input id=qty_id class="input w-20 py-1.5" type="number" name="quantity" min="0" max="10"
                                value=line.quantity data-testid="line-quantity"/>
                            <button type="submit" class="btn-secondary px-3 py-1.5 text-sm" data-testid="update-line">"Update"</button>
                        </ActionForm>
                        <ActionForm action=update>
                            <input type="hidden" name="sku_id" value=sku_remove/>
                            <input type="hidden" name="quantity" value="0"/>
                            <button type="submit" class="btn-ghost text-sm text-rose-700" data-testid="remove-line">"Remove"</button>
                        </ActionForm>
                        <p class="w-28 text-right font-semibold">{format_price(line.current_unit_cents * line.quantity, &currency)}</p>
                    </li>
                }
            }).collect_view()}
        </ul>
        <div class="mt-6 flex flex-col items-end gap-3">
            <p class="text-lg">"Subtotal " <span class="font-bold" data-testid="subtotal">{format_price(cart.subtotal_cents, &currency)}</span></p>
            <a href="/checkout" class="btn-primary" data-testid="go-to-checkout">"Go to checkout"</a>
        </div>
    }
    .into_any()
}
