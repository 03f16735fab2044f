//! `/flash/{flash_sale_id}`: a flash sale as a shopper sees it. The
//! countdown runs on the server's clock (the offset to the browser's is
//! taken from each answer), remaining units are asked for every second once
//! hydrated, the shopper's place in line and hold are followed by a long
//! poll the server answers when they change, and Buy now either holds units
//! (in the cart at the sale price until `pay_by`) or puts the shopper in a
//! first-come, first-served line that hands them a unit when one comes back.

use std::time::Duration;

use leptos::prelude::*;
use leptos_meta::{Meta, Title};
use leptos_router::hooks::use_params_map;
use model::time::{countdown, unix_ms};
use model::{format_price, MyFlashState, PublicFlashSale, PublicFlashStatus};

use crate::components::error_view::SectionError;
use crate::pages::account::error_text;
use crate::pages::not_found::NotFound;
use crate::server::flash::{flash_wait, get_flash_page, get_flash_sale, FlashBuy, FlashLeave, FlashPage};
use crate::server::PageResult;
use crate::timer::{every, now_ms};

/// How often the open page asks for the sale's figures.
const POLL_EVERY: Duration = Duration::from_secs(1);

/// The pause before following the shopper's state again after a failed wait.
const FOLLOW_RETRY: Duration = Duration::from_secs(2);

#[component]
pub fn FlashSalePage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("flash_sale_id").unwrap_or_default();
    let page = Resource::new(id, get_flash_page);
    view! {
        <ErrorBoundary fallback=|errors| view! { <div class="page-section"><SectionError errors/></div> }>
            <Transition fallback=|| view! { <div class="page-section" aria-busy="true">"Loading…"</div> }>
                {move || Suspend::new(async move {
                    page.await.map(|found| match found {
                        PageResult::Found(data) => view! { <FlashView data/> }.into_any(),
                        PageResult::Missing | PageResult::Invalid(_) => view! { <NotFound/> }.into_any(),
                    })
                })}
            </Transition>
        </ErrorBoundary>
    }
}

/// The server's clock as of the last answer, and the browser's at that moment.
#[derive(Clone, Copy)]
struct Clock {
    server_ms: i64,
    browser_ms: i64,
}

impl Clock {
    fn of(sale: &PublicFlashSale) -> Self {
        Clock { server_ms: unix_ms(&sale.server_time).unwrap_or(0), browser_ms: now_ms() }
    }

    /// Now on the server's clock: the browser's time since the answer added
    /// to the server's time in it. On the server (no ticking) it is the answer's.
    fn now(self, browser_now: i64) -> i64 {
        if self.browser_ms == 0 {
            self.server_ms
        } else {
            self.server_ms + (browser_now - self.browser_ms)
        }
    }
}

