use leptos::prelude::*;

/// Five stars filled to the average, plus the count; readable as text too.
#[component]
pub fn RatingStars(avg: f64, count: i32, #[prop(optional)] large: bool) -> impl IntoView {
    let label = if count == 0 {
        "No reviews yet".to_owned()
    } else {
        format!("Rated {avg:.1} out of 5 from {count} reviews")
    };
    view! {
        <span class="inline-flex items-center gap-1" title=label.clone() data-testid="rating">
            <span class="sr-only">{label.clone()}</span>
            <Stars value=avg large/>
            <span class="text-sm text-muted" aria-hidden="true">
                {if count == 0 { "New".to_owned() } else { format!("{avg:.1} ({count})") }}
            </span>
        </span>
    }
}

/// Five stars filled to `value` (0 to 5), for the eye only: callers say the
/// rating in words for screen readers.
#[component]
pub fn Stars(value: f64, #[prop(optional)] large: bool) -> impl IntoView {
    let size = if large { "h-5 w-5" } else { "h-4 w-4" };
    let stars = (1..=5)
        .map(|i| {
            let fill = (value - (i - 1) as f64).clamp(0.0, 1.0);
            let class = if fill >= 0.75 {
                "text-accent-500"
            } else if fill >= 0.25 {
                "text-accent-300"
            } else {
                "text-line"
            };
            view! {
                <svg viewBox="0 0 20 20" class=format!("{size} {class}") fill="currentColor" aria-hidden="true">
                    <path d="M10 1.5l2.6 5.5 6 .8-4.4 4.2 1.1 6L10 15.1 4.7 18l1.1-6L1.4 7.8l6-.8z"/>
                </svg>
            }
        })
        .collect_view();
    view! { <span class="inline-flex" aria-hidden="true">{stars}</span> }
}
