//! Stock: the seller's SKUs with stock, reserved and available, edited in
//! place. Enter or leaving the field saves, Escape puts the figure back; the
//! shop's refusal (below what is reserved) is shown in words on the row.

use leptos::prelude::*;
use leptos::task::spawn_local;
use model::{SkuStockPage, SkuStockRow};
use serde_json::json;
use uuid::Uuid;

use crate::app::shell;
use crate::widgets::{merge_rows, Load};
use model::desktop::{StockCsvResult, StockCsvRow};
use wasm_bindgen::JsCast;

const PAGE: u32 = 50;


#[component]
pub fn StockScreen() -> impl IntoView {
    let shell = shell();
    let rows = RwSignal::new(Vec::<(Uuid, RwSignal<SkuStockRow>)>::new());
    let next = RwSignal::new(None::<Uuid>);
    let state = RwSignal::new(Load::Loading);
    // The CSV import's button and its review share it.
    provide_context(Import::new());

    let fetch = move |cursor: Option<Uuid>| {
        spawn_local(async move {
            match shell.call::<_, SkuStockPage>("list_skus", json!({ "cursor": cursor, "limit": PAGE })).await {
                Ok(page) => {
                    merge_rows(rows, page.items, |r| r.sku_id, cursor.is_some());
                    next.set(page.next_cursor);
                    Load::settle(state, Load::Ready);
                }
                // Signed out or unreachable: the shell shows it; the rows stay.
                Err(e) if e.is("signed_out") || e.is("unreachable") => {
                    if rows.with_untracked(Vec::is_empty) {
                        state.set(Load::Failed(e.message));
                    }
                }
                Err(e) => state.set(Load::Failed(e.message)),
            }
        })
    };
    // Re-renders the table only when it turns empty or not, so a refresh
    // keeps the rows (and what they say) in place.
    let empty = Memo::new(move |_| rows.with(Vec::is_empty));
    // First load, and again whenever the shell says so (back online, signed in again).
    Effect::new(move |_| {
        shell.reload.track();
        fetch(None);
    });

    view! {
        <section aria-labelledby="stock-title">
            <div class="screen-head">
                <h1 id="stock-title">"Stock"</h1>
                <div class="row">
                    <CsvImport/>
                    <button class="button small quiet" on:click=move |_| fetch(None)>"Refresh"</button>
                </div>
            </div>
            <CsvReview/>
            {move || match state.get() {
                Load::Loading => view! { <p class="muted" data-testid="stock-loading">"Loading stock…"</p> }.into_any(),
                Load::Failed(why) => view! { <p class="error" role="alert">"Could not load the stock: " {why}</p> }.into_any(),
                Load::Ready if empty.get() => view! { <p class="muted" data-testid="stock-empty">"No SKUs yet: products you create appear here."</p> }.into_any(),
                Load::Ready => view! {
                    <table class="grid" data-testid="stock-table">
                        <thead>
                            <tr>
                                <th scope="col">"Product"</th>
                                <th scope="col">"Variant"</th>
                                <th scope="col" class="num">"Stock"</th>
                                <th scope="col" class="num">"Reserved"</th>
                                <th scope="col" class="num">"Available"</th>
                                <th scope="col" class="num">"Shards"</th>
                                <th scope="col">""</th>
                            </tr>
                        </thead>
                        <tbody>
                            <For each=move || rows.get() key=|(id, _)| *id children=move |(_, row)| view! { <StockRow row/> }/>
                        </tbody>
                    </table>
                    <Show when=move || next.get().is_some()>
                        <button class="button small" on:click=move |_| fetch(next.get_untracked())>"More"</button>
                    </Show>
                }.into_any(),
            }}
        </section>
    }
}

/// What a row says after a save: nothing, saving, saved, or the refusal.
#[derive(Clone, PartialEq)]
enum Note {
    None,
    Saving,
    Saved,
    Refused(String),
}

