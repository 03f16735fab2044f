//! Flash sales: schedule one, list and cancel them, and watch a running sale
//! live (figures pushed by the app's Rust side from the shop's SSE stream),
//! then read its final report.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use leptos::prelude::*;
use leptos::task::spawn_local;
use model::desktop::LiveMsg;
use model::flash::{FlashLive, FlashSale, FlashSalePage, FlashSaleStatus, NewFlashSale};
use model::{format_price, SkuStockPage, SkuStockRow};
use serde_json::json;
use uuid::Uuid;

use crate::app::shell;
use crate::tauri;
use crate::widgets::{local_input_in, local_input_to_rfc3339, local_time, parse_price, Load};

/// Samples kept for the charts: ten minutes at one a second.
const KEEP: usize = 600;

#[component]
pub fn FlashScreen() -> impl IntoView {
    let shell = shell();
    let sales = RwSignal::new(Vec::<FlashSale>::new());
    let state = RwSignal::new(Load::Loading);
    let watching = RwSignal::new(None::<Uuid>);
    let creating = RwSignal::new(false);

    let fetch = move || {
        spawn_local(async move {
            match shell.call::<_, FlashSalePage>("list_flash_sales", json!({})).await {
                Ok(page) => {
                    sales.set(page.items);
                    Load::settle(state, Load::Ready);
                }
                Err(e) if e.is("signed_out") || e.is("unreachable") => {}
                Err(e) => state.set(Load::Failed(e.message)),
            }
        })
    };
    Effect::new(move |_| {
        shell.reload.track();
        if watching.get().is_none() {
            fetch();
        }
    });
    let empty = Memo::new(move |_| sales.with(Vec::is_empty));

    view! {
        <Show when=move || watching.get().is_none() fallback=move || view! {
            {move || watching.get().map(|id| view! { <Dashboard sale_id=id on_back=Callback::new(move |_| watching.set(None))/> })}
        }>
            <section aria-labelledby="flash-title">
                <div class="screen-head">
                    <h1 id="flash-title">"Flash sales"</h1>
                    <div class="row">
                        <button class="button small" data-testid="flash-new" on:click=move |_| creating.update(|c| *c = !*c)>
                            {move || if creating.get() { "Close the form" } else { "New flash sale" }}
                        </button>
                        <button class="button small quiet" on:click=move |_| fetch()>"Refresh"</button>
                    </div>
                </div>
                <Show when=move || creating.get()>
                    <NewSaleForm on_created=Callback::new(move |sale: FlashSale| {
                        creating.set(false);
                        sales.update(|all| all.insert(0, sale));
                        Load::settle(state, Load::Ready);
                        // The shop's list is the truth (a load started before
                        // the sale was made must not be the last word).
                        fetch();
                    })/>
                </Show>
                {move || match state.get() {
                    Load::Loading => view! { <p class="muted">"Loading flash sales…"</p> }.into_any(),
                    Load::Failed(why) => view! { <p class="error" role="alert">"Could not load the flash sales: " {why}</p> }.into_any(),
                    Load::Ready if empty.get() => view! { <p class="muted" data-testid="flash-empty">"No flash sales yet."</p> }.into_any(),
                    Load::Ready => view! {
                        <table class="grid">
                            <thead><tr>
                                <th scope="col">"Product"</th><th scope="col">"Status"</th><th scope="col" class="num">"Left"</th>
                                <th scope="col" class="num">"Price"</th><th scope="col">"Window"</th><th scope="col">""</th>
                            </tr></thead>
                            <tbody>
                                <For each=move || sales.get() key=|s| (s.id, s.status.as_str(), s.remaining) children=move |sale| {
                                    let id = sale.id;
                                    let cancellable = matches!(sale.status, FlashSaleStatus::Scheduled | FlashSaleStatus::Live);
                                    let error = RwSignal::new(None::<String>);
                                    let cancel = move |_| {
                                        if !window().confirm_with_message("Cancel this flash sale? Units not sold go back to normal stock.").unwrap_or(false) {
                                            return;
                                        }
                                        spawn_local(async move {
                                            match shell.call::<_, FlashSale>("cancel_flash_sale", json!({ "sale_id": id })).await {
                                                Ok(fresh) => sales.update(|all| all.iter_mut().filter(|s| s.id == id).for_each(|s| *s = fresh.clone())),
                                                Err(e) => error.set(Some(e.message)),
                                            }
                                        });
                                    };
                                    view! {
                                        <tr data-testid="flash-row" data-sale-id=id.to_string()>
                                            <td>{sale.title.clone()}</td>
                                            <td><span class="pill">{sale.status.as_str()}</span></td>
                                            <td class="num">{sale.remaining} " / " {sale.quantity}</td>
                                            <td class="num">{format_price(sale.price_cents, &sale.currency)}</td>
                                            <td class="muted small">{local_time(&sale.starts_at)} " → " {local_time(&sale.ends_at)}</td>
                                            <td class="actions">
                                                <button class="button small" data-testid="flash-watch" on:click=move |_| watching.set(Some(id))>
                                                    {if matches!(sale.status, FlashSaleStatus::Ended | FlashSaleStatus::Cancelled) { "Report" } else { "Watch live" }}
                                                </button>
                                                <Show when=move || cancellable>
                                                    <button class="button small quiet" on:click=cancel>"Cancel"</button>
                                                </Show>
                                                <p class="error small" role="alert">{move || error.get()}</p>
                                            </td>
                                        </tr>
                                    }
                                }/>
                            </tbody>
                        </table>
                    }.into_any(),
                }}
            </section>
        </Show>
    }
}

