//! Search and browse parameters, parsed from a URL query string the same way
//! by the REST API, the storefront's server functions and the pages that build
//! filter links. Bad input names the parameter; nothing is silently ignored
//! except parameters we do not know (tracking tags and the like).

use serde::{Deserialize, Serialize};

use crate::catalog::Sort;

/// Edges of the price facet buckets, in cents: [0, 25), [25, 50) … [1000, ∞).
pub const PRICE_BUCKET_EDGES: [i64; 7] = [0, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000];

/// A query parameter that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryError {
    pub param: String,
    pub message: String,
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid `{}`: {}", self.param, self.message)
    }
}

impl std::error::Error for QueryError {}

fn invalid(param: &str, message: impl Into<String>) -> QueryError {
    QueryError { param: param.to_owned(), message: message.into() }
}

/// Filters shared by search and category pages.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ListingFilters {
    /// Brand names; a product matches any of them.
    pub brands: Vec<String>,
    pub price_min_cents: Option<i64>,
    pub price_max_cents: Option<i64>,
    /// Products rated at least this (1–5).
    pub rating_min: Option<f64>,
    pub in_stock: bool,
}

impl ListingFilters {
    pub fn is_empty(&self) -> bool {
        self.brands.is_empty()
            && self.price_min_cents.is_none()
            && self.price_max_cents.is_none()
            && self.rating_min.is_none()
            && !self.in_stock
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchParams {
    pub q: String,
    /// A category slug; includes its subcategories.
    pub category: Option<String>,
    pub filters: ListingFilters,
    pub sort: Sort,
    pub page: u32,
    pub per_page: u32,
    /// Keyset cursor for category pages (opaque to clients).
    pub cursor: Option<String>,
}

impl Default for SearchParams {
    fn default() -> Self {
        Self {
            q: String::new(),
            category: None,
            filters: ListingFilters::default(),
            sort: Sort::Relevance,
            page: 1,
            per_page: Self::DEFAULT_PER_PAGE,
            cursor: None,
        }
    }
}

impl SearchParams {
    pub const DEFAULT_PER_PAGE: u32 = 24;
    pub const MAX_PER_PAGE: u32 = 48;
    /// Deep pages are for crawlers, not people; refusing them keeps every
    /// search bounded.
    pub const MAX_PAGE: u32 = 400;
    pub const MAX_QUERY_CHARS: usize = 200;
    pub const MAX_BRANDS: usize = 20;

    /// Parses `key=value` pairs (already percent-decoded).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self, QueryError> {
        let mut params = SearchParams::default();
        for (key, value) in pairs {
            let value = value.trim();
            match key {
                "q" => {
                    if value.chars().count() > Self::MAX_QUERY_CHARS {
                        return Err(invalid("q", format!("at most {} characters", Self::MAX_QUERY_CHARS)));
                    }
                    params.q = value.to_owned();
                }
                "category" if !value.is_empty() => {
                    if !is_slug(value) {
                        return Err(invalid("category", "expected a category slug such as `audio`"));
                    }
                    params.category = Some(value.to_owned());
                }
                "brand" if !value.is_empty() => {
                    if value.chars().count() > 120 {
                        return Err(invalid("brand", "brand names are at most 120 characters"));
                    }
                    if !params.filters.brands.iter().any(|b| b == value) {
                        params.filters.brands.push(value.to_owned());
                    }
                    if params.filters.brands.len() > Self::MAX_BRANDS {
                        return Err(invalid("brand", format!("at most {} brands at once", Self::MAX_BRANDS)));
                    }
                }
                "price_min" if !value.is_empty() => params.filters.price_min_cents = Some(parse_price("price_min", value)?),
                "price_max" if !value.is_empty() => params.filters.price_max_cents = Some(parse_price("price_max", value)?),
                "rating_min" if !value.is_empty() => {
                    let rating: f64 = value
                        .parse()
                        .ok()
                        .filter(|r: &f64| r.is_finite())
                        .ok_or_else(|| invalid("rating_min", "expected a number from 1 to 5"))?;
                    if !(0.0..=5.0).contains(&rating) {
                        return Err(invalid("rating_min", "expected a number from 1 to 5"));
                    }
                    params.filters.rating_min = (rating > 0.0).then_some(rating);
                }
                "in_stock" => {
                    params.filters.in_stock = match value {
                        "" | "false" | "0" | "off" => false,
                        "true" | "1" | "on" => true,
                        _ => return Err(invalid("in_stock", "expected true or false")),
                    }
                }
                "sort" if !value.is_empty() => {
                    params.sort = Sort::parse(value).ok_or_else(|| {
                        invalid("sort", "expected one of relevance, price_asc, price_desc, rating, newest")
                    })?;
                }
                "page" if !value.is_empty() => {
                    let page: u32 = value.parse().map_err(|_| invalid("page", "expected a whole number from 1"))?;
                    if page == 0 || page > Self::MAX_PAGE {
                        return Err(invalid("page", format!("expected a whole number from 1 to {}", Self::MAX_PAGE)));
                    }
                    params.page = page;
                }
                "per_page" | "limit" if !value.is_empty() => {
                    let per_page: u64 = value
                        .parse()
                        .map_err(|_| invalid(key, "expected a whole number"))?;
                    // Clamped rather than refused: asking for "a lot" is not wrong.
                    params.per_page = per_page.clamp(1, Self::MAX_PER_PAGE as u64) as u32;
                }
                "cursor" if !value.is_empty() => {
                    if value.len() > 200 || !value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.') {
                        return Err(invalid("cursor", "not a cursor this server issued"));
                    }
                    params.cursor = Some(value.to_owned());
                }
                _ => {}
            }
        }
        if let (Some(min), Some(max)) = (params.filters.price_min_cents, params.filters.price_max_cents) {
            if min > max {
                return Err(invalid("price_min", "must not be above price_max"));
            }
        }
        Ok(params)
    }

