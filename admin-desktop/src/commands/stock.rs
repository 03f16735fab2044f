//! The stock screen: the seller's SKUs with live figures, stock and shard
//! changes. The shop refuses a cut below what is reserved; its words come
//! back as the error.

use model::desktop::CmdError;
use model::{SkuStockPage, SkuStockRow};
use reqwest::Method;
use serde_json::json;
use tauri::State;
use uuid::Uuid;

use crate::Desktop;

#[tauri::command(rename_all = "snake_case")]
pub async fn list_skus(state: State<'_, Desktop>, cursor: Option<Uuid>, limit: Option<u32>) -> Result<SkuStockPage, CmdError> {
    state.list_skus(cursor, limit).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn set_stock(state: State<'_, Desktop>, sku_id: Uuid, stock_count: i64) -> Result<SkuStockRow, CmdError> {
    state.authed(Method::PUT, &format!("api/v1/seller/skus/{sku_id}/stock"), Some(&json!({ "stock_count": stock_count }))).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn set_shards(state: State<'_, Desktop>, sku_id: Uuid, shards: u32) -> Result<SkuStockRow, CmdError> {
    state.authed(Method::PUT, &format!("api/v1/seller/skus/{sku_id}/shards"), Some(&json!({ "shards": shards }))).await
}

impl Desktop {
    pub async fn list_skus(&self, cursor: Option<Uuid>, limit: Option<u32>) -> Result<SkuStockPage, CmdError> {
        let mut path = format!("api/v1/seller/skus?limit={}", limit.unwrap_or(50).clamp(1, 100));
        if let Some(cursor) = cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        self.authed::<(), _>(Method::GET, &path, None).await
    }
}
