//! The route table. The pages load lazily, in three groups: browsing
//! (home, category, search, product, the review form), the account forms,
//! and buying (cart, checkout, orders, flash sales). `cargo leptos build
//! --split` cuts each group's code (and what only it uses) out of the main
//! wasm into chunks of its own, fetched when a page of the group is first
//! shown: a product page's first load carries the shell and the browsing
//! pages, not checkout, orders or the account forms. Groups, not one chunk
//! per page: wasm-split makes a chunk for every set of split points that
//! shares code, and twelve points made 188 chunks, 118 of them fetched for
//! one product page, which cost more on a slow connection than the bytes
//! they saved (BENCHMARKS.md). On the server a lazy route is an ordinary one.

use leptos::prelude::*;
use leptos_router::components::{Route, Routes};
use leptos::lazy;
use leptos_router::{path, Lazy, LazyRoute, SsrMode};

use crate::pages;

#[derive(Clone, Copy)]
enum Page {
    Home,
    Category,
    Search,
    Product,
    WriteReview,
    Login,
    Register,
    Cart,
    Checkout,
    Orders,
    Order,
    FlashSale,
}

#[lazy]
fn browsing(page: Page) -> AnyView {
    match page {
        Page::Home => pages::home::HomePage().into_any(),
        Page::Category => pages::category::CategoryPage().into_any(),
        Page::Search => pages::search::SearchResultsPage().into_any(),
        Page::Product => pages::product::ProductPage().into_any(),
        _ => pages::reviews::WriteReviewPage().into_any(),
    }
}

#[lazy]
fn account(page: Page) -> AnyView {
    match page {
        Page::Login => pages::account::LoginPage().into_any(),
        _ => pages::account::RegisterPage().into_any(),
    }
}

#[lazy]
fn buying(page: Page) -> AnyView {
    match page {
        Page::Cart => pages::cart::CartPage().into_any(),
        Page::Checkout => pages::checkout::CheckoutPage().into_any(),
        Page::Orders => pages::orders::OrdersPage().into_any(),
        Page::Order => pages::orders::OrderPage().into_any(),
        _ => pages::flash::FlashSalePage().into_any(),
    }
}

/// A page as a lazy route of its group. The pages load their own data in
/// their view, so the route's data half is empty. `preload` fetches the
/// group's chunks: the router awaits it before hydrating the page, so the
/// view is built at once, as the server built it.
macro_rules! lazy_page {
    ($route:ident, $group:ident, $preload:ident, $page:expr) => {
        pub struct $route;

        impl LazyRoute for $route {
            fn data() -> Self {
                $route
            }

            async fn view(_this: Self) -> AnyView {
                $group($page).await
            }

            async fn preload() {
                #[cfg(target_arch = "wasm32")]
                $preload().await;
            }
        }
    };
}

lazy_page!(Home, browsing, __preload_browsing, Page::Home);
lazy_page!(Category, browsing, __preload_browsing, Page::Category);
lazy_page!(Search, browsing, __preload_browsing, Page::Search);
lazy_page!(Product, browsing, __preload_browsing, Page::Product);
lazy_page!(WriteReview, browsing, __preload_browsing, Page::WriteReview);
lazy_page!(Login, account, __preload_account, Page::Login);
lazy_page!(Register, account, __preload_account, Page::Register);
lazy_page!(Cart, buying, __preload_buying, Page::Cart);
lazy_page!(Checkout, buying, __preload_buying, Page::Checkout);
lazy_page!(Orders, buying, __preload_buying, Page::Orders);
lazy_page!(Order, buying, __preload_buying, Page::Order);
lazy_page!(FlashSale, buying, __preload_buying, Page::FlashSale);

/// Every page of the storefront.
#[component]
pub fn StoreRoutes() -> impl IntoView {
    view! {
        <Routes fallback=pages::not_found::NotFound>
            <Route path=path!("") view={Lazy::<Home>::new()}/>
            // Async: the whole page renders before the head is sent, so
            // titles, Open Graph tags and 404/400 statuses are right.
            <Route path=path!("/c/:category_slug") view={Lazy::<Category>::new()} ssr=SsrMode::Async/>
            <Route path=path!("/search") view={Lazy::<Search>::new()} ssr=SsrMode::Async/>
            <Route path=path!("/products/:product_id") view={Lazy::<Product>::new()} ssr=SsrMode::Async/>
            <Route path=path!("/products/:product_id/review") view={Lazy::<WriteReview>::new()} ssr=SsrMode::Async/>
            <Route path=path!("/login") view={Lazy::<Login>::new()}/>
            <Route path=path!("/register") view={Lazy::<Register>::new()}/>
            <Route path=path!("/cart") view={Lazy::<Cart>::new()} ssr=SsrMode::Async/>
            <Route path=path!("/checkout") view={Lazy::<Checkout>::new()} ssr=SsrMode::Async/>
            <Route path=path!("/orders") view={Lazy::<Orders>::new()} ssr=SsrMode::Async/>
            <Route path=path!("/orders/:order_id") view={Lazy::<Order>::new()} ssr=SsrMode::Async/>
            <Route path=path!("/flash/:flash_sale_id") view={Lazy::<FlashSale>::new()} ssr=SsrMode::Async/>
        </Routes>
    }
}