#[component]
fn FlashView(data: FlashPage) -> impl IntoView {
    let id = data.sale.id.to_string();
    let title = data.sale.title.clone();
    let sale = RwSignal::new(data.sale);
    let mine = RwSignal::new(data.mine);
    let clock = RwSignal::new(Clock::of(&sale.get_untracked()));
    let browser_now = RwSignal::new(now_ms());

    // Once hydrated: a one-second tick for the countdowns and the sale's
    // figures (one call in flight at a time).
    let polled_id = id.clone();
    Effect::new(move |_| {
        clock.set(Clock::of(&sale.get_untracked()));
        browser_now.set(now_ms());
        let asking = std::rc::Rc::new(std::cell::Cell::new(false));
        let id = polled_id.clone();
        every(POLL_EVERY, move || {
            browser_now.try_set(now_ms());
            if asking.get() {
                return;
            }
            asking.set(true);
            let (id, asking) = (id.clone(), asking.clone());
            leptos::task::spawn_local(async move {
                if let Ok(PageResult::Found(latest)) = get_flash_sale(id).await {
                    clock.try_set(Clock::of(&latest));
                    sale.try_set(latest);
                }
                asking.set(false);
            });
        });
    });

    // The shopper's own state while it can change by itself (in line, or
    // holding units): a long poll the server answers the moment it does.
    // One at a time; its answer starts the next.
    let waiting_id = id.clone();
    let following = std::rc::Rc::new(std::cell::Cell::new(false));
    Effect::new(move |_| {
        let known = mine.get();
        let follow = matches!(known, Some(MyFlashState::Waiting { .. } | MyFlashState::Reserved { .. }));
        if !follow || following.get() {
            return;
        }
        let Ok(known) = serde_json::to_string(&known) else { return };
        following.set(true);
        let (id, following) = (waiting_id.clone(), following.clone());
        leptos::task::spawn_local(async move {
            let answer = flash_wait(id, known).await;
            if answer.is_err() {
                // Signed out, over budget or unreachable: ask again later.
                crate::timer::sleep(FOLLOW_RETRY).await;
            }
            following.set(false);
            // An update wakes the effect even when the state is the same:
            // that starts the next wait.
            match answer {
                Ok(state) => mine.try_update(|m| *m = Some(state)),
                Err(_) => mine.try_update(|_| {}),
            };
        });
    });

    let buy = ServerAction::<FlashBuy>::new();
    let leave = ServerAction::<FlashLeave>::new();
    let account = crate::account::Account::get();
    // An answer to Buy now or Leave is the shopper's new state at once; a
    // hold is a cart line, so the header's count changes too.
    Effect::new(move |_| {
        if let Some(Ok(state)) = buy.value().get() {
            mine.set(Some(state));
            account.changed();
        }
    });
    // A hold that disappears without the shopper giving it up ran out of time.
    // A hold that comes or goes by itself (a promotion from the line, a
    // window that ran out) is a cart line too: the header's count follows.
    let expired = RwSignal::new(false);
    Effect::new(move |previous: Option<bool>| {
        let held = mine.with(|m| matches!(m, Some(MyFlashState::Reserved { .. })));
        let gone_by_itself = previous == Some(true) && !held && leave.value().with_untracked(|v| v.is_none());
        if gone_by_itself {
            expired.set(true);
        } else if held {
            expired.set(false);
        }
        if previous.is_some_and(|was| was != held) {
            account.changed();
        }
        held
    });
    Effect::new(move |_| {
        if let Some(Ok(state)) = leave.value().get() {
            mine.set(Some(state));
        }
    });
    let error = move || error_text(buy.value().get()).or_else(|| error_text(leave.value().get()));

    let now = move || clock.get().now(browser_now.get());
    let status = move || sale.with(|s| s.status);
    let until = move |at: &str| unix_ms(at).map(|t| t - now()).unwrap_or(0);
    let first = sale.get_untracked();
    let discount = if first.regular_price_cents > 0 {
        100 - first.price_cents * 100 / first.regular_price_cents
    } else {
        0
    };

    view! {
        <Title text=format!("Flash sale: {title}")/>
        <Meta name="description" content=format!("{title}: {} instead of {} while stocks last.",
            format_price(first.price_cents, &first.currency), format_price(first.regular_price_cents, &first.currency))/>
        <section class="page-section pb-12" data-testid="flash-page">
            <div class="mx-auto max-w-3xl">
                <p class="flex flex-wrap items-center gap-2">
                    <span class="chip bg-accent-100 font-semibold text-accent-900">"Flash sale"</span>
                    <span class="chip bg-white ring-1 ring-line" data-testid="flash-status" data-status=move || format!("{:?}", status())>
                        {move || match status() {
                            PublicFlashStatus::Scheduled => "Starting soon",
                            PublicFlashStatus::Live => "On now",
                            PublicFlashStatus::SoldOut => "Sold out",
                            PublicFlashStatus::Ended => "Ended",
                            PublicFlashStatus::Cancelled => "Cancelled",
                        }}
                    </span>
                </p>
                <h1 class="mt-3 font-display text-3xl font-bold leading-tight tracking-tight sm:text-4xl">
                    <a href=format!("/products/{}?sku={}", first.product_id, first.sku_id) class="hover:text-brand-700">{title.clone()}</a>
                </h1>
                <p class="mt-4 flex flex-wrap items-baseline gap-x-3 gap-y-1">
                    <span class="text-4xl font-bold text-accent-800" data-testid="flash-price">{format_price(first.price_cents, &first.currency)}</span>
                    <span class="text-lg text-muted line-through" data-testid="regular-price">
                        <span class="sr-only">"Normally "</span>{format_price(first.regular_price_cents, &first.currency)}
                    </span>
                    {(discount > 0).then(|| view! { <span class="chip bg-lime-100 font-semibold text-lime-900">{format!("Save {discount}%")}</span> })}
                </p>

                <div class="card mt-6 grid gap-4 p-6 sm:grid-cols-2" aria-live="polite">
                    <div>
                        <p class="text-sm font-semibold text-muted">
                            {move || match status() {
                                PublicFlashStatus::Scheduled => "Starts in",
                                PublicFlashStatus::Live | PublicFlashStatus::SoldOut => "Ends in",
                                PublicFlashStatus::Ended | PublicFlashStatus::Cancelled => "",
                            }}
                        </p>
                        <p class="font-display text-3xl font-bold tabular-nums" data-testid="countdown">
                            {move || sale.with(|s| match s.status {
                                PublicFlashStatus::Scheduled => countdown(until(&s.starts_at)),
                                PublicFlashStatus::Live | PublicFlashStatus::SoldOut => countdown(until(&s.ends_at)),
                                PublicFlashStatus::Ended => "This sale has ended".to_owned(),
                                PublicFlashStatus::Cancelled => "This sale was cancelled".to_owned(),
                            })}
                        </p>
                    </div>
                    <div>
                        <p class="text-sm font-semibold text-muted">"Left at this price"</p>
                        <p class="font-display text-3xl font-bold tabular-nums" data-testid="remaining">{move || sale.with(|s| s.remaining)}</p>
                        <p class="text-xs text-muted">{move || sale.with(|s| format!("Up to {} per customer", s.per_user_limit))}</p>
                    </div>
                </div>

                <div class="mt-6">
                    {move || {
                        let open = matches!(status(), PublicFlashStatus::Live | PublicFlashStatus::SoldOut);
                        match mine.get() {
                            None => view! {
                                <div class="card p-6" data-testid="flash-sign-in">
                                    <p class="font-semibold">"Sign in to buy in this sale."</p>
                                    <a href="/login" class="btn-primary mt-3 inline-flex">"Sign in"</a>
                                </div>
                            }.into_any(),
                            Some(MyFlashState::Reserved { quantity, price_cents, pay_by, promoted }) => {
                                let currency = sale.with_untracked(|s| s.currency.clone());
                                let left = until(&pay_by);
                                view! {
                                    <div class="card border-brand-500 bg-brand-50 p-6" data-testid="reserved" data-promoted=promoted.to_string()>
                                        {promoted.then(|| view! { <p class="font-semibold text-brand-900" data-testid="promoted">"Good news: a unit came back and it is yours."</p> })}
                                        <p class="font-display text-xl font-bold">
                                            {if quantity == 1 { "1 unit is reserved for you".to_owned() } else { format!("{quantity} units are reserved for you") }}
                                            {format!(" at {} each.", format_price(price_cents, &currency))}
                                        </p>
                                        <p class="mt-1">"It is in your cart. Pay within " <strong class="tabular-nums" data-testid="pay-by">{countdown(left)}</strong> " or it goes to the next in line."</p>
                                        <div class="mt-4 flex flex-wrap gap-3">
                                            <a href="/checkout" class="btn-primary" data-testid="flash-checkout">"Go to checkout"</a>
                                            <ActionForm action=leave>
                                                <input type="hidden" name="id" value=sale.with_untracked(|s| s.id.to_string())/>
                                                <button type="submit" class="btn-secondary" data-testid="give-up">"Let someone else have it"</button>
                                            </ActionForm>
                                        </div>
                                    </div>
                                }.into_any()
                            }
                            Some(MyFlashState::Waiting { position, wait_until }) => view! {
                                <div class="card p-6" data-testid="waiting">
                                    <p class="font-display text-xl font-bold">"You're in line: position " <span data-testid="position">{position}</span></p>
                                    <p class="mt-1 text-muted">"Every unit is held by someone paying right now. If one comes back, it goes to the next in line, and you will see it here. We keep your place for "
                                        <span class="tabular-nums">{countdown(until(&wait_until))}</span>"."</p>
                                    <ActionForm action=leave attr:class="mt-4">
                                        <input type="hidden" name="id" value=sale.with_untracked(|s| s.id.to_string())/>
                                        <button type="submit" class="btn-secondary" data-testid="leave-line">"Leave the line"</button>
                                    </ActionForm>
                                </div>
                            }.into_any(),
                            Some(MyFlashState::Purchased { quantity }) => view! {
                                <div class="card p-6" data-testid="purchased">
                                    <p class="font-display text-xl font-bold">{format!("You bought {quantity} in this sale.")}</p>
                                    <a href="/orders" class="link mt-2 inline-block">"See your orders"</a>
                                </div>
                            }.into_any(),
                            Some(MyFlashState::SoldOut) if open => view! {
                                <div class="card p-6" data-testid="sold-out">
                                    <p class="font-display text-xl font-bold">"Sold out"</p>
                                    <p class="mt-1 text-muted">"Every unit found a buyer. You can try again: if a payment fails, a unit comes back to the line."</p>
                                    <BuyForm buy sale/>
                                </div>
                            }.into_any(),
                            Some(MyFlashState::SoldOut | MyFlashState::None) if !open => view! {
                                <p class="text-muted" data-testid="not-open">
                                    {move || if status() == PublicFlashStatus::Scheduled { "Buy now opens when the countdown ends." } else { "This sale is closed." }}
                                </p>
                                <BuyForm buy sale/>
                            }.into_any(),
                            Some(_) => view! { <BuyForm buy sale/> }.into_any(),
                        }
                    }}
                    {move || expired.get().then(|| view! {
                        <p role="status" class="mt-3 text-sm font-medium text-accent-900" data-testid="hold-expired">
                            "Your time to pay ran out, so the unit went to the next in line. You can try again."
                        </p>
                    })}
                    {move || error().map(|e| view! { <p role="alert" class="mt-3 text-sm font-medium text-rose-700" data-testid="flash-error">{e}</p> })}
                </div>
            </div>
        </section>
    }
}

