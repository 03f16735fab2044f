//! What crawlers read besides the pages: `robots.txt`, the sitemap index at
//! `/sitemap.xml`, and its pages under `/sitemaps/` (the category pages, and
//! the products split by id range; see `shop::catalog::sitemap`). Every URL
//! is absolute, on the public origin (`MERCATO_PUBLIC_URL`).

use std::fmt::Write;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

use super::error::ApiError;
use crate::state::AppState;

const XML: HeaderValue = HeaderValue::from_static("application/xml; charset=utf-8");
const XMLNS: &str = "http://www.sitemaps.org/schemas/sitemap/0.9";

/// Pages that are one visitor's own, or endless combinations of a search,
/// are kept out of the index; everything public is in the sitemap.
pub async fn robots(State(state): State<AppState>) -> Response {
    let base = &state.config.public_url;
    let body = format!(
        "User-agent: *\n\
         Disallow: /api/\n\
         Disallow: /cart\n\
         Disallow: /checkout\n\
         Disallow: /orders\n\
         Disallow: /login\n\
         Disallow: /register\n\
         Disallow: /search\n\
         Disallow: /products/*/review\n\
         \n\
         Sitemap: {base}/sitemap.xml\n"
    );
    ([(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"))], body).into_response()
}

pub async fn index(State(state): State<AppState>) -> Result<Response, ApiError> {
    let base = &state.config.public_url;
    let ranges = state.shop.catalog().sitemap_ranges(state.config.sitemap_page_size).await?;
    let mut xml = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<sitemapindex xmlns=\"{XMLNS}\">\n");
    let _ = writeln!(xml, "<sitemap><loc>{}</loc></sitemap>", escape(&format!("{base}/sitemaps/pages.xml")));
    for range in ranges {
        let to = range.to.map_or_else(|| "end".to_owned(), |id| id.simple().to_string());
        let loc = format!("{base}/sitemaps/products-{}-{to}.xml", range.from.simple());
        let _ = writeln!(xml, "<sitemap><loc>{}</loc><lastmod>{}</lastmod></sitemap>", escape(&loc), w3c(range.lastmod));
    }
    xml.push_str("</sitemapindex>\n");
    Ok(([(header::CONTENT_TYPE, XML)], xml).into_response())
}

/// `/sitemaps/pages.xml` or `/sitemaps/products-<from>-<to|end>.xml`.
pub async fn page(State(state): State<AppState>, Path(file): Path<String>) -> Result<Response, ApiError> {
    let base = &state.config.public_url;
    let mut urls: Vec<(String, Option<DateTime<Utc>>)> = Vec::new();
    if file == "pages.xml" {
        urls.push((format!("{base}/"), None));
        for category in state.shop.catalog().categories().await? {
            urls.push((format!("{base}/c/{}", category.slug), None));
        }
    } else {
        let (from, to) = parse_range(&file).ok_or_else(|| ApiError::NotFound("no such sitemap".into()))?;
        for product in state.shop.catalog().sitemap_products(from, to).await? {
            urls.push((format!("{base}/products/{}", product.id), Some(product.lastmod)));
        }
    }
    let mut xml = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<urlset xmlns=\"{XMLNS}\">\n");
    for (loc, lastmod) in urls {
        match lastmod {
            Some(at) => writeln!(xml, "<url><loc>{}</loc><lastmod>{}</lastmod></url>", escape(&loc), w3c(at)),
            None => writeln!(xml, "<url><loc>{}</loc></url>", escape(&loc)),
        }
        .expect("writing to a String cannot fail");
    }
    xml.push_str("</urlset>\n");
    Ok(([(header::CONTENT_TYPE, XML)], xml).into_response())
}

/// `products-<32 hex>-<32 hex | end>.xml` → the id range.
fn parse_range(file: &str) -> Option<(Uuid, Option<Uuid>)> {
    let (from, to) = file.strip_prefix("products-")?.strip_suffix(".xml")?.split_once('-')?;
    let from = Uuid::try_parse(from).ok()?;
    let to = match to {
        "end" => None,
        id => Some(Uuid::try_parse(id).ok().filter(|to| *to > from)?),
    };
    Some((from, to))
}

fn w3c(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The five characters XML reserves (a configured origin could hold `&`).
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_only_in_the_form_the_index_writes() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert_eq!(parse_range(&format!("products-{}-{}.xml", a.simple(), b.simple())), Some((a, Some(b))));
        assert_eq!(parse_range(&format!("products-{}-end.xml", a.simple())), Some((a, None)));
        assert_eq!(parse_range(&format!("products-{}-{}.xml", b.simple(), a.simple())), None, "an empty range");
        assert_eq!(parse_range(&format!("products-{}.xml", a.simple())), None);
        assert_eq!(parse_range("products-x-end.xml"), None);
        assert_eq!(parse_range(&format!("products-{}-end.txt", a.simple())), None);
    }

    #[test]
    fn urls_are_escaped_for_xml() {
        assert_eq!(escape("https://a.example/?x=1&y='2'"), "https://a.example/?x=1&amp;y=&apos;2&apos;");
    }
}
