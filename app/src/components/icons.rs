//! Inline SVG icons (no icon font, no extra request). Decorative: hidden
//! from assistive technology; the surrounding control carries the label.

use leptos::prelude::*;

/// The shared frame of the line icons: 24×24, drawn with the text colour.
#[component]
fn LineIcon(
    children: Children,
    #[prop(default = "h-5 w-5")] class: &'static str,
    #[prop(default = "2")] stroke_width: &'static str,
) -> impl IntoView {
    view! {
        <svg class=class viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width=stroke_width
            stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">
            {children()}
        </svg>
    }
}

#[component]
pub fn Logo() -> impl IntoView {
    view! {
        <svg class="h-8 w-8 shrink-0" viewBox="0 0 32 32" aria-hidden="true">
            <rect width="32" height="32" rx="8" class="fill-brand-700"/>
            <path d="M8 23V10l8 7 8-7v13" fill="none" stroke="#f4b860" stroke-width="3"
                stroke-linecap="round" stroke-linejoin="round"/>
        </svg>
    }
}

#[component]
pub fn SearchIcon() -> impl IntoView {
    view! { <LineIcon><circle cx="11" cy="11" r="7"/><path d="m20 20-3.5-3.5"/></LineIcon> }
}

#[component]
pub fn UserIcon() -> impl IntoView {
    view! { <LineIcon><circle cx="12" cy="8" r="4"/><path d="M4 21c0-4 3.6-7 8-7s8 3 8 7"/></LineIcon> }
}

#[component]
pub fn CartIcon() -> impl IntoView {
    view! {
        <LineIcon>
            <path d="M3 4h2l2.4 11.2a2 2 0 0 0 2 1.6h7.7a2 2 0 0 0 2-1.5L21 8H6.2"/>
            <circle cx="10" cy="20" r="1.3"/>
            <circle cx="17" cy="20" r="1.3"/>
        </LineIcon>
    }
}

#[component]
pub fn ChevronDown() -> impl IntoView {
    view! { <LineIcon class="h-4 w-4"><path d="m6 9 6 6 6-6"/></LineIcon> }
}

/// A badge icon for the reassurance strip: truck, shield or return arrow.
#[component]
pub fn PerkIcon(kind: &'static str) -> impl IntoView {
    let path = match kind {
        "truck" => "M3 7h11v8H3zM14 10h4l3 3v2h-7M7 18a1.5 1.5 0 1 0 0-.1M17 18a1.5 1.5 0 1 0 0-.1",
        "shield" => "M12 3 5 6v5c0 4.4 3 8.3 7 9.5 4-1.2 7-5.1 7-9.5V6zM9 12l2 2 4-4",
        _ => "M4 12a8 8 0 1 0 2.3-5.7M4 4v4h4",
    };
    view! { <LineIcon class="h-6 w-6" stroke_width="1.8"><path d=path/></LineIcon> }
}
