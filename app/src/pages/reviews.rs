//! Reviews in the storefront: the product page's section (average,
//! histogram, sorted and paged list) and `/products/{id}/review`, where a
//! customer whose order has been delivered writes or edits theirs.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_params_map, use_query_map};
use model::{Review, ReviewPage};

use crate::components::error_view::SectionError;
use crate::components::rating::{RatingStars, Stars};
use crate::pages::account::error_text;
use crate::pages::not_found::NotFound;
use crate::pages::orders::SignInPrompt;
use crate::server::reviews::{get_review_form, get_reviews, reviews_path, ReviewForm, WriteReview};
use crate::server::PageResult;

/// Where a customer writes their review of a product.
pub fn write_review_path(product_id: impl std::fmt::Display) -> String {
    format!("/products/{product_id}/review")
}

/// The product page's reviews for the product in the route. Sort and page
/// live in the query string (`?reviews=helpful&reviews_after=<id>`) next to
/// the variant, so they are plain links that work before hydration and can
/// be shared. Made by the page itself, beside the product's own resource,
/// so both load at once and the server renders the same page every time
/// (a resource made inside the product's `Suspend` can be made twice).
pub fn reviews_resource() -> Resource<Result<PageResult<ReviewPage>, ServerFnError>> {
    let params = use_params_map();
    let query = use_query_map();
    let id = move || params.read().get("product_id").unwrap_or_default();
    let helpful = move || query.read().get("reviews").as_deref() == Some("helpful");
    let cursor = move || query.read().get("reviews_after");
    Resource::new(
        move || (id(), helpful(), cursor()),
        move |(id, helpful, cursor)| get_reviews(id, helpful.then(|| "helpful".to_owned()), cursor),
    )
}

#[component]
pub fn ProductReviews(product_id: String, page: Resource<Result<PageResult<ReviewPage>, ServerFnError>>) -> impl IntoView {
    let query = use_query_map();
    let helpful = Memo::new(move |_| query.read().get("reviews").as_deref() == Some("helpful"));
    let cursor = Memo::new(move |_| query.read().get("reviews_after"));
    let sku = Memo::new(move |_| query.read().get("sku"));
    let id = StoredValue::new(product_id);
    // Keeps the chosen variant when the reviews move on.
    let link = move |helpful: bool, after: Option<uuid::Uuid>| {
        let mut pairs = Vec::new();
        if let Some(sku) = sku.get() {
            pairs.push(format!("sku={sku}"));
        }
        if helpful {
            pairs.push("reviews=helpful".to_owned());
        }
        if let Some(after) = after {
            pairs.push(format!("reviews_after={after}"));
        }
        format!("?{}#reviews", pairs.join("&"))
    };
    view! {
        <section id="reviews" aria-labelledby="reviews-title" class="mt-12 border-t border-line pt-8" data-testid="reviews">
            <div class="flex flex-wrap items-center justify-between gap-4">
                <h2 id="reviews-title" class="font-display text-2xl font-bold">"Customer reviews"</h2>
                <a href=write_review_path(id.get_value()) class="btn-secondary" data-testid="write-review">"Write a review"</a>
            </div>
            <ErrorBoundary fallback=|errors| view! { <div class="mt-4"><SectionError errors/></div> }>
                <Transition fallback=|| view! { <p class="mt-4 text-muted">"Loading reviews…"</p> }>
                    {move || Suspend::new(async move {
                        page.await.map(|found| match found {
                            PageResult::Found(page) => view! {
                                <ReviewsBody page helpful=helpful.get_untracked() paged=cursor.get_untracked().is_some() link/>
                            }.into_any(),
                            PageResult::Missing | PageResult::Invalid(_) => ().into_any(),
                        })
                    })}
                </Transition>
            </ErrorBoundary>
        </section>
    }
}

