//! Mercato Seller's screens, rendered in the app's webview (Leptos, client
//! side). Everything the shop knows comes through `tauri::call`, i.e. the
//! app's Rust side: the page holds no token and makes no HTTP request.

mod app;
mod pages;
mod tauri;
mod widgets;

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
}