#[component]
fn StockRow(row: RwSignal<SkuStockRow>) -> impl IntoView {
    let shell = shell();
    let current = row.get_untracked();
    let draft = RwSignal::new(current.stock_count.to_string());
    let shards = RwSignal::new(current.shards.to_string());
    let note = RwSignal::new(Note::None);
    let sku_id = current.sku_id;
    // New figures from the shop (a save, a refresh) replace what the fields show.
    Effect::new(move |_| {
        let r = row.get();
        draft.set(r.stock_count.to_string());
        shards.set(r.shards.to_string());
    });

    let save = move |cmd: &'static str, field: &'static str, raw: String| {
        let value = match raw.trim().parse::<i64>() {
            Ok(v) if v >= 0 => v,
            _ => {
                note.set(Note::Refused(format!("“{}” is not a whole number of 0 or more.", raw.trim())));
                return;
            }
        };
        note.set(Note::Saving);
        spawn_local(async move {
            match shell.call::<_, SkuStockRow>(cmd, json!({ "sku_id": sku_id, field: value })).await {
                Ok(fresh) => {
                    row.set(fresh);
                    note.set(Note::Saved);
                }
                Err(e) => note.set(Note::Refused(e.message)),
            }
        });
    };
    let save_stock = move || {
        let raw = draft.get_untracked();
        if raw.trim() != row.get_untracked().stock_count.to_string() {
            save("set_stock", "stock_count", raw);
        }
    };
    let save_shards = move || {
        let raw = shards.get_untracked();
        if raw.trim() != row.get_untracked().shards.to_string() {
            save("set_shards", "shards", raw);
        }
    };
    let keys = move |ev: leptos::ev::KeyboardEvent, which: &'static str| match ev.key().as_str() {
        "Enter" => {
            ev.prevent_default();
            if which == "stock" { save_stock() } else { save_shards() }
        }
        "Escape" => {
            let r = row.get_untracked();
            draft.set(r.stock_count.to_string());
            shards.set(r.shards.to_string());
            note.set(Note::None);
        }
        _ => {}
    };

    view! {
        <tr data-testid="stock-row" data-sku-id=sku_id.to_string() data-product-id=current.product_id.to_string()
            class:refused=move || matches!(note.get(), Note::Refused(_))>
            <td>{move || row.get().title}</td>
            <td class="muted">{move || row.get().variant}</td>
            <td class="num">
                <input type="number" min="0" step="1" class="cell" data-testid="stock-input"
                    aria-label=move || format!("Stock of {} {}", row.get().title, row.get().variant)
                    prop:value=move || draft.get()
                    on:input=move |ev| draft.set(event_target_value(&ev))
                    on:keydown=move |ev| keys(ev, "stock")
                    on:blur=move |_| save_stock()/>
            </td>
            <td class="num" data-testid="stock-reserved" title=move || { let r = row.get(); format!("{} in orders, {} held at checkout", r.in_orders, r.held) }>
                {move || row.get().reserved}
            </td>
            <td class="num" data-testid="stock-available">{move || row.get().available}</td>
            <td class="num">
                <input type="number" min="1" step="1" class="cell narrow" data-testid="shards-input"
                    aria-label=move || format!("Counter shards of {} {}", row.get().title, row.get().variant)
                    prop:value=move || shards.get()
                    on:input=move |ev| shards.set(event_target_value(&ev))
                    on:keydown=move |ev| keys(ev, "shards")
                    on:blur=move |_| save_shards()/>
            </td>
            <td role="status" class="note">
                {move || match note.get() {
                    Note::None => view! { <span></span> }.into_any(),
                    Note::Saving => view! { <span class="muted">"Saving…"</span> }.into_any(),
                    Note::Saved => view! { <span class="ok" data-testid="row-saved">"Saved"</span> }.into_any(),
                    Note::Refused(why) => view! { <span class="error" data-testid="row-error">{why}</span> }.into_any(),
                }}
            </td>
        </tr>
    }
}

/// A CSV file being imported: its checked rows, then what applying them did.
#[derive(Clone, Copy)]
struct Import {
    name: RwSignal<String>,
    preview: RwSignal<Option<Vec<StockCsvRow>>>,
    results: RwSignal<Option<Vec<StockCsvResult>>>,
    error: RwSignal<Option<String>>,
    busy: RwSignal<bool>,
}

impl Import {
    fn new() -> Import {
        Import {
            name: RwSignal::new(String::new()),
            preview: RwSignal::new(None),
            results: RwSignal::new(None),
            error: RwSignal::new(None),
            busy: RwSignal::new(false),
        }
    }
}

fn import() -> Import {
    expect_context::<Import>()
}