#[component]
fn ReviewsBody(
    page: ReviewPage,
    helpful: bool,
    paged: bool,
    link: impl Fn(bool, Option<uuid::Uuid>) -> String + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let total = page.rating_count.max(0) as u64;
    // Ratings can outnumber written reviews (the demo catalog's ratings have
    // none behind them), so the bars share out the written ones.
    let written: u64 = page.histogram.values().sum();
    let sort_class = |active: bool| if active { "chip bg-brand-700 text-white" } else { "chip bg-white ring-1 ring-line hover:ring-brand-500" };
    view! {
        <div class="mt-6 grid gap-10 lg:grid-cols-[18rem_1fr]">
            <div data-testid="review-summary">
                <p class="flex items-baseline gap-2">
                    <span class="font-display text-4xl font-bold" data-testid="review-average">
                        {if total == 0 { "–".to_owned() } else { format!("{:.1}", page.rating_avg) }}
                    </span>
                    <span class="text-muted">"out of 5"</span>
                </p>
                <RatingStars avg=page.rating_avg count=page.rating_count/>
                <p class="mt-1 text-sm text-muted" data-testid="review-count" data-count=total.to_string()>
                    {match total { 0 => "No ratings yet".to_owned(), 1 => "1 rating".to_owned(), n => format!("{n} ratings") }}
                </p>
                <table class="mt-4 w-full text-sm" data-testid="review-histogram">
                    <caption class="sr-only">"How many written reviews gave each rating"</caption>
                    <tbody>
                        {(1..=5u8).rev().map(|stars| {
                            let count = page.histogram.get(&stars.to_string()).copied().unwrap_or(0);
                            let share = if written == 0 { 0 } else { count * 100 / written };
                            view! {
                                <tr data-testid="histogram-row" data-stars=stars.to_string() data-count=count.to_string()>
                                    <th scope="row" class="w-16 py-1 pr-2 text-left font-normal">{format!("{stars} star")}</th>
                                    <td class="py-1">
                                        <div class="h-2.5 rounded-full bg-line" aria-hidden="true">
                                            <div class="h-2.5 rounded-full bg-accent-500" style=format!("width: {share}%")></div>
                                        </div>
                                    </td>
                                    <td class="w-10 py-1 pl-2 text-right tabular-nums text-muted">{count}</td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
                {(written != total).then(|| view! {
                    <p class="mt-2 text-xs text-muted" data-testid="written-reviews">
                        {match written { 1 => "1 written review".to_owned(), n => format!("{n} written reviews") }}
                    </p>
                })}
            </div>
            <div>
                {(total > 0).then(|| view! {
                    <nav class="flex items-center gap-2 text-sm" aria-label="Sort reviews">
                        <span class="text-muted">"Sort by"</span>
                        <a href=link(false, None) class=sort_class(!helpful) aria-current=(!helpful).then_some("true") data-testid="sort-newest">"Newest"</a>
                        <a href=link(true, None) class=sort_class(helpful) aria-current=helpful.then_some("true") data-testid="sort-helpful">"Most helpful"</a>
                    </nav>
                })}
                {if page.reviews.is_empty() {
                    view! {
                        <p class="mt-2 text-muted" data-testid="no-reviews">
                            "No reviews yet. Customers can review a product once their order of it has been delivered."
                        </p>
                    }.into_any()
                } else {
                    view! {
                        <ul class="mt-4 divide-y divide-line" data-testid="review-list">
                            {page.reviews.into_iter().map(|review| view! { <ReviewItem review/> }).collect_view()}
                        </ul>
                    }.into_any()
                }}
                <nav class="mt-4 flex justify-between text-sm" aria-label="Review pages">
                    {paged.then(|| view! { <a href=link(helpful, None) class="link">"← First reviews"</a> })}
                    <span></span>
                    {page.next_cursor.map(|after| view! {
                        <a href=link(helpful, Some(after)) class="link" data-testid="more-reviews">"More reviews →"</a>
                    })}
                </nav>
            </div>
        </div>
    }
}

#[component]
fn ReviewItem(review: Review) -> impl IntoView {
    let edited = review.updated_at.get(..16) != review.created_at.get(..16);
    view! {
        <li class="py-5" data-testid="review" data-review=review.id.to_string() data-rating=review.rating.to_string()>
            <div class="flex flex-wrap items-center gap-x-3 gap-y-1">
                <Stars value=f64::from(review.rating)/>
                <span class="sr-only">{format!("{} out of 5 stars", review.rating)}</span>
                <h3 class="font-semibold" data-testid="review-title">{review.title}</h3>
            </div>
            <p class="mt-1 text-xs text-muted">
                {review.author} " · " {review.created_at.get(..10).unwrap_or_default().to_owned()}
                {edited.then_some(" · edited")}
                {review.verified_buyer.then(|| view! { " · " <span class="font-semibold text-emerald-800">"Verified buyer"</span> })}
            </p>
            <p class="mt-2 whitespace-pre-line leading-relaxed" data-testid="review-body">{review.body}</p>
        </li>
    }
}

/// `/products/{product_id}/review`.
#[component]
pub fn WriteReviewPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("product_id").unwrap_or_default();
    let form = Resource::new(id, get_review_form);
    view! {
        <section class="page-section max-w-2xl pb-12" data-testid="review-page">
            <ErrorBoundary fallback=|errors| view! { <SectionError errors/> }>
                <Transition fallback=|| view! { <p aria-busy="true">"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        form.await.map(|found| match found {
                            PageResult::Found(ReviewForm::SignedOut) => view! {
                                <Title text="Write a review"/>
                                <SignInPrompt what="review this product"/>
                            }.into_any(),
                            PageResult::Found(ReviewForm::NotABuyer { title }) => view! {
                                <Title text="Write a review"/>
                                <h1 class="font-display text-3xl font-bold tracking-tight">{title}</h1>
                                <div class="card mt-6 p-8" data-testid="not-a-buyer">
                                    <p class="font-semibold">"Reviews come from customers who received the product."</p>
                                    <p class="mt-1 text-muted">"Once your order with it has been delivered, you can review it here."</p>
                                    <a href=format!("/products/{}", id()) class="link mt-4 inline-block">"Back to the product"</a>
                                </div>
                            }.into_any(),
                            PageResult::Found(ReviewForm::Ready { title, existing }) => view! {
                                <ReviewFormView product_id=id() title existing/>
                            }.into_any(),
                            PageResult::Missing | PageResult::Invalid(_) => view! { <NotFound/> }.into_any(),
                        })
                    })}
                </Transition>
            </ErrorBoundary>
        </section>
    }
}

