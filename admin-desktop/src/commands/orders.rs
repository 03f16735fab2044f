//! Orders to ship: the seller's orders, shipping by hand and refunds.

use model::desktop::CmdError;
use model::order::{SellerOrder, SellerOrderPage};
use reqwest::Method;
use serde_json::json;
use tauri::State;
use uuid::Uuid;

use crate::Desktop;

#[tauri::command(rename_all = "snake_case")]
pub async fn list_orders(
    state: State<'_, Desktop>,
    status: Option<String>,
    cursor: Option<Uuid>,
    limit: Option<u32>,
) -> Result<SellerOrderPage, CmdError> {
    let path = super::page_path("api/v1/seller/orders", limit, cursor, &[("status", status.as_deref())]);
    state.authed::<(), _>(Method::GET, &path, None).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn ship_order(state: State<'_, Desktop>, order_id: Uuid, carrier: String, tracking_number: String) -> Result<SellerOrder, CmdError> {
    if carrier.trim().is_empty() || tracking_number.trim().is_empty() {
        return Err(CmdError::new("bad_input", "Enter the carrier and the tracking number."));
    }
    let body = json!({ "carrier": carrier.trim(), "tracking_number": tracking_number.trim() });
    state.authed(Method::POST, &format!("api/v1/seller/orders/{order_id}/ship"), Some(&body)).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn refund_order(state: State<'_, Desktop>, order_id: Uuid) -> Result<SellerOrder, CmdError> {
    state.authed(Method::POST, &format!("api/v1/seller/orders/{order_id}/refund"), Some(&json!({}))).await
}
