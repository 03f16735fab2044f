//! The stock screen: the seller's SKUs with live figures, stock and shard
//! changes. The shop refuses a cut below what is reserved; its words come
//! back as the error.

use model::desktop::{CmdError, StockCsvResult, StockCsvRow};
use model::{SkuStockPage, SkuStockRow};
use reqwest::Method;
use serde_json::json;
use tauri::State;
use uuid::Uuid;

use crate::Desktop;

#[tauri::command(rename_all = "snake_case")]
pub async fn list_skus(state: State<'_, Desktop>, cursor: Option<Uuid>, limit: Option<u32>) -> Result<SkuStockPage, CmdError> {
    state.authed::<(), _>(Method::GET, &super::page_path("api/v1/seller/skus", limit, cursor, &[]), None).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn set_stock(state: State<'_, Desktop>, sku_id: Uuid, stock_count: i64) -> Result<SkuStockRow, CmdError> {
    state.authed(Method::PUT, &format!("api/v1/seller/skus/{sku_id}/stock"), Some(&json!({ "stock_count": stock_count }))).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn set_shards(state: State<'_, Desktop>, sku_id: Uuid, shards: u32) -> Result<SkuStockRow, CmdError> {
    state.authed(Method::PUT, &format!("api/v1/seller/skus/{sku_id}/shards"), Some(&json!({ "shards": shards }))).await
}

/// Checks a CSV file's rows without sending anything.
#[tauri::command(rename_all = "snake_case")]
pub fn preview_stock_csv(text: String) -> Result<Vec<StockCsvRow>, CmdError> {
    crate::csv::parse_stock_csv(&text).map_err(|e| CmdError::new("bad_input", format!("This file cannot be used: {e}.")))
}

/// Applies the previewed rows one by one (the shop checks each against its
/// live holds); each row gets its own result. If the session ends or the
/// shop stops answering, the rows not yet sent say so.
#[tauri::command(rename_all = "snake_case")]
pub async fn bulk_set_stock(state: State<'_, Desktop>, rows: Vec<StockCsvRow>) -> Result<Vec<StockCsvResult>, CmdError> {
    let mut results = Vec::with_capacity(rows.len());
    let mut stop: Option<String> = None;
    for row in rows {
        let (Some(sku_id), Some(stock_count), None) = (row.sku_id, row.stock_count, &row.error) else {
            continue;
        };
        let error = match &stop {
            Some(why) => Some(format!("not sent: {why}")),
            None => match state
                .authed::<_, SkuStockRow>(Method::PUT, &format!("api/v1/seller/skus/{sku_id}/stock"), Some(&json!({ "stock_count": stock_count })))
                .await
            {
                Ok(_) => None,
                Err(e) => {
                    if e.is("signed_out") || e.is("unreachable") {
                        stop = Some(e.message.clone());
                    }
                    Some(e.message)
                }
            },
        };
        results.push(StockCsvResult { line: row.line, sku_id, stock_count, error });
    }
    Ok(results)
}