#[component]
fn NewSaleForm(on_created: Callback<FlashSale>) -> impl IntoView {
    let shell = shell();
    let skus = RwSignal::new(Vec::<SkuStockRow>::new());
    let sku = RwSignal::new(String::new());
    let quantity = RwSignal::new("10".to_owned());
    let price = RwSignal::new(String::new());
    let start_now = RwSignal::new(true);
    let starts = RwSignal::new(local_input_in(60.0));
    let minutes = RwSignal::new("60".to_owned());
    let limit = RwSignal::new("1".to_owned());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);

    spawn_local(async move {
        if let Ok(page) = shell.call::<_, SkuStockPage>("list_skus", json!({ "limit": 100 })).await {
            if let Some(first) = page.items.first() {
                sku.set(first.sku_id.to_string());
            }
            skus.set(page.items);
        }
    });

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let fail = |why: &str| error.set(Some(why.to_owned()));
        let Ok(sku_id) = Uuid::parse_str(&sku.get_untracked()) else { return fail("Choose the SKU to sell.") };
        let Some(quantity) = quantity.get_untracked().trim().parse::<i64>().ok().filter(|q| *q > 0) else {
            return fail("The quantity must be a whole number above 0.");
        };
        let Some(price_cents) = parse_price(&price.get_untracked()).filter(|p| *p > 0) else { return fail("Enter the sale price, e.g. 19.99.") };
        let Some(minutes) = minutes.get_untracked().trim().parse::<f64>().ok().filter(|m| *m >= 1.0) else {
            return fail("The sale must run at least a minute.");
        };
        let Some(per_user_limit) = limit.get_untracked().trim().parse::<i64>().ok().filter(|l| *l > 0) else {
            return fail("The per-customer limit must be 1 or more.");
        };
        // "Now" is a few seconds ahead, so it is not in the past when it arrives.
        let start_ms = if start_now.get_untracked() {
            js_sys::Date::now() + 5_000.0
        } else {
            match local_input_to_rfc3339(&starts.get_untracked()) {
                Some(iso) => js_sys::Date::new(&iso.into()).get_time(),
                None => return fail("Choose when the sale starts."),
            }
        };
        let iso = |ms: f64| js_sys::Date::new(&ms.into()).to_iso_string().as_string().unwrap_or_default();
        let sale = NewFlashSale { sku_id, quantity, price_cents, starts_at: iso(start_ms), ends_at: iso(start_ms + minutes * 60_000.0), per_user_limit };
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            match shell.call::<_, FlashSale>("create_flash_sale", json!({ "sale": sale })).await {
                Ok(created) => on_created.run(created),
                Err(e) => error.set(Some(e.message)),
            }
            busy.set(false);
        });
    };

    view! {
        <form class="card wide form-grid" on:submit=submit aria-label="New flash sale">
            <label class="span2">"SKU"
                <select data-testid="flash-sku" on:change=move |ev| sku.set(event_target_value(&ev))>
                    {move || skus.get().into_iter().map(|s| {
                        let id = s.sku_id.to_string();
                        let selected = sku.get() == id;
                        view! { <option value=id selected=selected>{format!("{} · {} ({} available)", s.title, s.variant, s.available)}</option> }
                    }).collect_view()}
                </select>
            </label>
            <label>"Units"
                <input type="number" min="1" data-testid="flash-quantity" prop:value=move || quantity.get() on:input=move |ev| quantity.set(event_target_value(&ev))/>
            </label>
            <label>"Sale price"
                <input type="text" inputmode="decimal" placeholder="19.99" data-testid="flash-price" prop:value=move || price.get() on:input=move |ev| price.set(event_target_value(&ev))/>
            </label>
            <fieldset class="span2">
                <legend>"Starts"</legend>
                <label class="inline"><input type="radio" name="starts" prop:checked=move || start_now.get() on:change=move |_| start_now.set(true)/>"Now"</label>
                <label class="inline"><input type="radio" name="starts" prop:checked=move || !start_now.get() on:change=move |_| start_now.set(false)/>"At"
                    <input type="datetime-local" aria-label="Start time" disabled=move || start_now.get()
                        prop:value=move || starts.get() on:input=move |ev| starts.set(event_target_value(&ev))/>
                </label>
            </fieldset>
            <label>"Runs for (minutes)"
                <input type="number" min="1" data-testid="flash-minutes" prop:value=move || minutes.get() on:input=move |ev| minutes.set(event_target_value(&ev))/>
            </label>
            <label>"Per-customer limit"
                <input type="number" min="1" data-testid="flash-limit" prop:value=move || limit.get() on:input=move |ev| limit.set(event_target_value(&ev))/>
            </label>
            <p class="error span2" role="alert" data-testid="flash-error">{move || error.get()}</p>
            <div class="span2"><button class="button" type="submit" data-testid="flash-create" disabled=move || busy.get()>"Schedule the sale"</button></div>
        </form>
    }
}

