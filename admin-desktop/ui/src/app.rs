//! The shell: who is signed in, the banner when the shop does not answer,
//! the sign-in form (a whole screen at first, an overlay when a session
//! ends mid-work so nothing being edited is lost), and the screens.

use std::time::Duration;

use leptos::prelude::*;
use leptos::task::spawn_local;
use model::desktop::{CmdError, Settings, SignInView};
use model::User;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

use crate::pages;
use crate::tauri;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Products,
    Stock,
    Orders,
    Flash,
    Admin,
}

/// The app-wide state every screen reads.
#[derive(Clone, Copy)]
pub struct Shell {
    pub user: RwSignal<Option<User>>,
    /// The shop ended the session while a screen was open.
    pub needs_sign_in: RwSignal<bool>,
    /// Why the shop cannot be reached, while it cannot.
    pub unreachable: RwSignal<Option<String>>,
    pub server_url: RwSignal<String>,
    pub screen: RwSignal<Screen>,
    /// Bumped when the screens should load again (the shop is back, a new sign-in).
    pub reload: RwSignal<u32>,
}

impl Shell {
    /// A command, with the two failures every screen answers the same way:
    /// signed out brings the sign-in form, unreachable the banner. The
    /// caller still gets the error, to show in words where it happened.
    pub async fn call<A: Serialize, T: DeserializeOwned>(self, cmd: &str, args: A) -> Result<T, CmdError> {
        let result = tauri::invoke(cmd, &args).await;
        match &result {
            Err(e) if e.is("signed_out") => self.needs_sign_in.set(true),
            Err(e) if e.is("unreachable") => self.unreachable.set(Some(e.message.clone())),
            Ok(_) => {
                if self.unreachable.get_untracked().is_some() {
                    self.unreachable.set(None);
                }
            }
            _ => {}
        }
        result
    }
}

pub fn shell() -> Shell {
    expect_context::<Shell>()
}

#[component]
pub fn App() -> impl IntoView {
    let shell = Shell {
        user: RwSignal::new(None),
        needs_sign_in: RwSignal::new(false),
        unreachable: RwSignal::new(None),
        server_url: RwSignal::new(String::new()),
        screen: RwSignal::new(Screen::Stock),
        reload: RwSignal::new(0),
    };
    provide_context(shell);
    let restoring = RwSignal::new(true);

    spawn_local(async move {
        if let Ok(settings) = tauri::invoke::<_, Settings>("settings_get", &json!({})).await {
            shell.server_url.set(settings.server_url);
        }
        if let Ok(user) = shell.call::<_, Option<User>>("session_restore", json!({})).await {
            shell.user.set(user);
        }
        restoring.set(false);
        // The end-to-end tests start once the first screen is decided.
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-app-ready", "1");
        }
    });

    view! {
        <Banner/>
        <Show when=move || !restoring.get() fallback=|| view! { <p class="centered muted">"Starting…"</p> }>
            <Show when=move || shell.user.get().is_some() fallback=|| view! { <SignInScreen/> }>
                <Header/>
                <main class="screen">
                    {move || match shell.screen.get() {
                        Screen::Products => view! { <pages::products::ProductsScreen/> }.into_any(),
                        Screen::Stock => view! { <pages::stock::StockScreen/> }.into_any(),
                        Screen::Orders => view! { <pages::orders::OrdersScreen/> }.into_any(),
                        Screen::Flash => view! { <pages::flash::FlashScreen/> }.into_any(),
                        Screen::Admin => view! { <pages::admin::AdminScreen/> }.into_any(),
                    }}
                </main>
                <Show when=move || shell.needs_sign_in.get()>
                    <div class="overlay" role="dialog" aria-modal="true" aria-labelledby="again-title">
                        <div class="card">
                            <h2 id="again-title">"Your session has ended"</h2>
                            <p class="muted">"Sign in again to carry on; nothing you were editing is lost."</p>
                            <SignInForm/>
                        </div>
                    </div>
                </Show>
            </Show>
        </Show>
    }
}

/// "Cannot reach the shop": retried every 3 s, and by hand.
#[component]
fn Banner() -> impl IntoView {
    let shell = shell();
    let retry = move || {
        spawn_local(async move {
            if tauri::invoke::<_, ()>("ping", &json!({})).await.is_ok() {
                shell.unreachable.set(None);
                shell.reload.update(|n| *n += 1);
            }
        })
    };
    Effect::new(move |_| {
        if shell.unreachable.get().is_some() {
            let handle = set_interval_with_handle(retry, Duration::from_secs(3)).ok();
            on_cleanup(move || {
                if let Some(handle) = handle {
                    handle.clear();
                }
            });
        }
    });
    view! {
        <Show when=move || shell.unreachable.get().is_some()>
            <div class="banner" role="alert" data-testid="unreachable">
                <span>{move || shell.unreachable.get().unwrap_or_default()} " Retrying every few seconds."</span>
                <button class="button small" on:click=move |_| retry()>"Retry now"</button>
            </div>
        </Show>
    }
}

