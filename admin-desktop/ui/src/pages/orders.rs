//! Orders to ship: the seller's orders (its own lines only), newest first,
//! refreshed every 5 s; ship with carrier and tracking number, or refund.

use std::time::Duration;

use leptos::prelude::*;
use leptos::task::spawn_local;
use model::order::{OrderStatus, SellerOrder, SellerOrderPage};
use model::format_price;
use serde_json::json;
use uuid::Uuid;

use crate::app::shell;
use crate::widgets::{local_time, merge_rows, short_id, Load};

const PAGE: u32 = 25;

const FILTERS: [(&str, &str); 6] =
    [("CONFIRMED", "To ship"), ("", "All"), ("SHIPPED", "Shipped"), ("DELIVERED", "Delivered"), ("REFUNDED", "Refunded"), ("CANCELLED", "Cancelled")];

#[component]
pub fn OrdersScreen() -> impl IntoView {
    let shell = shell();
    let filter = RwSignal::new("CONFIRMED".to_owned());
    let orders = RwSignal::new(Vec::<(Uuid, RwSignal<SellerOrder>)>::new());
    let next = RwSignal::new(None::<Uuid>);
    let state = RwSignal::new(Load::Loading);

    // `more`: append the next page; otherwise the first page, merged into
    // the rows already shown so an open ship form survives a refresh.
    let fetch = move |more: bool| {
        let cursor = if more { next.get_untracked() } else { None };
        let status = filter.get_untracked();
        spawn_local(async move {
            match shell.call::<_, SellerOrderPage>("list_orders", json!({ "status": status, "cursor": cursor, "limit": PAGE })).await {
                Ok(page) => {
                    // A refresh reads the first page again; older pages the
                    // seller opened with "More" stay below it.
                    let older: Vec<SellerOrder> = if more {
                        Vec::new()
                    } else {
                        orders.with_untracked(|all| {
                            all.iter()
                                .skip(PAGE as usize)
                                .map(|(_, o)| o.get_untracked())
                                .filter(|o| !page.orders.iter().any(|f| f.order_id == o.order_id))
                                .collect()
                        })
                    };
                    if more || older.is_empty() {
                        next.set(page.next_cursor);
                    }
                    let mut rows = page.orders;
                    rows.extend(older);
                    merge_rows(orders, rows, |o| o.order_id, more);
                    Load::settle(state, Load::Ready);
                }
                Err(e) if e.is("signed_out") || e.is("unreachable") => {}
                Err(e) => state.set(Load::Failed(e.message)),
            }
        })
    };
    Effect::new(move |_| {
        shell.reload.track();
        filter.track();
        orders.set(Vec::new());
        next.set(None);
        state.set(Load::Loading);
        fetch(false);
    });
    // New orders arrive without a click: there is no seller-order stream,
    // so the first page is read again every few seconds.
    let poll = set_interval_with_handle(move || fetch(false), Duration::from_secs(5)).ok();
    on_cleanup(move || {
        if let Some(handle) = poll {
            handle.clear();
        }
    });
    let empty = Memo::new(move |_| orders.with(Vec::is_empty));

    view! {
        <section aria-labelledby="orders-title">
            <div class="screen-head">
                <h1 id="orders-title">"Orders"</h1>
                <div class="row">
                    <label class="inline">"Show"
                        <select data-testid="orders-filter" on:change=move |ev| filter.set(event_target_value(&ev))>
                            {FILTERS.map(|(value, label)| view! { <option value=value selected=move || filter.get() == value>{label}</option> })}
                        </select>
                    </label>
                    <button class="button small quiet" on:click=move |_| fetch(false)>"Refresh"</button>
                </div>
            </div>
            {move || match state.get() {
                Load::Loading => view! { <p class="muted">"Loading orders…"</p> }.into_any(),
                Load::Failed(why) => view! { <p class="error" role="alert">"Could not load the orders: " {why}</p> }.into_any(),
                Load::Ready if empty.get() => view! { <p class="muted" data-testid="orders-empty">"No orders here yet."</p> }.into_any(),
                Load::Ready => view! {
                    <table class="grid">
                        <thead><tr>
                            <th scope="col">"Order"</th><th scope="col">"Placed"</th><th scope="col">"Items"</th>
                            <th scope="col" class="num">"Total"</th><th scope="col">"Status"</th><th scope="col">"Shipment"</th><th scope="col">""</th>
                        </tr></thead>
                        <tbody>
                            <For each=move || orders.get() key=|(id, _)| *id children=move |(_, order)| view! { <OrderRow order/> }/>
                        </tbody>
                    </table>
                    <Show when=move || next.get().is_some()>
                        <button class="button small" on:click=move |_| fetch(true)>"More"</button>
                    </Show>
                }.into_any(),
            }}
        </section>
    }
}

