use std::sync::Arc;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;

use crate::config::Config;
use crate::http::metrics::Metrics;

/// What every handler may reach: the shop services, the Leptos options and
/// the process's metrics registry. One `Arc`: axum clones the state for
/// every stateful layer and handler of every request, and cloning these
/// by value (the shop's dozen `Arc`s, the Leptos options' strings) was
/// 6.5 % of the server's CPU in the flash sale (BENCHMARKS.md).
#[derive(Clone)]
pub struct AppState(Arc<Parts>);

impl AppState {
    pub fn new(parts: Parts) -> Self {
        AppState(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

pub struct Parts {
    pub shop: shop::Shop,
    pub leptos: LeptosOptions,
    pub metrics: Arc<Metrics>,
    pub config: Arc<Config>,
    pub admission: crate::http::admission::Admission,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}