#[component]
fn BuyForm(buy: ServerAction<FlashBuy>, sale: RwSignal<PublicFlashSale>) -> impl IntoView {
    let pending = buy.pending();
    let open = move || sale.with(|s| matches!(s.status, PublicFlashStatus::Live | PublicFlashStatus::SoldOut));
    let limit = sale.with_untracked(|s| s.per_user_limit).clamp(1, 10);
    view! {
        <ActionForm action=buy attr:class="mt-4 flex flex-wrap items-end gap-3" attr:data-testid="buy-form">
            <input type="hidden" name="id" value=sale.with_untracked(|s| s.id.to_string())/>
            {(limit > 1).then(|| view! {
                <label class="block">
                    <span class="text-sm font-semibold">"Quantity"</span>
                    <select name="quantity" class="input mt-1 w-24 py-2" data-testid="flash-quantity">
                        {(1..=limit).map(|n| view! { <option value=n.to_string()>{n}</option> }).collect_view()}
                    </select>
                </label>
            })}
            {(limit == 1).then(|| view! { <input type="hidden" name="quantity" value="1"/> })}
            <button type="submit" class="btn-primary px-8 py-3 text-lg" data-testid="buy-now" disabled=move || !open() || pending.get()>
                // Once every unit is held, pressing it queues the shopper for
                // the next unit that comes back: say so, not "Buy now".
                {move || match (pending.get(), sale.with(|s| s.status)) {
                    (true, _) => "Reserving…",
                    (false, PublicFlashStatus::SoldOut) => "Join the line",
                    (false, _) => "Buy now",
                }}
            </button>
        </ActionForm>
    }
}