#[component]
fn OrderRow(order: RwSignal<SellerOrder>) -> impl IntoView {
    let shell = shell();
    let id = order.get_untracked().order_id;
    let shipping = RwSignal::new(false);
    let carrier = RwSignal::new(String::new());
    let tracking = RwSignal::new(String::new());
    let note = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);

    let act = move |cmd: &'static str, args: serde_json::Value| {
        busy.set(true);
        note.set(None);
        spawn_local(async move {
            match shell.call::<_, SellerOrder>(cmd, args).await {
                Ok(fresh) => {
                    order.set(fresh);
                    shipping.set(false);
                }
                Err(e) => note.set(Some(e.message)),
            }
            busy.set(false);
        });
    };
    let ship = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        act("ship_order", json!({ "order_id": id, "carrier": carrier.get_untracked(), "tracking_number": tracking.get_untracked() }));
    };
    let refund = move |_| {
        let sure = window().confirm_with_message("Refund this order? The customer's payment is returned in full.").unwrap_or(false);
        if sure {
            act("refund_order", json!({ "order_id": id }));
        }
    };
    let can_ship = move || order.with(|o| o.status == OrderStatus::Confirmed);
    let can_refund = move || order.with(|o| matches!(o.status, OrderStatus::Confirmed | OrderStatus::Shipped | OrderStatus::Delivered));

    view! {
        <tr data-testid="order-row" data-order-id=id.to_string()>
            <td><code title=id.to_string()>{short_id(id)}</code></td>
            <td class="muted">{move || local_time(&order.get().created_at)}</td>
            <td>
                {move || order.get().items.into_iter().map(|i| view! { <div>{i.title} " × " {i.quantity}</div> }).collect_view()}
            </td>
            <td class="num">{move || { let o = order.get(); format_price(o.lines_total_cents, &o.currency) }}</td>
            <td><span class="pill" data-testid="order-status">{move || order.get().status.as_str()}</span></td>
            <td class="muted small">
                {move || order.get().shipments.into_iter().filter_map(|s| Some(format!("{} {}", s.carrier?, s.tracking_number.unwrap_or_default()))).collect::<Vec<_>>().join(", ")}
            </td>
            <td class="actions">
                <Show when=move || shipping.get() fallback=move || view! {
                    <Show when=can_ship><button class="button small" data-testid="ship-open" on:click=move |_| shipping.set(true)>"Ship"</button></Show>
                    <Show when=can_refund><button class="button small quiet" data-testid="refund" disabled=move || busy.get() on:click=refund>"Refund"</button></Show>
                }>
                    <form class="ship-form" on:submit=ship>
                        <input type="text" placeholder="Carrier" aria-label="Carrier" required data-testid="ship-carrier"
                            prop:value=move || carrier.get() on:input=move |ev| carrier.set(event_target_value(&ev))/>
                        <input type="text" placeholder="Tracking number" aria-label="Tracking number" required data-testid="ship-tracking"
                            prop:value=move || tracking.get() on:input=move |ev| tracking.set(event_target_value(&ev))/>
                        <button class="button small" type="submit" data-testid="ship-submit" disabled=move || busy.get()>"Mark shipped"</button>
                        <button class="button small quiet" type="button" on:click=move |_| shipping.set(false)>"Cancel"</button>
                    </form>
                </Show>
                <p class="error small" role="alert" data-testid="order-error">{move || note.get()}</p>
            </td>
        </tr>
    }
}
