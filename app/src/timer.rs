//! Repeating work for hydrated pages (live figures, an order that moves on).

use std::time::Duration;

use leptos::prelude::*;

/// Runs `tick` every `period` until the reactive owner it was called under
/// (an effect, a component) is cleaned up. Call it from an effect: effects
/// run only in the browser, and there is no window to set timers on in SSR.
pub fn every(period: Duration, tick: impl Fn() + 'static) {
    // Kept as an `Option`: the error side (a JsValue) may not cross threads.
    let handle = set_interval_with_handle(tick, period).ok();
    on_cleanup(move || {
        if let Some(handle) = handle {
            handle.clear();
        }
    });
}

/// The browser's clock in Unix milliseconds (0 on the server, which never
/// ticks).
pub fn now_ms() -> i64 {
    #[cfg(feature = "hydrate")]
    {
        js_sys::Date::now() as i64
    }
    #[cfg(not(feature = "hydrate"))]
    {
        0
    }
}

/// Resolves after `period` in the browser (at once on the server, which
/// never waits on a page's behalf).
pub async fn sleep(period: Duration) {
    #[cfg(feature = "hydrate")]
    {
        let millis = i32::try_from(period.as_millis()).unwrap_or(i32::MAX);
        let promise = js_sys::Promise::new(&mut |resolve, _reject| {
            if let Some(window) = web_sys::window() {
                let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, millis);
            }
        });
        let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = period;
}
