use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_navigate;

use crate::account::Account;
use crate::server::account::{Register, SignIn};

/// A server function's error message, if the last attempt failed.
pub fn error_text<T>(value: Option<Result<T, ServerFnError>>) -> Option<String> {
    match value {
        Some(Err(ServerFnError::ServerError(message))) => Some(message),
        Some(Err(other)) => Some(other.to_string()),
        _ => None,
    }
}

/// Once signed in (or registered): refresh the header and move on to `to`.
/// Returns the last attempt's error message, for the form to show.
fn on_signed_in(
    result: impl Fn() -> Option<Result<model::User, ServerFnError>> + Copy + Send + Sync + 'static,
    to: &'static str,
) -> impl Fn() -> Option<String> + Copy + Send + Sync + 'static {
    let account = Account::get();
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(_)) = result() {
            account.changed();
            navigate(to, Default::default());
        }
    });
    move || error_text(result())
}

/// A labelled, required form field.
#[component]
fn Field(label: &'static str, name: &'static str, kind: &'static str, autocomplete: &'static str) -> impl IntoView {
    view! {
        <label class="block">
            <span class="text-sm font-semibold">{label}</span>
            <input class="input mt-1 w-full" type=kind name=name autocomplete=autocomplete required/>
        </label>
    }
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let action = ServerAction::<SignIn>::new();
    let error = on_signed_in(move || action.value().get(), "/cart");
    view! {
        <Title text="Sign in"/>
        <section class="mx-auto max-w-md px-4 py-12" data-testid="login-page">
            <h1 class="font-display text-3xl font-bold tracking-tight">"Sign in"</h1>
            <p class="mt-2 text-muted">"Your cart comes with you: anything you added as a guest is kept."</p>
            <ActionForm action=action attr:class="card mt-6 space-y-4 p-6">
                <Field label="Email" name="email" kind="email" autocomplete="email"/>
                <Field label="Password" name="password" kind="password" autocomplete="current-password"/>
                {move || error().map(|e| view! { <p role="alert" class="text-sm font-medium text-rose-700" data-testid="form-error">{e}</p> })}
                <button type="submit" class="btn-primary w-full" data-testid="sign-in">"Sign in"</button>
            </ActionForm>
            <p class="mt-4 text-sm text-muted">"New here? " <a href="/register" class="link">"Create an account"</a></p>
        </section>
    }
}

#[component]
pub fn RegisterPage() -> impl IntoView {
    let action = ServerAction::<Register>::new();
    let error = on_signed_in(move || action.value().get(), "/");
    view! {
        <Title text="Create an account"/>
        <section class="mx-auto max-w-md px-4 py-12" data-testid="register-page">
            <h1 class="font-display text-3xl font-bold tracking-tight">"Create an account"</h1>
            <ActionForm action=action attr:class="card mt-6 space-y-4 p-6">
                <Field label="Name" name="name" kind="text" autocomplete="name"/>
                <Field label="Email" name="email" kind="email" autocomplete="email"/>
                <label class="block">
                    <span class="text-sm font-semibold">"Password"</span>
                    <input class="input mt-1 w-full" type="password" name="password" autocomplete="new-password" minlength="10" required/>
                    <span class="mt-1 block text-xs text-muted">"At least 10 characters."</span>
                </label>
                {move || error().map(|e| view! { <p role="alert" class="text-sm font-medium text-rose-700" data-testid="form-error">{e}</p> })}
                <button type="submit" class="btn-primary w-full">"Create account"</button>
            </ActionForm>
            <p class="mt-4 text-sm text-muted">"Already have an account? " <a href="/login" class="link">"Sign in"</a></p>
        </section>
    }
}