/// A running sale's live figures, with charts over the sale so far.
#[component]
fn Dashboard(sale_id: Uuid, on_back: Callback<()>) -> impl IntoView {
    let shell = shell();
    let sale = RwSignal::new(None::<FlashSale>);
    let samples = RwSignal::new(Vec::<FlashLive>::new());
    let last_at = RwSignal::new(None::<f64>);
    let now = RwSignal::new(js_sys::Date::now());
    let link = RwSignal::new("Connecting…".to_owned());

    let load_sale = move || {
        spawn_local(async move {
            if let Ok(s) = shell.call::<_, FlashSale>("get_flash_sale", json!({ "sale_id": sale_id })).await {
                sale.try_set(Some(s));
            }
        })
    };
    load_sale();

    // Plain Rust state, not signals: the watch may answer after the
    // dashboard is gone, and must then be stopped at once.
    let gone = Arc::new(AtomicBool::new(false));
    let watch_id = Arc::new(Mutex::new(None::<u32>));
    {
        let (gone, watch_id) = (gone.clone(), watch_id.clone());
        spawn_local(async move {
            let started = tauri::watch_flash_sale(sale_id, move |msg| match msg {
                LiveMsg::Figures { figures, .. } => {
                    last_at.try_set(Some(js_sys::Date::now()));
                    link.try_set("Connected".to_owned());
                    samples.try_update(|all| {
                        all.push(figures);
                        if all.len() > KEEP {
                            all.remove(0);
                        }
                    });
                }
                LiveMsg::Reconnecting { attempt, error } => {
                    link.try_set(format!("Reconnecting (attempt {attempt}): {error}"));
                }
                LiveMsg::SignedOut => {
                    link.try_set("Signed out".to_owned());
                    shell.needs_sign_in.try_set(true);
                }
                LiveMsg::Ended { reason } => {
                    link.try_set(reason);
                    load_sale();
                }
            })
            .await;
            match started {
                Ok(id) if gone.load(Ordering::SeqCst) => tauri::unwatch(id),
                Ok(id) => *watch_id.lock().unwrap() = Some(id),
                Err(e) => {
                    link.try_set(format!("Not watching: {}", e.message));
                }
            }
        });
    }
    let tick = set_interval_with_handle(move || { now.try_set(js_sys::Date::now()); }, Duration::from_secs(1)).ok();
    on_cleanup(move || {
        gone.store(true, Ordering::SeqCst);
        if let Some(id) = watch_id.lock().unwrap().take() {
            tauri::unwatch(id);
        }
        if let Some(tick) = tick {
            tick.clear();
        }
    });

    let latest = Memo::new(move |_| samples.with(|s| s.last().cloned()));
    let figure = move |f: fn(&FlashLive) -> String| move || latest.get().as_ref().map(f).unwrap_or_else(|| "—".to_owned());
    let since = move || match last_at.get() {
        None => "no update yet".to_owned(),
        Some(at) => format!("last update {} s ago", ((now.get() - at) / 1000.0).max(0.0).floor()),
    };
    let stale = move || last_at.get().is_some_and(|at| now.get() - at > 5_000.0);
    let oversold = move || latest.get().map(|l| l.oversold).or_else(|| sale.get().and_then(|s| s.report.map(|r| r.oversold)));

    view! {
        <section aria-labelledby="dash-title" class="dashboard">
            <div class="screen-head">
                <div>
                    <button class="link" on:click=move |_| on_back.run(())>"← All flash sales"</button>
                    <h1 id="dash-title">{move || sale.get().map(|s| s.title).unwrap_or_else(|| "Flash sale".to_owned())}</h1>
                    <p class="muted small">
                        {move || sale.get().map(|s| format!("{} units at {} · {} → {} · limit {} each", s.quantity, format_price(s.price_cents, &s.currency), local_time(&s.starts_at), local_time(&s.ends_at), s.per_user_limit)).unwrap_or_default()}
                    </p>
                </div>
                <div class="link-state" class:stale=stale>
                    <div><span class="pill" data-testid="flash-status">{move || latest.get().map(|l| l.status).or_else(|| sale.get().map(|s| s.status)).map(|s| s.as_str()).unwrap_or("…")}</span></div>
                    <div data-testid="flash-link">{move || link.get()}</div>
                    <div class="small" data-testid="flash-last-update">{since}</div>
                </div>
            </div>
            <div class="oversold" class:bad=move || oversold().is_some_and(|o| o != 0)>
                "oversold: " <strong data-testid="flash-oversold">{move || oversold().map(|o| o.to_string()).unwrap_or_else(|| "—".into())}</strong>
            </div>
            <div class="tiles">
                <Tile label="Remaining" testid="flash-remaining" value=Signal::derive(figure(|l| l.remaining.to_string()))/>
                <Tile label="Sold" testid="flash-sold" value=Signal::derive(figure(|l| l.sold.to_string()))/>
                <Tile label="Reservations/s" testid="flash-reservations-per-s" value=Signal::derive(figure(|l| format!("{:.1}", l.reservations_per_s)))/>
                <Tile label="Orders/s" testid="flash-orders-per-s" value=Signal::derive(figure(|l| format!("{:.1}", l.orders_per_s)))/>
                <Tile label="Rejections/s" testid="flash-rejections-per-s" value=Signal::derive(figure(|l| format!("{:.1}", l.rejections_per_s)))/>
                <Tile label="Waitlist" testid="flash-waitlist" value=Signal::derive(figure(|l| l.waitlist.to_string()))/>
                <Tile label="Promotions" testid="flash-promotions" value=Signal::derive(figure(|l| l.promotions.to_string()))/>
                <Tile label="Reserve p50 / p99" testid="flash-latency" value=Signal::derive(figure(|l| format!("{:.1} / {:.1} ms", l.reserve_p50_ms, l.reserve_p99_ms)))/>
            </div>
            <div class="charts">
                <Chart title="Remaining units" series=Signal::derive(move || samples.with(|s| s.iter().map(|l| l.remaining as f64).collect()))/>
                <Chart title="Orders per second" series=Signal::derive(move || samples.with(|s| s.iter().map(|l| l.orders_per_s).collect()))/>
                <Chart title="Reservations per second" series=Signal::derive(move || samples.with(|s| s.iter().map(|l| l.reservations_per_s).collect()))/>
                <Chart title="Rejections per second" series=Signal::derive(move || samples.with(|s| s.iter().map(|l| l.rejections_per_s).collect()))/>
            </div>
            {move || sale.get().and_then(|s| s.report).map(|r| view! {
                <div class="card wide" data-testid="flash-report">
                    <h2>"Final report"</h2>
                    <table class="grid compact">
                        <tbody>
                            <tr><th scope="row">"Sold"</th><td class="num">{r.sold}</td></tr>
                            <tr><th scope="row">"Promoted from the waitlist"</th><td class="num">{r.promoted}</td></tr>
                            <tr><th scope="row">"Abandoned holds"</th><td class="num">{r.abandoned}</td></tr>
                            <tr><th scope="row">"Rejected buys"</th><td class="num">{r.rejected}</td></tr>
                            <tr><th scope="row">"Returned to stock"</th><td class="num">{r.returned}</td></tr>
                            <tr><th scope="row">"Oversold"</th><td class="num">{r.oversold}</td></tr>
                            <tr><th scope="row">"Counters corrected"</th><td class="num">{r.drift_corrected}</td></tr>
                        </tbody>
                    </table>
                </div>
            })}
        </section>
    }
}

