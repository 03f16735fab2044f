use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};
use model::{format_price, OrderStatus, OrderSummary, OrderView};

use crate::components::error_view::SectionError;
use crate::pages::account::error_text;
use crate::pages::not_found::NotFound;
use crate::pages::reviews::write_review_path;
use crate::server::orders::{get_order, list_orders, CancelOrder};
use crate::server::PageResult;

/// Shown instead of a page that belongs to a signed-in customer.
#[component]
pub fn SignInPrompt(what: &'static str) -> impl IntoView {
    view! {
        <div class="card mt-6 p-10 text-center" data-testid="sign-in-prompt">
            <p class="font-semibold">{format!("Sign in to {what}.")}</p>
            <p class="mt-1 text-sm text-muted">"Your cart comes with you when you sign in."</p>
            <div class="mt-4 flex justify-center gap-3">
                <a href="/login" class="btn-primary">"Sign in"</a>
                <a href="/register" class="btn-secondary">"Create an account"</a>
            </div>
        </div>
    }
}

/// What a customer calls each status.
pub fn status_label(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::Placed => "Placed",
        OrderStatus::PaymentPending => "Awaiting payment",
        OrderStatus::Confirmed => "Confirmed",
        OrderStatus::Shipped => "Shipped",
        OrderStatus::Delivered => "Delivered",
        OrderStatus::Cancelled => "Cancelled",
        OrderStatus::Refunded => "Refunded",
    }
}

#[component]
fn StatusBadge(status: OrderStatus) -> impl IntoView {
    let tone = match status {
        OrderStatus::Cancelled | OrderStatus::Refunded => "bg-slate-100 text-slate-700",
        OrderStatus::Delivered => "bg-emerald-100 text-emerald-800",
        OrderStatus::Placed | OrderStatus::PaymentPending => "bg-accent-100 text-accent-900",
        OrderStatus::Confirmed | OrderStatus::Shipped => "bg-brand-100 text-brand-800",
    };
    view! { <span class=format!("chip {tone}") data-testid="order-status" data-status=status.as_str()>{status_label(status)}</span> }
}

/// "Order 1A2B3C4D": the id's random tail, which is what differs between
/// orders (UUIDv7 ids start with the time).
pub fn order_number(id: uuid::Uuid) -> String {
    let simple = id.simple().to_string();
    simple[simple.len() - 8..].to_ascii_uppercase()
}

/// `2026-11-28T07:30:05.123Z` → `2026-11-28 07:30 UTC`.
fn when(rfc3339: &str) -> String {
    match (rfc3339.get(..10), rfc3339.get(11..16)) {
        (Some(day), Some(time)) => format!("{day} {time} UTC"),
        _ => rfc3339.to_owned(),
    }
}

/// `/orders`: the customer's orders, newest first, ten to a page.
#[component]
pub fn OrdersPage() -> impl IntoView {
    let query = use_query_map();
    let cursor = move || query.read().get("cursor");
    let orders = Resource::new(cursor, list_orders);
    view! {
        <Title text="My orders"/>
        <section class="page-section pb-12" data-testid="orders-page">
            <h1 class="font-display text-3xl font-bold tracking-tight">"My orders"</h1>
            <ErrorBoundary fallback=|errors| view! { <div class="mt-6"><SectionError errors/></div> }>
                <Transition fallback=|| view! { <p class="mt-6 text-muted">"Loading your orders…"</p> }>
                    {move || Suspend::new(async move {
                        orders.await.map(|page| match page {
                            None => view! { <SignInPrompt what="see your orders"/> }.into_any(),
                            Some(page) if page.orders.is_empty() && cursor().is_none() => view! {
                                <div class="card mt-6 p-10 text-center" data-testid="no-orders">
                                    <p class="font-semibold">"You have not ordered anything yet."</p>
                                    <a href="/" class="btn-primary mt-4 inline-flex">"Start shopping"</a>
                                </div>
                            }.into_any(),
                            Some(page) => view! {
                                <ul class="mt-6 divide-y divide-line rounded-2xl border border-line bg-white" data-testid="order-list">
                                    {page.orders.into_iter().map(|o| view! { <OrderRow order=o/> }).collect_view()}
                                </ul>
                                <nav class="mt-6 flex justify-between" aria-label="Order pages">
                                    {cursor().map(|_| view! { <a href="/orders" class="link">"← Newest orders"</a> })}
                                    <span></span>
                                    {page.next_cursor.map(|c| view! {
                                        <a href=format!("/orders?cursor={c}") class="link" data-testid="older-orders">"Older orders →"</a>
                                    })}
                                </nav>
                            }.into_any(),
                        })
                    })}
                </Transition>
            </ErrorBoundary>
        </section>
    }
}