/// "Import CSV…": a file of `sku_id,stock_count` rows, previewed before anything is sent.
#[component]
fn CsvImport() -> impl IntoView {
    let shell = shell();
    let import = import();
    let chosen = move |ev: leptos::ev::Event| {
        let Some(input) = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok()) else { return };
        let Some(file) = input.files().and_then(|f| f.get(0)) else { return };
        input.set_value("");
        import.name.set(file.name());
        import.results.set(None);
        import.error.set(None);
        spawn_local(async move {
            let text = match wasm_bindgen_futures::JsFuture::from(file.text()).await.ok().and_then(|t| t.as_string()) {
                Some(text) => text,
                None => return import.error.set(Some("The file could not be read as text.".into())),
            };
            match shell.call::<_, Vec<StockCsvRow>>("preview_stock_csv", json!({ "text": text })).await {
                Ok(rows) => import.preview.set(Some(rows)),
                Err(e) => import.error.set(Some(e.message)),
            }
        });
    };
    view! {
        <label class="button small quiet file">
            "Import CSV…"
            <input type="file" accept=".csv,text/csv" class="sr-only" data-testid="csv-file" on:change=chosen/>
        </label>
    }
}

#[component]
fn CsvReview() -> impl IntoView {
    let shell = shell();
    let import = import();
    let usable = move || import.preview.with(|p| p.as_ref().map_or(0, |rows| rows.iter().filter(|r| r.error.is_none()).count()));
    let apply = move |_| {
        let Some(rows) = import.preview.get_untracked() else { return };
        import.busy.set(true);
        spawn_local(async move {
            match shell.call::<_, Vec<StockCsvResult>>("bulk_set_stock", json!({ "rows": rows })).await {
                Ok(results) => {
                    import.results.set(Some(results));
                    import.preview.set(None);
                    shell.reload.update(|n| *n += 1);
                }
                Err(e) => import.error.set(Some(e.message)),
            }
            import.busy.set(false);
        });
    };
    let close = move |_| {
        import.preview.set(None);
        import.results.set(None);
        import.error.set(None);
    };
    view! {
        <p class="error" role="alert">{move || import.error.get()}</p>
        {move || import.preview.get().map(|rows| view! {
            <div class="card wide" data-testid="csv-preview">
                <h2>"Preview of " {import.name.get()}</h2>
                <p class="muted">{usable()} " of " {rows.len()} " rows can be applied; the others are left out. Nothing has been changed yet."</p>
                <table class="grid compact">
                    <thead><tr><th scope="col">"Line"</th><th scope="col">"SKU"</th><th scope="col" class="num">"New stock"</th><th scope="col">"Check"</th></tr></thead>
                    <tbody>
                        {rows.into_iter().map(|r| view! {
                            <tr class:refused=r.error.is_some()>
                                <td>{r.line}</td>
                                <td><code>{r.sku_id.map(|s| s.to_string()).unwrap_or_default()}</code></td>
                                <td class="num">{r.stock_count.map(|n| n.to_string()).unwrap_or_default()}</td>
                                <td class=if r.error.is_some() { "error" } else { "ok" }>{r.error.clone().unwrap_or_else(|| "ready".into())}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
                <div class="row">
                    <button class="button small" data-testid="csv-apply" disabled=move || import.busy.get() || usable() == 0 on:click=apply>
                        {move || match usable() { 1 => "Apply 1 change".to_owned(), n => format!("Apply {n} changes") }}
                    </button>
                    <button class="button small quiet" on:click=close>"Discard"</button>
                </div>
            </div>
        })}
        {move || import.results.get().map(|results| {
            let failed = results.iter().filter(|r| r.error.is_some()).count();
            view! {
                <div class="card wide" data-testid="csv-results">
                    <h2>"Import of " {import.name.get()}</h2>
                    <p>{results.len() - failed} " applied, " {failed} " refused."</p>
                    <table class="grid compact">
                        <thead><tr><th scope="col">"Line"</th><th scope="col">"SKU"</th><th scope="col" class="num">"Stock"</th><th scope="col">"Result"</th></tr></thead>
                        <tbody>
                            {results.into_iter().map(|r| view! {
                                <tr class:refused=r.error.is_some()>
                                    <td>{r.line}</td>
                                    <td><code>{r.sku_id.to_string()}</code></td>
                                    <td class="num">{r.stock_count}</td>
                                    <td class=if r.error.is_some() { "error" } else { "ok" }>{r.error.clone().unwrap_or_else(|| "applied".into())}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                    <button class="button small quiet" on:click=close>"Close"</button>
                </div>
            }
        })}
    }
}
