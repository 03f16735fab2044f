use leptos::prelude::*;

/// Shown inside an `ErrorBoundary` when a section could not load: the rest of
/// the page stays usable.
#[component]
pub fn SectionError(errors: ArcRwSignal<Errors>) -> impl IntoView {
    crate::routing::set_unavailable();
    view! {
        <div role="alert" class="rounded-xl border border-accent-200 bg-accent-50 p-6 text-accent-900">
            <p class="font-semibold">"This section could not be loaded."</p>
            <ul class="mt-1 text-sm">
                {move || errors.get().into_iter().map(|(_, e)| view! { <li>{e.to_string()}</li> }).collect_view()}
            </ul>
        </div>
    }
}