#[component]
fn OrderRow(order: OrderSummary) -> impl IntoView {
    let items = if order.item_count == 1 { "1 item".to_owned() } else { format!("{} items", order.item_count) };
    view! {
        <li data-testid="order-row" data-order=order.order_id.to_string()>
            <a href=format!("/orders/{}", order.order_id) class="flex flex-wrap items-center gap-x-6 gap-y-1 p-4 hover:bg-canvas">
                <span class="font-semibold">"Order " {order_number(order.order_id)}</span>
                <span class="text-sm text-muted">{when(&order.created_at)}</span>
                <span class="text-sm text-muted">{items}</span>
                <span class="ml-auto font-semibold">{format_price(order.total_cents, &order.currency)}</span>
                <StatusBadge status=order.status/>
            </a>
        </li>
    }
}

/// `/orders/{order_id}`: status timeline, items, and the cancel button
/// while nothing has shipped. `?placed=1` is the checkout's confirmation.
#[component]
pub fn OrderPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let id = move || params.read().get("order_id").unwrap_or_default();
    let cancel = ServerAction::<CancelOrder>::new();
    let order = Resource::new(move || (id(), cancel.version().get()), |(id, _)| get_order(id));
    let just_placed = move || query.read().get("placed").is_some();
    let live = follow(id);
    view! {
        <ErrorBoundary fallback=|errors| view! { <div class="page-section"><SectionError errors/></div> }>
            <Transition fallback=|| view! { <div class="page-section" aria-busy="true">"Loading…"</div> }>
                {move || Suspend::new(async move {
                    order.await.map(|found| match found {
                        None => view! {
                            <Title text="Your order"/>
                            <section class="page-section pb-12"><SignInPrompt what="see this order"/></section>
                        }.into_any(),
                        Some(PageResult::Found(o)) => view! { <OrderDetail order=o just_placed=just_placed() cancel live/> }.into_any(),
                        Some(PageResult::Missing | PageResult::Invalid(_)) => view! { <NotFound/> }.into_any(),
                    })
                })}
            </Transition>
        </ErrorBoundary>
    }
}

/// How often an open order page asks whether its order has moved on.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_secs(3);

/// Once hydrated, the order page follows its order as the warehouse moves
/// it (SHIPPED with its tracking, then DELIVERED): the latest view, asked
/// for every few seconds until the order reaches a final status, and only
/// set when something changed, so nothing on the page redraws needlessly.
/// Nothing happens on the server, where effects never run.
fn follow(id: impl Fn() -> String + Copy + Send + Sync + 'static) -> RwSignal<Option<OrderView>> {
    let live: RwSignal<Option<OrderView>> = RwSignal::new(None);
    Effect::new(move |_| {
        let watched = id();
        live.set(None);
        let asking = std::rc::Rc::new(std::cell::Cell::new(false));
        crate::timer::every(
            FOLLOW_EVERY,
            move || {
                // `try_`: the page may be gone (the interval is cleared on
                // cleanup, but an answer can still be on its way).
                let done = live.try_with_untracked(|o| o.as_ref().is_some_and(|o| o.status.is_final())).unwrap_or(true);
                if done || asking.get() {
                    return;
                }
                asking.set(true);
                let (watched, asking) = (watched.clone(), asking.clone());
                leptos::task::spawn_local(async move {
                    // Another order's answer (the customer moved on) is
                    // ignored where it is read: `current` matches by id.
                    if let Ok(Some(PageResult::Found(latest))) = get_order(watched).await {
                        if live.try_with_untracked(|o| o.as_ref() != Some(&latest)).unwrap_or(false) {
                            live.try_set(Some(latest));
                        }
                    }
                    asking.set(false);
                });
            },
        );
    });
    live
}