    /// [`SearchParams::from_pairs`] for owned pairs, as pages and server functions hold them.
    pub fn from_owned_pairs(pairs: &[(String, String)]) -> Result<Self, QueryError> {
        Self::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// The query string for these parameters (without `?`), for links.
    /// Defaults are left out so URLs stay short and cacheable.
    pub fn to_query_string(&self) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if !self.q.is_empty() {
            pairs.push(("q", self.q.clone()));
        }
        if let Some(category) = &self.category {
            pairs.push(("category", category.clone()));
        }
        for brand in &self.filters.brands {
            pairs.push(("brand", brand.clone()));
        }
        if let Some(min) = self.filters.price_min_cents {
            pairs.push(("price_min", format_units(min)));
        }
        if let Some(max) = self.filters.price_max_cents {
            pairs.push(("price_max", format_units(max)));
        }
        if let Some(rating) = self.filters.rating_min {
            pairs.push(("rating_min", rating.to_string()));
        }
        if self.filters.in_stock {
            pairs.push(("in_stock", "true".into()));
        }
        if self.sort != Sort::Relevance {
            pairs.push(("sort", self.sort.as_str().into()));
        }
        if self.page != 1 {
            pairs.push(("page", self.page.to_string()));
        }
        if self.per_page != Self::DEFAULT_PER_PAGE {
            pairs.push(("per_page", self.per_page.to_string()));
        }
        if let Some(cursor) = &self.cursor {
            pairs.push(("cursor", cursor.clone()));
        }
        pairs
            .into_iter()
            .map(|(k, v)| format!("{k}={}", encode_component(&v)))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// The same search, back on its first page (any filter change resets paging).
    pub fn first_page(&self) -> Self {
        Self { page: 1, cursor: None, ..self.clone() }
    }

    pub fn offset(&self) -> usize {
        (self.page.saturating_sub(1) as usize) * self.per_page as usize
    }
}

/// Prices in URLs are in whole currency units ("49.99"), as a shopper would
/// type them; everything behind the URL uses cents.
fn parse_price(param: &str, value: &str) -> Result<i64, QueryError> {
    let err = || invalid(param, "expected an amount such as 25 or 49.99");
    let (units, minor) = match value.split_once('.') {
        Some((u, m)) => (u, m),
        None => (value, ""),
    };
    if units.is_empty() || units.len() > 9 || !units.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    if minor.len() > 2 || !minor.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    let units: i64 = units.parse().map_err(|_| err())?;
    let minor: i64 = if minor.is_empty() { 0 } else { format!("{minor:0<2}").parse().map_err(|_| err())? };
    Ok(units * 100 + minor)
}

pub fn format_units(cents: i64) -> String {
    if cents % 100 == 0 {
        (cents / 100).to_string()
    } else {
        format!("{}.{:02}", cents / 100, cents % 100)
    }
}

pub fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 80
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

/// Percent-encodes a query component (RFC 3986 unreserved characters kept).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &[(&str, &str)]) -> Result<SearchParams, QueryError> {
        SearchParams::from_pairs(q.iter().copied())
    }

    #[test]
    fn parses_every_filter() {
        let p = parse(&[
            ("q", " iphone "),
            ("category", "audio"),
            ("brand", "Aurora"),
            ("brand", "Nimbus"),
            ("price_min", "10"),
            ("price_max", "49.9"),
            ("rating_min", "4"),
            ("in_stock", "true"),
            ("sort", "price_desc"),
            ("page", "3"),
            ("per_page", "500"),
            ("utm_source", "newsletter"),
        ])
        .unwrap();
        assert_eq!(p.q, "iphone");
        assert_eq!(p.category.as_deref(), Some("audio"));
        assert_eq!(p.filters.brands, vec!["Aurora", "Nimbus"]);
        assert_eq!(p.filters.price_min_cents, Some(1000));
        assert_eq!(p.filters.price_max_cents, Some(4990));
        assert_eq!(p.filters.rating_min, Some(4.0));
        assert!(p.filters.in_stock);
        assert_eq!(p.sort, Sort::PriceDesc);
        assert_eq!(p.page, 3);
        assert_eq!(p.per_page, SearchParams::MAX_PER_PAGE, "page size is clamped");
        assert_eq!(p.offset(), 96);
    }

    #[test]
    fn bad_values_name_their_parameter() {
        for (key, value) in [
            ("price_min", "-5"),
            ("price_max", "abc"),
            ("price_min", "1.999"),
            ("rating_min", "6"),
            ("rating_min", "NaN"),
            ("in_stock", "maybe"),
            ("sort", "cheapest"),
            ("page", "0"),
            ("page", "99999"),
            ("per_page", "-1"),
            ("category", "Not A Slug"),
            ("cursor", "'; DROP TABLE"),
        ] {
            let err = parse(&[(key, value)]).unwrap_err();
            assert_eq!(err.param, key, "{key}={value}");
        }
        let err = parse(&[("price_min", "50"), ("price_max", "10")]).unwrap_err();
        assert_eq!(err.param, "price_min");
        let long = "x".repeat(201);
        assert_eq!(parse(&[("q", &long)]).unwrap_err().param, "q");
    }

    #[test]
    fn query_string_round_trips() {
        let p = parse(&[("q", "a&b c"), ("brand", "Mont Blanc"), ("price_max", "25.5"), ("sort", "newest")]).unwrap();
        let qs = p.to_query_string();
        assert_eq!(qs, "q=a%26b+c&brand=Mont+Blanc&price_max=25.50&sort=newest");
        let decoded: Vec<(String, String)> = qs
            .split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_owned(), decode(v))
            })
            .collect();
        let again = SearchParams::from_pairs(decoded.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap();
        assert_eq!(again, p);
    }

    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).unwrap()
    }
}
