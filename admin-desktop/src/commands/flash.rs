//! Flash sales: create, list, cancel, and the live dashboard's stream.

use model::desktop::{CmdError, LiveMsg};
use model::flash::{FlashSale, FlashSalePage, NewFlashSale};
use reqwest::Method;
use serde_json::json;
use tauri::ipc::Channel;
use tauri::State;
use uuid::Uuid;

use crate::live::{self, Stopped};
use crate::{signed_out, Desktop};

#[tauri::command(rename_all = "snake_case")]
pub async fn list_flash_sales(state: State<'_, Desktop>, cursor: Option<Uuid>) -> Result<FlashSalePage, CmdError> {
    state.authed::<(), _>(Method::GET, &super::page_path("api/v1/seller/flash-sales", None, cursor, &[]), None).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn get_flash_sale(state: State<'_, Desktop>, sale_id: Uuid) -> Result<FlashSale, CmdError> {
    state.authed::<(), _>(Method::GET, &format!("api/v1/seller/flash-sales/{sale_id}"), None).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn create_flash_sale(state: State<'_, Desktop>, sale: NewFlashSale) -> Result<FlashSale, CmdError> {
    state.authed(Method::POST, "api/v1/seller/flash-sales", Some(&sale)).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn cancel_flash_sale(state: State<'_, Desktop>, sale_id: Uuid) -> Result<FlashSale, CmdError> {
    state.authed(Method::POST, &format!("api/v1/seller/flash-sales/{sale_id}/cancel"), Some(&json!({}))).await
}

/// Starts following a sale's live figures into the page's channel; answers
/// the watch's id for `unwatch`. The watch stops by itself when the sale
/// ends, the session ends (which signs the app out) or the page is gone.
#[tauri::command(rename_all = "snake_case")]
pub async fn watch_flash_sale(state: State<'_, Desktop>, sale_id: Uuid, on_event: Channel<LiveMsg>) -> Result<u32, CmdError> {
    let token = state.session.token().ok_or_else(signed_out)?;
    let url = state.api.url(&format!("api/v1/seller/flash-sales/{sale_id}/live"))?;
    let http = state.api.http().clone();
    let session = state.session.clone();
    let id = on_event.id();
    let handle = tauri::async_runtime::spawn(async move {
        let stopped = live::follow(&http, url, token.expose(), None, live::QUIET, |m| on_event.send(m).is_ok()).await;
        if stopped == Stopped::SignedOut {
            session.forget_if(&token);
        }
    });
    let mut watches = state.watches.lock().expect("watches lock");
    watches.retain(|_, h| !h.inner().is_finished());
    if let Some(old) = watches.insert(id, handle) {
        old.abort();
    }
    Ok(id)
}

#[tauri::command(rename_all = "snake_case")]
pub fn unwatch(state: State<'_, Desktop>, watch_id: u32) {
    if let Some(handle) = state.watches.lock().expect("watches lock").remove(&watch_id) {
        handle.abort();
    }
}