#[component]
fn OrderDetail(order: OrderView, just_placed: bool, cancel: ServerAction<CancelOrder>, live: RwSignal<Option<OrderView>>) -> impl IntoView {
    let first = StoredValue::new(order.clone());
    // The latest we know: what the page was rendered with until the
    // follower brings news of this same order. History only grows, so the
    // longer one is the newer (a cancel re-renders with a fresh `order`
    // while the follower may still hold an older view).
    let current = Memo::new(move |_| {
        let first = first.get_value();
        live.get().filter(|o| o.order_id == first.order_id && o.status_history.len() > first.status_history.len()).unwrap_or(first)
    });
    let number = order_number(order.order_id);
    let currency = order.currency.clone();
    let cancel_error = move || error_text(cancel.value().get());
    let cancelled_now = move || matches!(cancel.value().get(), Some(Ok(_)));
    let pending = cancel.pending();
    view! {
        <Title text=format!("Order {number}")/>
        <section class="page-section pb-12" data-testid="order-page">
            {just_placed.then(|| view! {
                <div role="status" class="mb-6 rounded-2xl bg-brand-50 p-6 text-brand-900" data-testid="order-confirmation">
                    <p class="font-display text-2xl font-bold">"Thank you! Your order is placed."</p>
                    <p class="mt-1">"Your card has been authorised for " <strong>{format_price(order.total_cents, &currency)}</strong>
                        ". It is charged when the order ships, and you can cancel until then."</p>
                </div>
            })}
            <div class="flex flex-wrap items-center gap-4">
                <h1 class="font-display text-3xl font-bold tracking-tight">"Order " {number.clone()}</h1>
                {move || view! { <StatusBadge status=current.with(|o| o.status)/> }}
            </div>
            <p class="mt-1 text-sm text-muted">"Placed " {when(&order.created_at)} " · " <a href="/orders" class="link">"All orders"</a></p>

            <div class="mt-8 grid gap-8 lg:grid-cols-[1fr_20rem]">
                <div class="card p-6">
                    <h2 class="font-display text-xl font-bold">"Items"</h2>
                    <ul class="mt-4 divide-y divide-line">
                        {order.items.iter().map(|item| view! {
                            <li class="flex flex-wrap items-center gap-x-4 gap-y-1 py-3" data-testid="order-item">
                                <span class="min-w-0 flex-1">
                                    <a href=format!("/products/{}?sku={}", item.product_id, item.sku_id) class="font-semibold hover:text-brand-700">{item.title.clone()}</a>
                                    {let product = item.product_id; move || (current.with(|o| o.status) == OrderStatus::Delivered).then(|| view! {
                                        <a href=write_review_path(product) class="link ml-3 text-sm" data-testid="review-item">"Write a review"</a>
                                    })}
                                </span>
                                <span class="text-sm text-muted">{item.quantity} " × " {format_price(item.unit_cents, &currency)}</span>
                                <span class="w-24 text-right font-semibold">{format_price(item.unit_cents * i64::from(item.quantity), &currency)}</span>
                            </li>
                        }).collect_view()}
                    </ul>
                    <p class="mt-4 flex justify-between border-t border-line pt-4 text-lg">
                        <span>"Total"</span><span class="font-bold" data-testid="order-total">{format_price(order.total_cents, &currency)}</span>
                    </p>
                </div>
                <div class="card h-fit p-6">
                    <h2 class="font-display text-xl font-bold">"Progress"</h2>
                    <div aria-live="polite">{move || view! { <Timeline order=current.get()/> }}</div>
                    {move || current.with(|o| o.status.cancellable()).then(|| view! {
                        <ActionForm action=cancel attr:class="mt-6">
                            <input type="hidden" name="id" value=order.order_id.to_string()/>
                            <button type="submit" class="btn-secondary w-full text-rose-700" data-testid="cancel-order" disabled=move || pending.get()>
                                {move || if pending.get() { "Cancelling…" } else { "Cancel order" }}
                            </button>
                            <p class="mt-2 text-xs text-muted">"The authorisation on your card is released at once."</p>
                        </ActionForm>
                    })}
                    {move || cancelled_now().then(|| view! {
                        <p role="status" class="mt-4 text-sm font-medium text-emerald-800" data-testid="cancel-done">"Your order is cancelled; nothing will be charged."</p>
                    })}
                    {move || cancel_error().map(|e| view! {
                        <p role="alert" class="mt-4 text-sm font-medium text-rose-700" data-testid="cancel-error">{e}</p>
                    })}
                </div>
            </div>
        </section>
    }
}

/// What happened (with times, from the status history), then what is still
/// to come on the normal path.
#[component]
fn Timeline(order: OrderView) -> impl IntoView {
    const PATH: [OrderStatus; 5] =
        [OrderStatus::Placed, OrderStatus::PaymentPending, OrderStatus::Confirmed, OrderStatus::Shipped, OrderStatus::Delivered];
    let upcoming: Vec<OrderStatus> = if order.status.is_final() {
        Vec::new()
    } else {
        PATH.iter().copied().filter(|s| !order.status_history.iter().any(|h| h.status == *s)).collect()
    };
    let last = order.status_history.len().saturating_sub(1);
    view! {
        <ol class="mt-4 space-y-3" data-testid="status-timeline">
            {order.status_history.iter().enumerate().map(|(i, step)| {
                let dot = if i == last { "bg-brand-700 ring-4 ring-brand-100" } else { "bg-brand-700" };
                let parcels = (step.status == OrderStatus::Shipped).then(|| order.parcels.clone()).unwrap_or_default();
                view! {
                    <li class="flex items-start gap-3" data-testid="timeline-step" data-status=step.status.as_str() data-done="true">
                        <span class=format!("mt-1.5 h-2.5 w-2.5 shrink-0 rounded-full {dot}") aria-hidden="true"></span>
                        <span><span class="font-semibold">{status_label(step.status)}</span>
                            <span class="block text-xs text-muted">{when(&step.at)}</span>
                            {parcels.into_iter().map(|p| view! {
                                <span class="block text-sm" data-testid="parcel">
                                    <span data-testid="carrier">{p.carrier}</span>" · tracking "
                                    <span class="font-mono" data-testid="tracking-number">{p.tracking_number}</span>
                                </span>
                            }).collect_view()}
                        </span>
                    </li>
                }
            }).collect_view()}
            {upcoming.into_iter().map(|status| view! {
                <li class="flex items-start gap-3 text-muted" data-testid="timeline-step" data-status=status.as_str() data-done="false">
                    <span class="mt-1.5 h-2.5 w-2.5 shrink-0 rounded-full border-2 border-line" aria-hidden="true"></span>
                    <span>{status_label(status)}</span>
                </li>
            }).collect_view()}
        </ol>
    }
}