const RATING_WORDS: [&str; 5] = ["Poor", "Fair", "Good", "Very good", "Excellent"];

#[component]
fn ReviewFormView(product_id: String, title: String, existing: Option<Review>) -> impl IntoView {
    let write = ServerAction::<WriteReview>::new();
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(product_id)) = write.value().get() {
            navigate(&reviews_path(&product_id), Default::default());
        }
    });
    let error = move || error_text(write.value().get());
    let pending = write.pending();
    let chosen = existing.as_ref().map(|r| r.rating);
    let editing = existing.is_some();
    let (old_title, old_body) = existing.map(|r| (r.title, r.body)).unwrap_or_default();
    view! {
        <Title text=format!("Review: {title}")/>
        <p class="text-sm text-muted"><a href=format!("/products/{product_id}") class="link">"← Back to the product"</a></p>
        <h1 class="mt-2 font-display text-3xl font-bold tracking-tight">{if editing { "Edit your review" } else { "Write a review" }}</h1>
        <p class="mt-1 text-muted" data-testid="review-product">{title}</p>
        <ActionForm action=write attr:class="card mt-6 space-y-5 p-6" attr:data-testid="review-form">
            <input type="hidden" name="product_id" value=product_id/>
            <fieldset>
                <legend class="text-sm font-semibold">"Your rating"</legend>
                <div class="mt-2 flex flex-wrap gap-2">
                    {(1..=5u8).map(|n| view! {
                        <label class="flex cursor-pointer items-center gap-2 rounded-lg border border-line px-3 py-2 has-[:checked]:border-brand-500 has-[:checked]:bg-brand-50">
                            <input type="radio" name="rating" value=n.to_string() checked=chosen == Some(n) data-testid=format!("rating-{n}")/>
                            <Stars value=f64::from(n)/>
                            <span class="text-sm">{format!("{n} – {}", RATING_WORDS[usize::from(n) - 1])}</span>
                        </label>
                    }).collect_view()}
                </div>
            </fieldset>
            <label class="block">
                <span class="text-sm font-semibold">"Headline"</span>
                <input class="input mt-1 w-full px-3" type="text" name="title" maxlength=120 required value=old_title data-testid="review-title-input"/>
            </label>
            <label class="block">
                <span class="text-sm font-semibold">"Your review"</span>
                <textarea class="input mt-1 h-40 w-full px-3 py-2" name="body" maxlength=4000 required data-testid="review-body-input">{old_body}</textarea>
                <span class="mt-1 block text-xs text-muted">"What did you like or dislike? Up to 4,000 characters. Your first name is shown with it."</span>
            </label>
            {move || error().map(|e| view! { <p role="alert" class="text-sm font-medium text-rose-700" data-testid="review-error">{e}</p> })}
            <button type="submit" class="btn-primary" disabled=move || pending.get() data-testid="submit-review">
                {move || match (pending.get(), editing) {
                    (true, _) => "Publishing…",
                    (false, true) => "Update review",
                    (false, false) => "Publish review",
                }}
            </button>
        </ActionForm>
    }
}
