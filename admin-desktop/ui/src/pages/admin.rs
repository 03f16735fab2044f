//! Admin: run the stock counters' reconciliation and read its drift report.

use leptos::prelude::*;
use leptos::task::spawn_local;
use model::inventory::ReconcileReport;
use serde_json::json;

use crate::app::shell;

#[component]
pub fn AdminScreen() -> impl IntoView {
    let shell = shell();
    let report = RwSignal::new(None::<ReconcileReport>);
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let run = move |_| {
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            match shell.call::<_, ReconcileReport>("reconcile", json!({})).await {
                Ok(r) => report.set(Some(r)),
                Err(e) => error.set(Some(e.message)),
            }
            busy.set(false);
        });
    };
    view! {
        <section aria-labelledby="admin-title">
            <div class="screen-head">
                <h1 id="admin-title">"Reconciliation"</h1>
                <button class="button small" data-testid="reconcile" disabled=move || busy.get() on:click=run>
                    {move || if busy.get() { "Reconciling…" } else { "Run reconciliation" }}
                </button>
            </div>
            <p class="muted">"Compares every SKU's stock counter and held units in Redis with PostgreSQL and the live reservations, and corrects any drift."</p>
            <p class="error" role="alert">{move || error.get()}</p>
            {move || report.get().map(|r| {
                let clean = r.corrected.is_empty() && r.held_corrected.is_empty();
                view! {
                    <div class="card wide" data-testid="reconcile-report">
                        <p>
                            <strong>{r.checked}</strong> " SKUs checked, " <strong>{r.loaded}</strong> " counters loaded, in " {r.took_ms} " ms. "
                            {if clean { "No drift: every counter matched.".to_owned() } else { format!("{} counters and {} held figures corrected.", r.corrected.len(), r.held_corrected.len()) }}
                        </p>
                        <Show when=move || !clean>
                            <table class="grid compact">
                                <thead><tr><th scope="col">"SKU"</th><th scope="col">"What"</th><th scope="col" class="num">"Was"</th><th scope="col" class="num">"Now"</th><th scope="col" class="num">"Drift"</th></tr></thead>
                                <tbody>
                                    {r.corrected.iter().map(|d| view! { <tr><td><code>{d.sku_id.to_string()}</code></td><td>"counter"</td><td class="num">{d.counter}</td><td class="num">{d.expected}</td><td class="num">{d.drift}</td></tr> }).collect_view()}
                                    {r.held_corrected.iter().map(|d| view! { <tr><td><code>{d.sku_id.to_string()}</code></td><td>"held"</td><td class="num">{d.held}</td><td class="num">{d.expected}</td><td class="num">{d.drift}</td></tr> }).collect_view()}
                                </tbody>
                            </table>
                        </Show>
                    </div>
                }
            })}
        </section>
    }
}