#[component]
fn Header() -> impl IntoView {
    let shell = shell();
    let sign_out = move |_| {
        spawn_local(async move {
            // Signed out here whatever the shop says: the token is gone on this side.
            let _ = tauri::invoke::<_, ()>("sign_out", &json!({})).await;
            shell.user.set(None);
            shell.needs_sign_in.set(false);
        })
    };
    let tab = move |screen: Screen, label: &'static str, testid: &'static str| {
        view! {
            <button
                class="tab"
                data-testid=testid
                class:active=move || shell.screen.get() == screen
                aria-current=move || (shell.screen.get() == screen).then_some("page")
                on:click=move |_| shell.screen.set(screen)
            >
                {label}
            </button>
        }
    };
    view! {
        <header class="topbar">
            <span class="brand">"Mercato " <b>"Seller"</b></span>
            <nav aria-label="Screens">
                {tab(Screen::Products, "Products", "tab-products")}
                {tab(Screen::Stock, "Stock", "tab-stock")}
                {tab(Screen::Orders, "Orders", "tab-orders")}
                {tab(Screen::Flash, "Flash sales", "tab-flash")}
                <Show when=move || shell.user.get().is_some_and(|u| u.role == model::Role::Admin)>
                    {tab(Screen::Admin, "Admin", "tab-admin")}
                </Show>
            </nav>
            <span class="who">
                <span data-testid="user-name">{move || shell.user.get().map(|u| u.name).unwrap_or_default()}</span>
                <span class="muted">{move || shell.user.get().map(|u| format!(" · {}", u.role.as_str())).unwrap_or_default()}</span>
            </span>
            <button class="button small quiet" on:click=sign_out>"Sign out"</button>
        </header>
    }
}

#[component]
fn SignInScreen() -> impl IntoView {
    let shell = shell();
    view! {
        <div class="centered">
            <div class="card">
                <h1>"Mercato " <b>"Seller"</b></h1>
                <p class="muted">"Sign in with your seller or admin account."</p>
                <SignInForm/>
                <ServerSetting/>
                <p class="muted small">"Shop: " <span data-testid="server-url">{move || shell.server_url.get()}</span></p>
            </div>
        </div>
    }
}

#[component]
fn SignInForm() -> impl IntoView {
    let shell = shell();
    let email = RwSignal::new(shell.user.get_untracked().map(|u| u.email).unwrap_or_default());
    let password = RwSignal::new(String::new());
    let remember = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            let args = json!({ "email": email.get_untracked(), "password": password.get_untracked(), "remember": remember.get_untracked() });
            match shell.call::<_, SignInView>("sign_in", args).await {
                Ok(view) => {
                    if let Some(note) = view.remember_error {
                        error.set(Some(note));
                    }
                    shell.user.set(Some(view.user));
                    shell.needs_sign_in.set(false);
                    password.set(String::new());
                    shell.reload.update(|n| *n += 1);
                }
                Err(e) => error.set(Some(e.message)),
            }
            busy.set(false);
        });
    };
    view! {
        <form class="stack" on:submit=submit>
            <label>"Email"
                <input type="email" required autocomplete="username" data-testid="sign-in-email"
                    prop:value=move || email.get() on:input=move |ev| email.set(event_target_value(&ev))/>
            </label>
            <label>"Password"
                <input type="password" required autocomplete="current-password" data-testid="sign-in-password"
                    prop:value=move || password.get() on:input=move |ev| password.set(event_target_value(&ev))/>
            </label>
            <label class="inline">
                <input type="checkbox" prop:checked=move || remember.get()
                    on:change=move |ev| remember.set(event_target_checked(&ev))/>
                "Remember me on this computer"
            </label>
            <p class="error" role="alert" data-testid="sign-in-error">{move || error.get()}</p>
            <button class="button" type="submit" data-testid="sign-in-submit" disabled=move || busy.get()>
                {move || if busy.get() { "Signing in…" } else { "Sign in" }}
            </button>
        </form>
    }
}

/// The shop's address, changeable before signing in.
#[component]
fn ServerSetting() -> impl IntoView {
    let shell = shell();
    let open = RwSignal::new(false);
    let draft = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        spawn_local(async move {
            match tauri::invoke::<_, Settings>("settings_set", &json!({ "server_url": draft.get_untracked() })).await {
                Ok(settings) => {
                    shell.server_url.set(settings.server_url);
                    shell.unreachable.set(None);
                    open.set(false);
                    error.set(None);
                }
                Err(e) => error.set(Some(e.message)),
            }
        });
    };
    view! {
        <Show when=move || open.get() fallback=move || view! {
            <button class="link" on:click=move |_| { draft.set(shell.server_url.get_untracked()); open.set(true) }>"Change the shop's address"</button>
        }>
            <form class="stack" on:submit=save>
                <label>"Shop address"
                    <input type="url" prop:value=move || draft.get() on:input=move |ev| draft.set(event_target_value(&ev))/>
                </label>
                <p class="error" role="alert">{move || error.get()}</p>
                <button class="button small" type="submit">"Save"</button>
            </form>
        </Show>
    }
}
