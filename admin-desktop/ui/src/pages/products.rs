//! Products: the seller's catalog (search by title or brand, newest first,
//! keyset paging), and one form to create a product or edit one with its
//! SKUs. The shop validates; its refusal is shown in its words.

use std::collections::BTreeMap;

use leptos::prelude::*;
use leptos::task::spawn_local;
use model::seller::{NewProduct, NewSku, ProductChange, SellerProduct, SellerProductPage, SkuChange};
use model::{format_price, CategorySummary, Product};
use serde_json::json;
use uuid::Uuid;

use crate::app::shell;
use crate::widgets::{local_time, new_key, parse_price, price_input, Load};

/// What the form edits: a new product, or an existing one.
#[derive(Clone, Copy, PartialEq)]
enum Editing {
    New,
    Existing(Uuid),
}

#[component]
pub fn ProductsScreen() -> impl IntoView {
    let shell = shell();
    let q = RwSignal::new(String::new());
    let items = RwSignal::new(Vec::<SellerProduct>::new());
    let next = RwSignal::new(None::<Uuid>);
    let state = RwSignal::new(Load::Loading);
    let editing = RwSignal::new(None::<Editing>);
    let saved = RwSignal::new(None::<String>);

    let fetch = move |more: bool| {
        let cursor = if more { next.get_untracked() } else { None };
        let query = q.get_untracked();
        spawn_local(async move {
            match shell.call::<_, SellerProductPage>("list_products", json!({ "q": query, "cursor": cursor, "limit": 25 })).await {
                Ok(page) => {
                    if more {
                        items.update(|all| all.extend(page.items));
                    } else {
                        items.set(page.items);
                    }
                    next.set(page.next_cursor);
                    Load::settle(state, Load::Ready);
                }
                Err(e) if e.is("signed_out") || e.is("unreachable") => {}
                Err(e) => state.set(Load::Failed(e.message)),
            }
        })
    };
    Effect::new(move |_| {
        shell.reload.track();
        fetch(false);
    });
    let empty = Memo::new(move |_| items.with(Vec::is_empty));
    let search = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        state.set(Load::Loading);
        fetch(false);
    };

    view! {
        <Show when=move || editing.get().is_none() fallback=move || view! {
            {move || editing.get().map(|e| view! {
                <ProductForm editing=e on_done=Callback::new(move |title: Option<String>| {
                    editing.set(None);
                    saved.set(title.map(|t| format!("Saved “{t}”.")));
                    fetch(false);
                })/>
            })}
        }>
            <section aria-labelledby="products-title">
                <div class="screen-head">
                    <h1 id="products-title">"Products"</h1>
                    <div class="row">
                        <form role="search" class="row" on:submit=search>
                            <input type="search" placeholder="Title or brand" aria-label="Search your products" data-testid="products-search"
                                prop:value=move || q.get() on:input=move |ev| q.set(event_target_value(&ev))/>
                            <button class="button small quiet" type="submit">"Search"</button>
                        </form>
                        <button class="button small" data-testid="product-new" on:click=move |_| editing.set(Some(Editing::New))>"New product"</button>
                    </div>
                </div>
                <p class="ok" role="status" data-testid="product-saved">{move || saved.get()}</p>
                {move || match state.get() {
                    Load::Loading => view! { <p class="muted">"Loading products…"</p> }.into_any(),
                    Load::Failed(why) => view! { <p class="error" role="alert">"Could not load the products: " {why}</p> }.into_any(),
                    Load::Ready if empty.get() => view! { <p class="muted">"No products match."</p> }.into_any(),
                    Load::Ready => view! {
                        <table class="grid">
                            <thead><tr>
                                <th scope="col">"Product"</th><th scope="col">"Brand"</th><th scope="col">"Category"</th>
                                <th scope="col" class="num">"From"</th><th scope="col" class="num">"SKUs"</th><th scope="col" class="num">"Stock"</th>
                                <th scope="col">"Updated"</th><th scope="col">""</th>
                            </tr></thead>
                            <tbody>
                                <For each=move || items.get() key=|p| (p.id, p.updated_at.clone()) children=move |p| {
                                    let id = p.id;
                                    view! {
                                        <tr data-testid="product-row" data-product-id=id.to_string()>
                                            <td>{p.title}</td>
                                            <td>{p.brand}</td>
                                            <td class="muted">{p.category_name}</td>
                                            <td class="num">{format_price(p.min_price_cents, &p.currency)}</td>
                                            <td class="num">{p.sku_count}</td>
                                            <td class="num">{p.stock_count}</td>
                                            <td class="muted small">{local_time(&p.updated_at)}</td>
                                            <td><button class="button small quiet" on:click=move |_| editing.set(Some(Editing::Existing(id)))>"Edit"</button></td>
                                        </tr>
                                    }
                                }/>
                            </tbody>
                        </table>
                        <Show when=move || next.get().is_some()>
                            <button class="button small" on:click=move |_| fetch(true)>"More"</button>
                        </Show>
                    }.into_any(),
                }}
            </section>
        </Show>
    }
}