#[component]
fn Tile(label: &'static str, testid: &'static str, value: Signal<String>) -> impl IntoView {
    view! {
        <div class="tile">
            <div class="tile-label">{label}</div>
            <div class="tile-value" data-testid=testid>{move || value.get()}</div>
        </div>
    }
}

/// A line over the sale so far, drawn as SVG (no charting library to ship).
#[component]
fn Chart(title: &'static str, series: Signal<Vec<f64>>) -> impl IntoView {
    const W: f64 = 560.0;
    const H: f64 = 120.0;
    let points = move || {
        series.with(|s| {
            let max = s.iter().cloned().fold(0.0_f64, f64::max).max(1.0);
            let step = if s.len() > 1 { W / (s.len() - 1) as f64 } else { 0.0 };
            s.iter().enumerate().map(|(i, v)| format!("{:.1},{:.1}", i as f64 * step, H - v / max * (H - 8.0) - 4.0)).collect::<Vec<_>>().join(" ")
        })
    };
    let top = move || series.with(|s| s.iter().cloned().fold(0.0_f64, f64::max));
    view! {
        <figure class="chart">
            <figcaption>{title} <span class="muted small">{move || format!(" · peak {:.1}", top())}</span></figcaption>
            <svg viewBox=format!("0 0 {W} {H}") preserveAspectRatio="none" role="img" aria-label=title>
                <line x1="0" y1=H - 4.0 x2=W y2=H - 4.0 class="axis"/>
                <polyline points=points class="series"/>
            </svg>
        </figure>
    }
}
