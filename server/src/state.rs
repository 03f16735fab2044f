use std::sync::Arc;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;

use crate::config::Config;
use crate::http::metrics::Metrics;

/// What every handler may reach: the shop services, the Leptos options and
/// the process's metrics registry. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
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