/// One SKU line of the form. `sku_id` is set for a SKU that exists.
#[derive(Clone)]
struct SkuDraft {
    key: u32,
    sku_id: Option<Uuid>,
    attributes: RwSignal<String>,
    price: RwSignal<String>,
    stock: RwSignal<String>,
}

/// "Colour: Black, Size: M" ⇄ attributes. One pair per comma; a pair needs
/// a name and a value.
fn parse_attributes(raw: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for pair in raw.split([',', '\n']).map(str::trim).filter(|p| !p.is_empty()) {
        match pair.split_once(':') {
            Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => {
                out.insert(k.trim().to_owned(), v.trim().to_owned());
            }
            _ => return Err(format!("“{pair}” is not “name: value”")),
        }
    }
    Ok(out)
}

fn show_attributes(attributes: &BTreeMap<String, String>) -> String {
    attributes.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", ")
}

#[component]
fn ProductForm(editing: Editing, on_done: Callback<Option<String>>) -> impl IntoView {
    let shell = shell();
    let title = RwSignal::new(String::new());
    let description = RwSignal::new(String::new());
    let category = RwSignal::new(String::new());
    let brand = RwSignal::new(String::new());
    let attributes = RwSignal::new(String::new());
    let skus = RwSignal::new(Vec::<SkuDraft>::new());
    let counter = StoredValue::new(0u32);
    let categories = RwSignal::new(Vec::<CategorySummary>::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let loading = RwSignal::new(matches!(editing, Editing::Existing(_)));
    // One key per form: a retry after a lost answer creates one product.
    let key = StoredValue::new(new_key());

    let add_sku = move |sku_id: Option<Uuid>, attrs: String, price: String, stock: String| {
        counter.update_value(|c| *c += 1);
        let draft = SkuDraft {
            key: counter.get_value(),
            sku_id,
            attributes: RwSignal::new(attrs),
            price: RwSignal::new(price),
            stock: RwSignal::new(stock),
        };
        skus.update(|all| all.push(draft));
    };

    spawn_local(async move {
        if let Ok(all) = shell.call::<_, Vec<CategorySummary>>("list_categories", json!({})).await {
            // Products go in the leaf categories, under their department.
            let leaves: Vec<_> = all.into_iter().filter(|c| c.parent.is_some()).collect();
            if category.get_untracked().is_empty() {
                if let Some(first) = leaves.first() {
                    category.set(first.slug.clone());
                }
            }
            categories.set(leaves);
        }
    });
    match editing {
        Editing::New => add_sku(None, String::new(), String::new(), "0".to_owned()),
        Editing::Existing(id) => spawn_local(async move {
            match shell.call::<_, Product>("get_product", json!({ "product_id": id })).await {
                Ok(p) => {
                    title.set(p.title);
                    description.set(p.description);
                    category.set(p.category.slug);
                    brand.set(p.brand.name);
                    attributes.set(show_attributes(&p.attributes));
                    for s in p.skus {
                        add_sku(Some(s.sku_id), show_attributes(&s.attributes), price_input(s.price_cents), s.available.to_string());
                    }
                }
                Err(e) => error.set(Some(e.message)),
            }
            loading.set(false);
        }),
    }

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let attrs = match parse_attributes(&attributes.get_untracked()) {
            Ok(a) => a,
            Err(e) => return error.set(Some(format!("Attributes: {e}."))),
        };
        let mut lines = Vec::new();
        for (n, d) in skus.get_untracked().into_iter().enumerate() {
            let which = format!("SKU {}", n + 1);
            let a = match parse_attributes(&d.attributes.get_untracked()) {
                Ok(a) => a,
                Err(e) => return error.set(Some(format!("{which}: {e}."))),
            };
            let Some(price) = parse_price(&d.price.get_untracked()) else {
                return error.set(Some(format!("{which}: enter a price, e.g. 24.99.")));
            };
            let stock = match (d.sku_id, d.stock.get_untracked().trim().parse::<i64>()) {
                (Some(_), _) => 0,
                (None, Ok(s)) if s >= 0 => s,
                (None, _) => return error.set(Some(format!("{which}: the starting stock must be 0 or more."))),
            };
            lines.push((d.sku_id, a, price, stock));
        }
        let (t, desc, cat, b) = (title.get_untracked(), description.get_untracked(), category.get_untracked(), brand.get_untracked());
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            let done = match editing {
                Editing::New => {
                    let product = NewProduct {
                        title: t.clone(),
                        description: desc,
                        category: cat,
                        brand: b,
                        attributes: attrs,
                        currency: None,
                        skus: lines.into_iter().map(|(_, attributes, price_cents, stock_count)| NewSku { attributes, price_cents, stock_count }).collect(),
                        seller_id: None,
                    };
                    shell.call::<_, Product>("create_product", json!({ "product": product, "idempotency_key": key.get_value() })).await
                }
                Editing::Existing(id) => {
                    let change = ProductChange {
                        title: Some(t.clone()),
                        description: Some(desc),
                        category: Some(cat),
                        brand: Some(b),
                        attributes: Some(attrs),
                        skus: lines
                            .into_iter()
                            .map(|(sku_id, attributes, price_cents, stock)| SkuChange {
                                sku_id,
                                attributes: Some(attributes),
                                price_cents: Some(price_cents),
                                stock_count: sku_id.is_none().then_some(stock),
                            })
                            .collect(),
                    };
                    shell.call::<_, Product>("update_product", json!({ "product_id": id, "change": change })).await
                }
            };
            busy.set(false);
            match done {
                Ok(p) => on_done.run(Some(p.title)),
                Err(e) => error.set(Some(e.message)),
            }
        });
    };

    let heading = match editing {
        Editing::New => "New product",
        Editing::Existing(_) => "Edit product",
    };
    view! {
        <section aria-labelledby="form-title">
            <div class="screen-head">
                <div>
                    <button class="link" on:click=move |_| on_done.run(None)>"← All products"</button>
                    <h1 id="form-title">{heading}</h1>
                </div>
            </div>
            <Show when=move || !loading.get() fallback=|| view! { <p class="muted">"Loading the product…"</p> }>
                <form class="card wide form-grid" on:submit=submit>
                    <label class="span2">"Title"
                        <input type="text" required maxlength="200" data-testid="product-title" prop:value=move || title.get() on:input=move |ev| title.set(event_target_value(&ev))/>
                    </label>
                    <label class="span2">"Description"
                        <textarea rows="4" data-testid="product-description" prop:value=move || description.get() on:input=move |ev| description.set(event_target_value(&ev))></textarea>
                    </label>
                    <label>"Category"
                        <select data-testid="product-category" on:change=move |ev| category.set(event_target_value(&ev))>
                            {move || categories.get().into_iter().map(|c| {
                                let selected = category.get() == c.slug;
                                view! { <option value=c.slug.clone() selected=selected>{c.name}</option> }
                            }).collect_view()}
                        </select>
                    </label>
                    <label>"Brand"
                        <input type="text" required data-testid="product-brand" prop:value=move || brand.get() on:input=move |ev| brand.set(event_target_value(&ev))/>
                    </label>
                    <label class="span2">"Attributes " <span class="muted small">"(e.g. Material: Oak, Warranty: 2 years)"</span>
                        <input type="text" data-testid="product-attributes" prop:value=move || attributes.get() on:input=move |ev| attributes.set(event_target_value(&ev))/>
                    </label>
                    <fieldset class="span2">
                        <legend>"SKUs"</legend>
                        <table class="grid compact">
                            <thead><tr><th scope="col">"Variant " <span class="muted small">"(Colour: Black)"</span></th><th scope="col">"Price"</th><th scope="col">"Starting stock"</th><th></th></tr></thead>
                            <tbody>
                                <For each=move || skus.get() key=|d| d.key children=move |d| {
                                    let existing = d.sku_id.is_some();
                                    let k = d.key;
                                    view! {
                                        <tr data-testid="sku-line">
                                            <td><input type="text" aria-label="Variant" data-testid="sku-attributes" prop:value=move || d.attributes.get() on:input=move |ev| d.attributes.set(event_target_value(&ev))/></td>
                                            <td><input type="text" inputmode="decimal" aria-label="Price" placeholder="24.99" data-testid="sku-price" prop:value=move || d.price.get() on:input=move |ev| d.price.set(event_target_value(&ev))/></td>
                                            <td>
                                                {if existing {
                                                    view! { <span class="muted small">{move || d.stock.get()} " available · change it on the Stock screen"</span> }.into_any()
                                                } else {
                                                    view! { <input type="number" min="0" aria-label="Starting stock" data-testid="sku-stock" prop:value=move || d.stock.get() on:input=move |ev| d.stock.set(event_target_value(&ev))/> }.into_any()
                                                }}
                                            </td>
                                            <td>
                                                <Show when=move || !existing && skus.with(|s| s.len() > 1)>
                                                    <button class="button small quiet" type="button" on:click=move |_| skus.update(|s| s.retain(|x| x.key != k))>"Remove"</button>
                                                </Show>
                                            </td>
                                        </tr>
                                    }
                                }/>
                            </tbody>
                        </table>
                        <button class="button small quiet" type="button" on:click=move |_| add_sku(None, String::new(), String::new(), "0".to_owned())>"Add a SKU"</button>
                    </fieldset>
                    <p class="error span2" role="alert" data-testid="product-error">{move || error.get()}</p>
                    <div class="span2 row">
                        <button class="button" type="submit" data-testid="product-save" disabled=move || busy.get()>
                            {move || if busy.get() { "Saving…" } else { "Save the product" }}
                        </button>
                        <button class="button quiet" type="button" on:click=move |_| on_done.run(None)>"Cancel"</button>
                    </div>
                </form>
            </Show>
        </section>
    }
}
