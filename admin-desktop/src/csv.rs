//! Stock CSV files (`sku_id,stock_count`, as a spreadsheet exports them):
//! every row checked before anything is sent, so the preview shows exactly
//! what a bulk update will try.

use std::collections::HashMap;

use model::desktop::StockCsvRow;
use uuid::Uuid;

/// More rows than a seller's catalog plausibly has is a wrong file.
pub const MAX_ROWS: usize = 10_000;

pub fn parse_stock_csv(text: &str) -> Result<Vec<StockCsvRow>, String> {
    let mut rows = Vec::new();
    let mut seen: HashMap<Uuid, usize> = HashMap::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let raw = raw.trim().trim_start_matches('\u{feff}');
        if raw.is_empty() {
            continue;
        }
        let fields: Vec<String> = raw.split([',', ';']).map(|f| f.trim().trim_matches('"').trim().to_owned()).collect();
        if line == 1 && fields.first().is_some_and(|f| f.eq_ignore_ascii_case("sku_id")) {
            continue;
        }
        if rows.len() == MAX_ROWS {
            return Err(format!("the file has more than {MAX_ROWS} rows"));
        }
        let mut row = StockCsvRow { line, sku_id: None, stock_count: None, error: None };
        if fields.len() != 2 {
            row.error = Some(format!("expected 2 columns (sku_id, stock_count), found {}", fields.len()));
            rows.push(row);
            continue;
        }
        row.sku_id = Uuid::parse_str(&fields[0]).ok();
        row.stock_count = fields[1].parse::<i64>().ok().filter(|n| (0..=i32::MAX as i64).contains(n));
        row.error = match (row.sku_id, row.stock_count) {
            (None, _) => Some(format!("“{}” is not a SKU id", fields[0])),
            (_, None) => Some(format!("“{}” is not a whole number of 0 or more", fields[1])),
            (Some(sku), Some(_)) => seen.insert(sku, line).map(|first| format!("this SKU is already on line {first}")),
        };
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_checked_one_by_one() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        let text = format!("\u{feff}sku_id,stock_count\r\n{a},12\n\n\"{b}\"; 0\nnot-an-id,3\n{a},4\n{b},-1\n{b},x\n{a}\n");
        let rows = parse_stock_csv(&text).unwrap();
        let summary: Vec<(usize, Option<i64>, bool)> = rows.iter().map(|r| (r.line, r.stock_count, r.error.is_none())).collect();
        assert_eq!(
            summary,
            vec![(2, Some(12), true), (4, Some(0), true), (5, Some(3), false), (6, Some(4), false), (7, None, false), (8, None, false), (9, None, false)]
        );
        assert_eq!(rows[3].error.as_deref(), Some("this SKU is already on line 2"));
        assert!(rows[6].error.as_deref().unwrap().contains("2 columns"));
        assert!(parse_stock_csv(&format!("{a},1\n").repeat(MAX_ROWS + 1)).is_err());
    }
}
